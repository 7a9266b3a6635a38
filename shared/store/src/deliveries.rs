//! The outgoing side of the messages table: the outbox relay's lease, the sender's claim, and
//! the sender's results written back in batches.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use heydoc_domain::{Direction, MessageStatus};
use heydoc_entity::{message, occurrence, scheduled_message};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
    QueryFilter, Statement, TransactionTrait, Value,
};

use crate::Result;

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
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT status, COUNT(*) FROM messages
             WHERE status IN ('queued', 'sending', 'retrying') AND direction = 'outgoing'
               AND sender_phone = $1
             GROUP BY status",
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
            "SELECT COUNT(*) FROM messages \
             WHERE sender_phone = $1 AND enqueued_at IS NOT NULL AND status IN ('queued', 'retrying')",
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
const RELAYABLE: &str = "sender_phone = $2 AND enqueued_at IS NULL \
     AND status IN ('queued', 'retrying') AND (status = 'queued' OR next_attempt_at <= $1)";

/// `number`'s campaign runs with deliveries still to relay, oldest first (among the first
/// `limit` runs of any number): a loose index scan of `idx_messages_unrelayed_by_run`, one
/// index probe per run however large each is, and one more for the number it sends from.
async fn runs_with_backlog(
    db: &impl ConnectionTrait,
    number: &str,
    limit: u64,
) -> Result<Vec<i64>> {
    let sql = format!(
        "WITH RECURSIVE runs(id, n) AS (
            SELECT (SELECT MIN(occurrence_id) FROM messages
                    WHERE occurrence_id IS NOT NULL
                      AND enqueued_at IS NULL AND status IN ('queued', 'retrying')), 1
            UNION ALL
            SELECT (SELECT MIN(m.occurrence_id) FROM messages m
                    WHERE m.occurrence_id > runs.id
                      AND m.enqueued_at IS NULL AND m.status IN ('queued', 'retrying')), n + 1
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
    let sql =
        format!("SELECT id FROM messages WHERE {lane} AND {RELAYABLE} ORDER BY id LIMIT {limit}");
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
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "UPDATE messages SET enqueued_at = $1
                 WHERE id IN ({list}) AND enqueued_at IS NULL AND status IN ('queued', 'retrying')
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
                 WHERE o.id IN ({}) AND s.status IN ('paused', 'cancelled', 'sent')",
                id_list(runs)
            ),
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect())
}

/// `1,2,3` for an `IN (...)` of ids (integers only, so nothing to escape).
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
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

/// Claims rows for sending (invariant 2): only rows still queued, or retrying and due, move to
/// `sending`, so a duplicate job finds nothing to claim. `traces` (delivery id to `traceparent`) are the
/// sender's spans: stored with the rows, they make the status webhooks children of the send.
/// Returns the claimed rows.
pub async fn claim(
    db: &DatabaseConnection,
    ids: &[i64],
    traces: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<Vec<message::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    skip_unwanted(db, ids, now).await?;
    let claimed = claim_rows(db, ids, traces, now).await?;
    if claimed.len() < ids.len() {
        let got: std::collections::HashSet<i64> = claimed.iter().map(|m| m.id).collect();
        let left: Vec<i64> = ids.iter().copied().filter(|id| !got.contains(id)).collect();
        return_unclaimed(db, &left).await?;
    }
    Ok(claimed)
}

/// Campaign deliveries whose contact opted out or was suppressed since they were queued are
/// skipped, with the reason, at the last moment before a send (invariant 11).
async fn skip_unwanted(db: &DatabaseConnection, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
    // One statement on the claim's path. A campaign delivery whose run is gone (its campaign
    // was deleted while it was being sent, so nothing else holds it back) is skipped too.
    let list = id_list(ids);
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "UPDATE messages SET status = 'skipped', updated_at = $1,
                last_error_reason = CASE WHEN occurrence_id IS NULL THEN 'the campaign was deleted'
                    ELSE (SELECT CASE WHEN c.opted_out_at IS NOT NULL
                                      THEN 'opted out of campaigns'
                                      ELSE 'suppressed: ' || c.suppressed_reason END
                          FROM contacts c WHERE c.id = messages.contact_id) END
             WHERE id IN ({list}) AND origin = 'occurrence'
               AND status IN ('queued', 'retrying')
               AND (occurrence_id IS NULL
                    OR contact_id IN (SELECT id FROM contacts
                                      WHERE opted_out_at IS NOT NULL OR suppressed_reason IS NOT NULL))"
        ),
        [now.into()],
    ))
    .await?;
    Ok(())
}

