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

/// `number`'s campaign runs with deliveries still to relay, oldest first (among the first
/// `limit` runs of any number): a loose index scan of `idx_messages_unrelayed_by_run`, one
/// index probe per run however large each is, and one more for the number it sends from.
async fn runs_with_backlog(
    db: &impl ConnectionTrait,
    number: &str,
    limit: u64,
) -> Result<Vec<i64>> {
    let waiting = &*vocabulary::WAITING;
    let sql = format!(
        "WITH RECURSIVE runs(id, n) AS (
            SELECT (SELECT MIN(occurrence_id) FROM messages
                    WHERE occurrence_id IS NOT NULL
                      AND enqueued_at IS NULL AND status IN ({waiting})), 1
            UNION ALL
            SELECT (SELECT MIN(m.occurrence_id) FROM messages m
                    WHERE m.occurrence_id > runs.id
                      AND m.enqueued_at IS NULL AND m.status IN ({waiting})), n + 1
            FROM runs WHERE runs.id IS NOT NULL AND n < {limit})
         SELECT id FROM runs WHERE id IS NOT NULL
           AND (SELECT m.sender_phone FROM messages m WHERE m.occurrence_id = runs.id LIMIT 1) = $1"
    );
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [number.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect())
}

/// Up to `limit` relayable rows of one lane: the conversational one (`run` None: API sends,
/// replies, confirmations) or one campaign run.
async fn relayable(
    db: &impl ConnectionTrait,
    number: &str,
    run: Option<i64>,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Each lane's condition matches a partial index's (idx_messages_unrelayed_conversation,
    // idx_messages_unrelayed_by_run), so neither walks past the other's backlog.
    let lane = match run {
        None => "occurrence_id IS NULL".to_string(),
        Some(id) => format!("occurrence_id = {id}"),
    };
    let sql = format!(
        "SELECT id FROM messages WHERE {lane} AND {} ORDER BY id LIMIT {limit}",
        *RELAYABLE
    );
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [now.into(), number.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect())
}

/// At most this many campaign runs share one refill; more wait for the next.
const RUNS_PER_REFILL: u64 = 1_000;

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
) -> Result<Vec<Leased>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut ids = relayable(db, number, None, limit, now).await?;
    let mut free = limit.saturating_sub(ids.len() as u64);
    if free > 0 {
        let candidates = runs_with_backlog(db, number, RUNS_PER_REFILL).await?;
        let held = held_runs(db, &candidates).await?;
        let mut runs: Vec<i64> = candidates
            .into_iter()
            .filter(|r| !held.contains(r))
            .collect();
        // A different first run each refill: when the free window is smaller than the number
        // of runs, every run still gets its turn.
        if !runs.is_empty() {
            let start = usize::try_from(now.timestamp_subsec_micros()).unwrap_or(0) % runs.len();
            runs.rotate_left(start);
        }
        // Round-robin: an equal share each. What a run cannot use stays free until the next
        // refill (a fraction of a second later), when the shares are cut again.
        if !runs.is_empty() {
            let share = free.div_ceil(runs.len() as u64);
            for run in runs {
                let got = relayable(db, number, Some(run), share.min(free), now).await?;
                free -= got.len() as u64;
                ids.extend(got);
                if free == 0 {
                    break;
                }
            }
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

/// Which of `runs` belong to campaigns that hold their deliveries (paused, cancelled, ended).
async fn held_runs(
    db: &impl ConnectionTrait,
    runs: &[i64],
) -> Result<std::collections::HashSet<i64>> {
    if runs.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT o.id FROM occurrences o JOIN scheduled_messages s ON s.id = o.schedule_id
                 WHERE o.id IN ({}) AND s.status IN ({})",
                id_list(runs),
                *vocabulary::HOLDING
            ),
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect())
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
