//! The outbox relay's window and the reconciler.

use chrono::{DateTime, Duration, Utc};
use heydoc_domain::{Direction, MessageStatus};
use heydoc_entity::message;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Statement,
};

use crate::vocabulary;
use crate::Result;

use super::{id_list, not_held, to_outbox};

/// The statuses of outgoing messages not finished yet.
pub const IN_FLIGHT: [MessageStatus; 3] = [
    MessageStatus::Queued,
    MessageStatus::Sending,
    MessageStatus::Retrying,
];

/// One number's outgoing messages not finished yet, by status (every status of `IN_FLIGHT`, zeros included).
/// Finished ones are not counted: that would scan the whole history.
pub async fn count_in_flight(
    db: &DatabaseConnection,
    number: &str,
) -> Result<Vec<(&'static str, i64)>> {
    let (in_flight, outgoing) = (
        &*vocabulary::IN_FLIGHT,
        vocabulary::direction(Direction::Outgoing),
    );
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT status, COUNT(*) FROM messages
             WHERE status IN ({in_flight}) AND direction = {outgoing}
               AND sender_phone = $1
             GROUP BY status"
            ),
            [number.into()],
        ))
        .await?;
    let found: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<String>(0)?,
                r.try_get_by_index::<i64>(1)?,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(IN_FLIGHT
        .iter()
        .map(|s| {
            let n = found
                .iter()
                .find(|(f, _)| f == s.as_str())
                .map_or(0, |(_, n)| *n);
            (s.as_str(), n)
        })
        .collect())
}

/// A row leased for publishing: its id and the trace context its job carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub id: i64,
    pub trace_context: Option<String>,
    /// Not a campaign delivery: it goes in the number's conversational lane.
    pub conversational: bool,
}

/// One number's rows published to the bus and not claimed yet: what its window holds now.
pub async fn on_bus(db: &impl ConnectionTrait, number: &str) -> Result<u64> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT COUNT(*) FROM messages \
             WHERE sender_phone = $1 AND enqueued_at IS NOT NULL AND status IN ({})",
                *vocabulary::WAITING
            ),
            [number.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// "Ready to relay": not on the bus, queued or a retry whose time has come, and not held by
/// its campaign (paused, cancelled, ended).
static RELAYABLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "sender_phone = $2 AND enqueued_at IS NULL \
     AND status IN ({}) AND (status = {} OR next_attempt_at <= $1)",
        *vocabulary::WAITING,
        vocabulary::message(MessageStatus::Queued)
    )
});

/// What a number's relay remembers between refills: when a retry can next come due. Walking
/// the runs that hold retries costs an index probe or two per run, and a deployment with many
/// recurring campaigns spread over days keeps thousands of runs waiting for tomorrow; they are
/// walked again only once the soonest of them may be due, or every few seconds (a retry written
/// meanwhile for sooner, a campaign resumed).
#[derive(Debug, Default, Clone)]
pub struct RetryWatch {
    next_walk: Option<DateTime<Utc>>,
}

impl RetryWatch {
    /// The longest the runs holding retries go unwalked.
    const AT_MOST: i64 = 5;

    fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_walk.is_none_or(|at| at <= now)
    }
}

/// The loose index scan of `number`'s runs with deliveries of `status` not on the bus (one
/// index probe per run however large it is), at most `limit` runs, as a recursive CTE named
/// `name`.
fn run_scan(name: &str, status: &str, limit: u64) -> String {
    format!(
        "{name}(id, n) AS (
            SELECT (SELECT MIN(occurrence_id) FROM messages
                    WHERE sender_phone = $1 AND status = {status}
                      AND enqueued_at IS NULL AND occurrence_id IS NOT NULL), 1
            UNION ALL
            SELECT (SELECT MIN(m.occurrence_id) FROM messages m
                    WHERE m.sender_phone = $1 AND m.status = {status}
                      AND m.enqueued_at IS NULL AND m.occurrence_id IS NOT NULL
                      AND m.occurrence_id > {name}.id), n + 1
            FROM {name} WHERE {name}.id IS NOT NULL AND n < {limit})"
    )
}

/// Runs whose campaign does not hold them (paused, cancelled, ended).
fn not_held_run(column: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM occurrences o JOIN scheduled_messages s ON s.id = o.schedule_id
                     WHERE o.id = {column} AND s.status IN ({}))",
        *vocabulary::HOLDING
    )
}