/// Jobs whose rows were not claimed because they must wait (a held campaign's, or a retry not
/// due by this sender's clock) give their rows back to the outbox: the relay publishes them
/// again when they may go (resumed, due), so no job is needed on the bus meanwhile and none is
/// lost. Rows claimed or finished elsewhere are not touched.
async fn return_unclaimed(db: &DatabaseConnection, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = id_list(ids);
    db.execute(Statement::from_string(
        db.get_database_backend(),
        format!(
            "UPDATE messages SET enqueued_at = NULL
             WHERE id IN ({list}) AND enqueued_at IS NOT NULL
               AND status IN ('queued', 'retrying')"
        ),
    ))
    .await?;
    Ok(())
}

async fn claim_rows(
    db: &DatabaseConnection,
    ids: &[i64],
    traces: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<Vec<message::Model>> {
    let update = || {
        let mut update = message::Entity::update_many();
        if !traces.is_empty() {
            let mut case = sea_orm::sea_query::CaseStatement::new();
            for (id, traceparent) in traces {
                case = case.case(message::Column::Id.eq(*id), traceparent.as_str());
            }
            update = update.col_expr(
                message::Column::TraceContext,
                case.finally(Expr::col(message::Column::TraceContext))
                    .into(),
            );
        }
        update
            .col_expr(
                message::Column::Status,
                Expr::value(MessageStatus::Sending.as_str()),
            )
            .col_expr(
                message::Column::Attempts,
                Expr::col(message::Column::Attempts).add(1),
            )
            .col_expr(message::Column::UpdatedAt, Expr::value(now))
            .filter(message::Column::Id.is_in(ids.iter().copied()))
            .filter(message::Column::Direction.eq(Direction::Outgoing.as_str()))
            // A retry only once its time has come: an early duplicate job must not jump
            // Retry-After; the relay publishes the row again when it is due.
            .filter(
                Condition::any()
                    .add(message::Column::Status.eq(MessageStatus::Queued.as_str()))
                    .add(
                        Condition::all()
                            .add(message::Column::Status.eq(MessageStatus::Retrying.as_str()))
                            .add(message::Column::NextAttemptAt.lte(now)),
                    ),
            )
            .filter(not_held())
    };
    if db.get_database_backend() == DatabaseBackend::Postgres {
        return Ok(update().exec_with_returning(db).await?);
    }
    // SQLite (one connection, so the transaction is the only writer): update, then read back
    // the rows this update stamped.
    let txn = db.begin().await?;
    update().exec(&txn).await?;
    let rows = message::Entity::find()
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(message::Column::Status.eq(MessageStatus::Sending.as_str()))
        .filter(message::Column::UpdatedAt.eq(now))
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}

/// Deliveries of paused, cancelled or ended (marked sent) campaigns are not sent: they stay
/// queued (a resumed campaign hands them back to the relay, a cancelled one skips them).
fn not_held() -> Condition {
    let held = Query::select()
        .column((occurrence::Entity, occurrence::Column::Id))
        .from(occurrence::Entity)
        .inner_join(
            scheduled_message::Entity,
            Expr::col((scheduled_message::Entity, scheduled_message::Column::Id))
                .equals((occurrence::Entity, occurrence::Column::ScheduleId)),
        )
        .and_where(
            Expr::col((scheduled_message::Entity, scheduled_message::Column::Status)).is_in([
                "paused",
                "cancelled",
                "sent",
            ]),
        )
        .to_owned();
    Condition::any()
        .add(message::Column::OccurrenceId.is_null())
        .add(message::Column::OccurrenceId.not_in_subquery(held))
}

/// Rows still to send (queued, or retrying).
fn unsent() -> sea_orm::sea_query::SimpleExpr {
    message::Column::Status.is_in([
        MessageStatus::Queued.as_str(),
        MessageStatus::Retrying.as_str(),
    ])
}

/// An update handing rows still to send back to the outbox (`enqueued_at` cleared).
fn to_outbox() -> sea_orm::UpdateMany<message::Entity> {
    message::Entity::update_many()
        .col_expr(
            message::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(unsent())
}

/// An update skipping rows still to send, with the reason.
pub(crate) fn skip_unsent(
    reason: &str,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<message::Entity> {
    message::Entity::update_many()
        .col_expr(
            message::Column::Status,
            Expr::value(MessageStatus::Skipped.as_str()),
        )
        .col_expr(message::Column::LastErrorReason, Expr::value(reason))
        .col_expr(message::Column::UpdatedAt, Expr::value(now))
        .filter(unsent())
}

/// A resumed campaign: its deliveries still to send go back to the relay.
pub async fn resume_schedule(
    db: &impl ConnectionTrait,
    schedule_id: i32,
    now: DateTime<Utc>,
) -> Result<u64> {
    let resumed = to_outbox()
        .filter(message::Column::OccurrenceId.in_subquery(occurrences_of(schedule_id)))
        .exec(db)
        .await?
        .rows_affected;
    // Deliveries held for the campaign's sake (a template WhatsApp refused) are due at once: a
    // person resuming it says the cause is gone.
    message::Entity::update_many()
        .col_expr(message::Column::NextAttemptAt, Expr::value(now))
        .filter(message::Column::Status.eq(MessageStatus::Retrying.as_str()))
        .filter(message::Column::NextAttemptAt.gt(now))
        .filter(message::Column::OccurrenceId.in_subquery(occurrences_of(schedule_id)))
        .exec(db)
        .await?;
    Ok(resumed)
}

/// A cancelled (or deleted, or marked sent) campaign: its deliveries not sent yet are
/// skipped, with the reason.
pub async fn cancel_schedule(
    db: &impl ConnectionTrait,
    schedule_id: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    Ok(skip_unsent(reason, now)
        .filter(message::Column::OccurrenceId.in_subquery(occurrences_of(schedule_id)))
        .exec(db)
        .await?
        .rows_affected)
}

fn occurrences_of(schedule_id: i32) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(occurrence::Column::Id)
        .from(occurrence::Entity)
        .and_where(occurrence::Column::ScheduleId.eq(schedule_id))
        .to_owned()
}

/// What became of one claimed send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        wamid: String,
    },
    Retry {
        at: DateTime<Utc>,
        code: Option<i32>,
        reason: String,
    },
    Failed {
        code: Option<i32>,
        reason: String,
    },
    Skipped {
        reason: String,
    },
    Unknown {
        reason: String,
    },
    /// Not about this message (the number's token, the account, a template): it waits, as a
    /// retry at `at`, without spending an attempt.
    Held {
        at: DateTime<Utc>,
        code: Option<i32>,
        reason: String,
    },
}

