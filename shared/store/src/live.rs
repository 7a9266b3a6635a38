//! Live chat events for the dashboard: "something changed for these contacts". They are hints
//! to re-read the database (which stays the truth), so they carry ids, never message content.
//!
//! Any process may publish (the gateway for webhooks, the sender for send results); every
//! gateway replica must hear them. On PostgreSQL they travel by `NOTIFY heydoc_live`, which
//! each gateway `LISTEN`s to; on SQLite (the embedded default, one process) they go through an
//! in-process broadcast channel, one per database file. Publishing is coalesced: contacts that change within one
//! flush interval leave as one event, so a campaign of a million sends is a few notifications
//! a second, not a million.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The PostgreSQL channel the events travel on.
pub const CHANNEL: &str = "heydoc_live";
/// How often pending changes are flushed as one event.
const FLUSH_EVERY: Duration = Duration::from_millis(150);
/// Above this many contacts in one flush, the event says "everything" instead of listing them
/// (a NOTIFY payload must stay under 8,000 bytes).
const MAX_IDS: usize = 400;
/// Events a slow subscriber may fall behind by before it is told to reload everything.
const BUFFER: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveKind {
    /// A new message in a chat (inbound, or an outgoing one created elsewhere).
    Message,
    /// A message's delivery status changed.
    Status,
    /// A conversation's status, assignee or notes changed.
    Conversation,
    /// A colleague (`by`) is writing a reply in this chat: colleagues with it open see who,
    /// so that two people do not answer the same patient. Not coalesced, never stored.
    Replying,
    /// Someone's access changed (logout, disabled, deleted, new password): replicas forget
    /// the sessions they trusted. Not for dashboards.
    Access,
}

impl LiveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveKind::Message => "message",
            LiveKind::Status => "status",
            LiveKind::Conversation => "conversation",
            LiveKind::Replying => "replying",
            LiveKind::Access => "access",
        }
    }
}

/// One coalesced change notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub kind: LiveKind,
    /// The contacts whose chats changed; empty when `all` is set.
    pub contact_ids: Vec<i32>,
    /// Too many contacts changed to list: reload everything.
    #[serde(default)]
    pub all: bool,
    /// Who (a user id), for `replying`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<i32>,
}

impl LiveEvent {
    pub fn everything(kind: LiveKind) -> Self {
        Self {
            kind,
            contact_ids: Vec::new(),
            all: true,
            by: None,
        }
    }

    pub fn concerns(&self, contact_id: i32) -> bool {
        self.all || self.contact_ids.contains(&contact_id)
    }
}

/// The in-process channel of an SQLite database (one process holds gateway and sender), keyed
/// by its file so that two databases in one process (tests) do not hear each other.
fn local(db: &DatabaseConnection) -> broadcast::Sender<LiveEvent> {
    static LOCAL: OnceLock<Mutex<HashMap<PathBuf, broadcast::Sender<LiveEvent>>>> = OnceLock::new();
    let file = match db {
        DatabaseConnection::SqlxSqlitePoolConnection(_) => db
            .get_sqlite_connection_pool()
            .connect_options()
            .get_filename()
            .to_path_buf(),
        _ => PathBuf::new(),
    };
    let mut channels = LOCAL
        .get_or_init(Mutex::default)
        .lock()
        // A poisoned map still holds valid senders.
        .unwrap_or_else(|p| p.into_inner());
    channels
        .entry(file)
        .or_insert_with(|| broadcast::channel(BUFFER).0)
        .clone()
}

type Pending = Arc<Mutex<BTreeSet<(LiveKind, i32)>>>;