/// `number`'s campaign runs with queued deliveries not on the bus, of campaigns that do not
/// hold them: a loose index scan of this number's runs alone (`idx_messages_queued_runs`), so
/// nothing another number or a retry due tomorrow holds can fill the list. At most `limit`
/// runs are visited per refill.
async fn queued_runs(db: &impl ConnectionTrait, number: &str, limit: u64) -> Result<Vec<i64>> {
    let sql = format!(
        "WITH RECURSIVE {} SELECT id FROM runs WHERE id IS NOT NULL AND {}",
        run_scan("runs", &vocabulary::message(MessageStatus::Queued), limit),
        not_held_run("runs.id"),
    );
    ids_of(db, sql, vec![number.into()]).await
}

/// `number`'s campaign runs whose soonest retry is due by `now`, of campaigns that do not hold
/// them (`idx_messages_retrying_runs`: each run's soonest retry is its first index entry). The
/// watch learns when the next of the others comes due; until then (or for a few seconds at
/// most) the walk is skipped and no run is returned.
async fn due_retry_runs(
    db: &impl ConnectionTrait,
    number: &str,
    limit: u64,
    now: DateTime<Utc>,
    watch: &mut RetryWatch,
) -> Result<Vec<i64>> {
    if !watch.due(now) {
        return Ok(Vec::new());
    }
    let retrying = vocabulary::message(MessageStatus::Retrying);
    let sql = format!(
        "WITH RECURSIVE {}
         SELECT id, soonest FROM (
             SELECT id, (SELECT MIN(m.next_attempt_at) FROM messages m
                         WHERE m.sender_phone = $1 AND m.status = {retrying}
                           AND m.enqueued_at IS NULL AND m.occurrence_id IS NOT NULL
                           AND m.occurrence_id = runs.id) AS soonest
             FROM runs WHERE id IS NOT NULL AND {}
         ) AS waiting",
        run_scan("runs", &retrying, limit),
        not_held_run("runs.id"),
    );
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [number.into()],
        ))
        .await?;
    let mut due = Vec::new();
    let mut next = now + Duration::seconds(RetryWatch::AT_MOST);
    for r in &rows {
        let id = r.try_get_by_index::<i64>(0)?;
        match r.try_get_by_index::<Option<DateTime<Utc>>>(1)? {
            Some(at) if at > now => next = next.min(at),
            _ => due.push(id),
        }
    }
    // While some are due they are leased a share at a time: walk again at the next refill.
    watch.next_walk = due.is_empty().then_some(next);
    Ok(due)
}

/// The first column of every row of `sql` with `values`, as ids.
async fn ids_of(
    db: &impl ConnectionTrait,
    sql: String,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<i64>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect())
}

/// Up to `limit` relayable rows of the conversational lane (API sends, replies,
/// confirmations).
async fn relayable_conversation(
    db: &impl ConnectionTrait,
    number: &str,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // The condition matches idx_messages_unrelayed_conversation's, so it never walks past a
    // campaign's backlog.
    let sql = format!(
        "SELECT id FROM messages WHERE occurrence_id IS NULL AND {} ORDER BY id LIMIT {limit}",
        *RELAYABLE
    );
    ids_of(db, sql, vec![now.into(), number.into()]).await
}

/// Runs read per statement when the window is shared among many.
const RUNS_PER_STATEMENT: usize = 100;