impl Outcome {
    fn status(&self) -> MessageStatus {
        match self {
            Outcome::Sent { .. } => MessageStatus::Sent,
            Outcome::Retry { .. } | Outcome::Held { .. } => MessageStatus::Retrying,
            Outcome::Failed { .. } => MessageStatus::Failed,
            Outcome::Skipped { .. } => MessageStatus::Skipped,
            Outcome::Unknown { .. } => MessageStatus::Unknown,
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        self.status().as_str()
    }
}

/// One result to write back.
#[derive(Debug, Clone)]
pub struct SendResult {
    pub id: i64,
    pub contact_id: i32,
    pub outcome: Outcome,
    /// Stop messaging this contact, and why (131050, 131026).
    pub suppress: Option<String>,
    /// Pause this delivery's campaign, and why (a template Meta paused or refused).
    pub pause_campaign: Option<(i64, String)>,
}

/// Writes a batch of results in one transaction. On PostgreSQL the messages are updated with
/// one statement (`json_to_recordset`); only rows still `sending` change, so a status webhook
/// that already moved a row to delivered is not undone. The `message.status` events of the
/// rows that did change are recorded in the same transaction.
pub async fn record(
    db: &DatabaseConnection,
    results: &[SendResult],
    now: DateTime<Utc>,
) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await?;
    let mut changed: Vec<i64> = Vec::with_capacity(results.len());
    match txn.get_database_backend() {
        DatabaseBackend::Postgres => {
            let rows: Vec<serde_json::Value> = results.iter().map(row_json).collect();
            let updated = txn.query_all(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "UPDATE messages AS m SET
                    status = v.status,
                    message_id = COALESCE(v.wamid, m.message_id),
                    last_error_code = v.code,
                    last_error_reason = v.reason,
                    next_attempt_at = v.next_at,
                    attempts = m.attempts - v.refund,
                    enqueued_at = CASE WHEN v.status = 'retrying' THEN NULL ELSE m.enqueued_at END,
                    updated_at = $2
                 FROM json_to_recordset($1::json)
                    AS v(id bigint, status text, wamid text, code int, reason text, next_at timestamptz, refund int)
                 WHERE m.id = v.id AND m.status IN ('sending', 'unknown')
                 RETURNING m.id",
                [Value::Json(Some(Box::new(serde_json::Value::Array(rows)))), now.into()],
            ))
            .await?;
            changed.extend(
                updated
                    .iter()
                    .filter_map(|r| r.try_get_by_index::<i64>(0).ok()),
            );
        }
        _ => {
            for r in results {
                let (wamid, code, reason, next_at) = parts(&r.outcome);
                let mut update = message::Entity::update_many()
                    .col_expr(
                        message::Column::Status,
                        Expr::value(r.outcome.status().as_str()),
                    )
                    .col_expr(message::Column::LastErrorCode, Expr::value(code))
                    .col_expr(message::Column::LastErrorReason, Expr::value(reason))
                    .col_expr(message::Column::NextAttemptAt, Expr::value(next_at))
                    .col_expr(message::Column::UpdatedAt, Expr::value(now))
                    .filter(message::Column::Id.eq(r.id))
                    .filter(message::Column::Status.is_in([
                        MessageStatus::Sending.as_str(),
                        MessageStatus::Unknown.as_str(),
                    ]));
                if let Some(w) = wamid {
                    update = update.col_expr(message::Column::MessageId, Expr::value(w));
                }
                if matches!(r.outcome, Outcome::Retry { .. } | Outcome::Held { .. }) {
                    update = update.col_expr(
                        message::Column::EnqueuedAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    );
                }
                if matches!(r.outcome, Outcome::Held { .. }) {
                    update = update.col_expr(
                        message::Column::Attempts,
                        Expr::col(message::Column::Attempts).sub(1),
                    );
                }
                if update.exec(&txn).await?.rows_affected > 0 {
                    changed.push(r.id);
                }
            }
        }
    }
    let changed: std::collections::HashSet<i64> = changed.into_iter().collect();
    crate::events::emit_send_results(&txn, results, &changed, now).await?;
    for r in results {
        if let Some(reason) = &r.suppress {
            crate::failures::suppress_contact(&txn, r.contact_id, reason, now).await?;
        }
        if let Some((occurrence, reason)) = &r.pause_campaign {
            if crate::failures::pause_campaign_of(&txn, *occurrence, reason, now).await? {
                tracing::warn!(occurrence_id = occurrence, %reason, "campaign paused");
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

fn parts(
    o: &Outcome,
) -> (
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<DateTime<Utc>>,
) {
    match o {
        Outcome::Sent { wamid } => (Some(wamid.clone()), None, None, None),
        Outcome::Retry { at, code, reason } | Outcome::Held { at, code, reason } => {
            (None, *code, Some(reason.clone()), Some(*at))
        }
        Outcome::Failed { code, reason } => (None, *code, Some(reason.clone()), None),
        Outcome::Skipped { reason } | Outcome::Unknown { reason } => {
            (None, None, Some(reason.clone()), None)
        }
    }
}

fn row_json(r: &SendResult) -> serde_json::Value {
    let (wamid, code, reason, next_at) = parts(&r.outcome);
    serde_json::json!({
        "id": r.id,
        "status": r.outcome.status().as_str(),
        "wamid": wamid,
        "code": code,
        "reason": reason,
        "next_at": next_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        "refund": i32::from(matches!(r.outcome, Outcome::Held { .. })),
    })
}