/// Publishes change notices, coalesced. Cheap to clone; `publish` never waits.
#[derive(Clone)]
pub struct LivePublisher {
    pending: Pending,
    /// Held by every clone; when the last goes, the task flushes what is left and ends.
    _alive: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl LivePublisher {
    /// Starts the flushing task on the current tokio runtime; it ends when the last clone of
    /// the publisher is dropped, after a final flush.
    pub fn spawn(db: DatabaseConnection) -> Self {
        let pending: Pending = Arc::default();
        let (alive, mut dropped) = tokio::sync::oneshot::channel::<()>();
        let flushing = pending.clone();
        let local = (db.get_database_backend() != DatabaseBackend::Postgres).then(|| local(&db));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut dropped => true,
                };
                let batch = std::mem::take(&mut *lock(&flushing));
                for event in events_of(batch) {
                    if let Err(e) = emit(&db, local.as_ref(), &event).await {
                        tracing::debug!(error = %e, "could not publish a live event");
                    }
                }
                if last {
                    return;
                }
            }
        });
        Self {
            pending,
            _alive: Arc::new(alive),
        }
    }

    pub fn publish(&self, kind: LiveKind, contact_id: i32) {
        lock(&self.pending).insert((kind, contact_id));
    }

    pub fn publish_all(&self, kind: LiveKind, contact_ids: impl IntoIterator<Item = i32>) {
        let mut pending = lock(&self.pending);
        for id in contact_ids {
            pending.insert((kind, id));
        }
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, BTreeSet<(LiveKind, i32)>> {
    // A poisoned set only means a publisher panicked mid-insert; the ids in it are still valid.
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

/// One event per kind, listing its contacts, or saying "everything" when they are too many.
fn events_of(batch: BTreeSet<(LiveKind, i32)>) -> Vec<LiveEvent> {
    let mut out: Vec<LiveEvent> = Vec::new();
    for (kind, id) in batch {
        match out.last_mut() {
            Some(e) if e.kind == kind => e.contact_ids.push(id),
            _ => out.push(LiveEvent {
                kind,
                contact_ids: vec![id],
                all: false,
                by: None,
            }),
        }
    }
    for e in &mut out {
        if e.contact_ids.len() > MAX_IDS {
            *e = LiveEvent::everything(e.kind);
        }
    }
    out
}

async fn emit(
    db: &DatabaseConnection,
    local: Option<&broadcast::Sender<LiveEvent>>,
    event: &LiveEvent,
) -> crate::Result<()> {
    match local {
        None => {
            let payload = serde_json::to_string(event)?;
            db.execute(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            ))
            .await?;
        }
        Some(local) => {
            // No subscriber is not an error: nobody has the dashboard open.
            let _ = local.send(event.clone());
        }
    }
    Ok(())
}

/// Tells every gateway replica at once (not coalesced) that someone's access changed.
pub async fn notify_access_changed(db: &DatabaseConnection) -> crate::Result<()> {
    let local = (db.get_database_backend() != DatabaseBackend::Postgres).then(|| local(db));
    emit(db, local.as_ref(), &LiveEvent::everything(LiveKind::Access)).await
}

/// Tells every dashboard at once (not coalesced) that `user_id` is writing a reply to
/// `contact_id`.
pub async fn notify_replying(
    db: &DatabaseConnection,
    contact_id: i32,
    user_id: i32,
) -> crate::Result<()> {
    let local = (db.get_database_backend() != DatabaseBackend::Postgres).then(|| local(db));
    let event = LiveEvent {
        kind: LiveKind::Replying,
        contact_ids: vec![contact_id],
        all: false,
        by: Some(user_id),
    };
    emit(db, local.as_ref(), &event).await
}

/// What a gateway hands each dashboard connection: a receiver of every live event, from every
/// process.
#[derive(Clone)]
pub struct LiveFeed {
    sender: broadcast::Sender<LiveEvent>,
    /// Held by every clone; the LISTEN task stops when the last one goes.
    _alive: Option<Arc<tokio::sync::oneshot::Sender<()>>>,
}

impl LiveFeed {
    /// On PostgreSQL, starts a task that `LISTEN`s (reconnecting after a lost connection, and
    /// telling subscribers to reload since events may have been missed meanwhile); on SQLite,
    /// joins the in-process channel.
    pub async fn start(db: &DatabaseConnection) -> crate::Result<Self> {
        if db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(Self {
                sender: local(db),
                _alive: None,
            });
        }
        let (sender, _) = broadcast::channel(BUFFER);
        let mut listener =
            sqlx::postgres::PgListener::connect_with(db.get_postgres_connection_pool()).await?;
        listener.listen(CHANNEL).await?;
        let forward = sender.clone();
        // The task ends when the last clone of this feed is dropped (the gateway stopped).
        let (alive, mut dropped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            // Whether events may have been missed since the last good connection.
            let mut lost = false;
            loop {
                if lost {
                    // Reconnect and listen again before telling everyone to reload, so that
                    // nothing sent after the reload's read is missed.
                    let relisten = async {
                        listener.unlisten(CHANNEL).await?;
                        listener.listen(CHANNEL).await
                    };
                    let again = tokio::select! {
                        _ = &mut dropped => return,
                        r = relisten => r,
                    };
                    match again {
                        Ok(()) => {
                            lost = false;
                            let _ = forward.send(LiveEvent::everything(LiveKind::Message));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "live events: cannot LISTEN again; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
                let received = tokio::select! {
                    _ = &mut dropped => return,
                    r = listener.try_recv() => r,
                };
                match received {
                    Ok(Some(n)) => match serde_json::from_str::<LiveEvent>(n.payload()) {
                        Ok(event) => {
                            let _ = forward.send(event);
                        }
                        Err(e) => tracing::debug!(error = %e, "ignoring a malformed live event"),
                    },
                    // The connection was lost (and already re-established): whatever was sent
                    // meanwhile is gone, so everyone reloads.
                    Ok(None) => {
                        let _ = forward.send(LiveEvent::everything(LiveKind::Message));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live events: LISTEN connection failed");
                        lost = true;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Self {
            sender,
            _alive: Some(Arc::new(alive)),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_becomes_one_event_per_kind() {
        let batch: BTreeSet<_> = [
            (LiveKind::Status, 3),
            (LiveKind::Message, 7),
            (LiveKind::Status, 1),
            (LiveKind::Status, 3),
        ]
        .into_iter()
        .collect();
        let events = events_of(batch);
        assert_eq!(
            events,
            vec![
                LiveEvent {
                    kind: LiveKind::Message,
                    contact_ids: vec![7],
                    all: false,
                    by: None,
                },
                LiveEvent {
                    kind: LiveKind::Status,
                    contact_ids: vec![1, 3],
                    all: false,
                    by: None,
                },
            ]
        );
    }

    #[test]
    fn too_many_contacts_become_everything_and_fit_a_notify() {
        let batch: BTreeSet<_> = (0..10_000).map(|i| (LiveKind::Status, i)).collect();
        let events = events_of(batch);
        assert_eq!(events, vec![LiveEvent::everything(LiveKind::Status)]);
        let most: BTreeSet<_> = (1_000_000..1_000_000 + MAX_IDS as i32)
            .map(|i| (LiveKind::Status, i))
            .collect();
        let payload = serde_json::to_string(&events_of(most)[0]).expect("serializes");
        assert!(payload.len() < 8000, "{} bytes", payload.len());
    }

    #[test]
    fn everything_concerns_every_contact() {
        assert!(LiveEvent::everything(LiveKind::Status).concerns(42));
        let one = LiveEvent {
            kind: LiveKind::Message,
            contact_ids: vec![1],
            all: false,
            by: None,
        };
        assert!(one.concerns(1) && !one.concerns(2));
    }
}