/// Up to `share` relayable rows of each of `runs`, oldest first, a hundred runs per statement
/// (each a `LIMIT`ed read of `idx_messages_unrelayed_by_run`, joined with `UNION ALL`), so two
/// hundred small campaigns due together cost two round trips, not two hundred.
async fn relayable_runs(
    db: &impl ConnectionTrait,
    number: &str,
    runs: &[i64],
    share: u64,
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    if share == 0 {
        return Ok(ids);
    }
    for part in runs.chunks(RUNS_PER_STATEMENT) {
        let sql = part
            .iter()
            .enumerate()
            .map(|(i, run)| {
                format!(
                    "SELECT * FROM (SELECT id FROM messages WHERE occurrence_id = {run} AND {} \
                     ORDER BY id LIMIT {share}) AS r{i}",
                    *RELAYABLE
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        ids.extend(ids_of(db, sql, vec![now.into(), number.into()]).await?);
    }
    Ok(ids)
}

/// At most this many campaign runs of each kind (queued, retrying) are looked at per refill of
/// one number.
const RUNS_PER_REFILL: u64 = 10_000;

/// Leases up to `limit` of `number`'s rows to publish (the free part of its window), in lane order:
/// conversational sends first, then every running campaign in turn (an equal share each, so a
/// small campaign is not stuck behind a large one). Rows of paused, cancelled or ended
/// campaigns are left alone. Each row is leased by stamping `enqueued_at`, only if nobody else
/// did meanwhile, so several relays never publish the same row twice. Returned in lane order.
pub async fn lease_unrelayed(
    db: &DatabaseConnection,
    number: &str,
    limit: u64,
    now: DateTime<Utc>,
    watch: &mut RetryWatch,
) -> Result<Vec<Leased>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut ids = relayable_conversation(db, number, limit, now).await?;
    let free = limit.saturating_sub(ids.len() as u64);
    if free > 0 {
        let mut runs = queued_runs(db, number, RUNS_PER_REFILL).await?;
        runs.extend(due_retry_runs(db, number, RUNS_PER_REFILL, now, watch).await?);
        runs.sort_unstable();
        runs.dedup();
        // A different first run each refill: when the free window is smaller than the number
        // of runs, every run still gets its turn.
        if !runs.is_empty() {
            let start = usize::try_from(now.timestamp_subsec_micros()).unwrap_or(0) % runs.len();
            runs.rotate_left(start);
            // An equal share each, for as many runs as the window has room for. What a run
            // cannot use stays free until the next refill (a fraction of a second later),
            // when the shares are cut again.
            let share = free.div_ceil(runs.len() as u64);
            runs.truncate(usize::try_from(free.div_ceil(share)).unwrap_or(usize::MAX));
            let mut got = relayable_runs(db, number, &runs, share, now).await?;
            got.truncate(usize::try_from(free).unwrap_or(usize::MAX));
            ids.extend(got);
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let order: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let list = id_list(&ids);
    let waiting = &*vocabulary::WAITING;
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "UPDATE messages SET enqueued_at = $1
                 WHERE id IN ({list}) AND enqueued_at IS NULL AND status IN ({waiting})
                 RETURNING id, trace_context, occurrence_id"
            ),
            [now.into()],
        ))
        .await?;
    let mut leased = rows
        .iter()
        .map(|r| {
            Ok(Leased {
                id: r.try_get_by_index::<i64>(0)?,
                trace_context: r.try_get_by_index::<Option<String>>(1)?,
                conversational: r.try_get_by_index::<Option<i64>>(2)?.is_none(),
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    leased.sort_unstable_by_key(|l| order.get(&l.id).copied().unwrap_or(usize::MAX));
    Ok(leased)
}

/// Marks rows as confirmed on the bus (the publish right after commit).
pub async fn mark_enqueued(
    db: &impl ConnectionTrait,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    // Only rows still waiting for this publish: a row the sender already took and handed
    // back for a retry (enqueued_at reset) must stay visible to the relay, however late this
    // confirm comes.
    message::Entity::update_many()
        .col_expr(message::Column::EnqueuedAt, Expr::value(now))
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(message::Column::EnqueuedAt.is_null())
        .filter(message::Column::Status.eq(MessageStatus::Queued.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives leased rows back to the relay after a failed publish.
pub async fn release(db: &impl ConnectionTrait, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    to_outbox()
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Repairs what crashes leave behind. `number`'s rows published more than `stale_enqueue`
/// ago but still queued or retrying, whose campaign does not hold them, lost their job (a sender killed
/// holding it, a dead-lettered job, a bus that restarted): they go back to the relay. The
/// caller runs this part only when the bus holds no job ready for the route, so a job that is
/// merely waiting is never published twice. Rows claimed for sending whose sender died are
/// marked `unknown`: the request may have left, so they are not resent blindly. Returns
/// (requeued, unknown).
pub async fn reconcile(
    db: &impl ConnectionTrait,
    number: &str,
    now: DateTime<Utc>,
    stale_enqueue: Option<Duration>,
    sending_lease: Duration,
) -> Result<(u64, u64)> {
    let requeued = match stale_enqueue {
        Some(stale) => {
            to_outbox()
                .filter(message::Column::EnqueuedAt.lt(now - stale))
                .filter(message::Column::SenderPhone.eq(number))
                .filter(not_held())
                .exec(db)
                .await?
                .rows_affected
        }
        None => 0,
    };
    let unknown = message::Entity::update_many()
        .col_expr(
            message::Column::Status,
            Expr::value(MessageStatus::Unknown.as_str()),
        )
        .col_expr(
            message::Column::LastErrorReason,
            Expr::value(
                "the sender stopped while sending; WhatsApp may or may not have accepted it",
            ),
        )
        .col_expr(message::Column::UpdatedAt, Expr::value(now))
        .filter(message::Column::Status.eq(MessageStatus::Sending.as_str()))
        .filter(message::Column::UpdatedAt.lt(now - sending_lease))
        .exec(db)
        .await?
        .rows_affected;
    Ok((requeued, unknown))
}

/// After the in-process bus started empty (the embedded process restarted), every row it was
/// holding is back in the outbox at once.
pub async fn forget_published(db: &impl ConnectionTrait) -> Result<u64> {
    Ok(to_outbox()
        .filter(message::Column::EnqueuedAt.is_not_null())
        .exec(db)
        .await?
        .rows_affected)
}
