//! The outgoing side of the messages table: the outbox relay's lease, the sender's claim, and
//! the sender's results written back in batches.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use heydoc_domain::{Direction, MessageStatus};
use heydoc_entity::{contact, message, occurrence, scheduled_message};
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

/// Outgoing messages not finished yet, by status (every status of `IN_FLIGHT`, zeros included).
/// Finished ones are not counted: that would scan the whole history.
pub async fn count_in_flight(db: &DatabaseConnection) -> Result<Vec<(&'static str, i64)>> {
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT status, COUNT(*) FROM messages
             WHERE status IN ('queued', 'sending', 'retrying') AND direction = 'outgoing'
             GROUP BY status",
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
}

/// Leases up to `limit` rows the bus has not confirmed yet (new sends, and retries whose time
/// has come) by stamping `enqueued_at`, and returns them in id order. Several relays may run:
/// on PostgreSQL each takes different rows (`FOR UPDATE SKIP LOCKED`).
pub async fn lease_unrelayed(
    db: &DatabaseConnection,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<Vec<Leased>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "UPDATE messages SET enqueued_at = $1 WHERE id IN (
                SELECT id FROM messages
                WHERE enqueued_at IS NULL AND status IN ('queued', 'retrying')
                  AND (status = 'queued' OR next_attempt_at <= $1)
                ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, trace_context"
        }
        _ => {
            "UPDATE messages SET enqueued_at = $1 WHERE id IN (
                SELECT id FROM messages
                WHERE enqueued_at IS NULL AND status IN ('queued', 'retrying')
                  AND (status = 'queued' OR next_attempt_at <= $1)
                ORDER BY id LIMIT $2)
             RETURNING id, trace_context"
        }
    };
    let rows = db
        .query_all(Statement::from_sql_and_values(
            backend,
            sql,
            [now.into(), (limit as i64).into()],
        ))
        .await?;
    let mut leased = rows
        .iter()
        .map(|r| {
            Ok(Leased {
                id: r.try_get_by_index::<i64>(0)?,
                trace_context: r.try_get_by_index::<Option<String>>(1)?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    leased.sort_unstable_by_key(|l| l.id);
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
    message::Entity::update_many()
        .col_expr(
            message::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(message::Column::Status.is_in([
            MessageStatus::Queued.as_str(),
            MessageStatus::Retrying.as_str(),
        ]))
        .exec(db)
        .await?;
    Ok(())
}

/// Repairs what crashes leave behind: rows confirmed on the bus long ago but still queued
/// (the job was lost, e.g. a queue purged) are handed back to the relay, and rows claimed for
/// sending whose sender died are marked `unknown`: the request may have left, so they are not
/// resent blindly. Returns (requeued, unknown).
pub async fn reconcile(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    stale_enqueue: Duration,
    sending_lease: Duration,
) -> Result<(u64, u64)> {
    let requeued = message::Entity::update_many()
        .col_expr(
            message::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(message::Column::Status.eq(MessageStatus::Queued.as_str()))
        .filter(message::Column::EnqueuedAt.lt(now - stale_enqueue))
        .exec(db)
        .await?
        .rows_affected;
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

/// A resumed campaign: its deliveries still queued go back to the relay.
pub async fn resume_schedule(db: &impl ConnectionTrait, schedule_id: i32) -> Result<u64> {
    Ok(message::Entity::update_many()
        .col_expr(
            message::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(message::Column::Status.is_in([
            MessageStatus::Queued.as_str(),
            MessageStatus::Retrying.as_str(),
        ]))
        .filter(message::Column::OccurrenceId.in_subquery(occurrences_of(schedule_id)))
        .exec(db)
        .await?
        .rows_affected)
}

/// A cancelled (or deleted, or marked sent) campaign: its deliveries not sent yet are
/// skipped, with the reason.
pub async fn cancel_schedule(
    db: &impl ConnectionTrait,
    schedule_id: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    Ok(message::Entity::update_many()
        .col_expr(
            message::Column::Status,
            Expr::value(MessageStatus::Skipped.as_str()),
        )
        .col_expr(message::Column::LastErrorReason, Expr::value(reason))
        .col_expr(message::Column::UpdatedAt, Expr::value(now))
        .filter(message::Column::Status.is_in([
            MessageStatus::Queued.as_str(),
            MessageStatus::Retrying.as_str(),
        ]))
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
}

impl Outcome {
    fn status(&self) -> MessageStatus {
        match self {
            Outcome::Sent { .. } => MessageStatus::Sent,
            Outcome::Retry { .. } => MessageStatus::Retrying,
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
                    enqueued_at = CASE WHEN v.status = 'retrying' THEN NULL ELSE m.enqueued_at END,
                    updated_at = $2
                 FROM json_to_recordset($1::json)
                    AS v(id bigint, status text, wamid text, code int, reason text, next_at timestamptz)
                 WHERE m.id = v.id AND m.status = 'sending'
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
                    .filter(message::Column::Status.eq(MessageStatus::Sending.as_str()));
                if let Some(w) = wamid {
                    update = update.col_expr(message::Column::MessageId, Expr::value(w));
                }
                if matches!(r.outcome, Outcome::Retry { .. }) {
                    update = update.col_expr(
                        message::Column::EnqueuedAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
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
    for r in results.iter().filter(|r| r.suppress.is_some()) {
        contact::Entity::update_many()
            .col_expr(
                contact::Column::SuppressedReason,
                Expr::value(r.suppress.clone()),
            )
            .col_expr(contact::Column::UpdatedAt, Expr::value(now))
            .filter(contact::Column::Id.eq(r.contact_id))
            .exec(&txn)
            .await?;
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
        Outcome::Retry { at, code, reason } => (None, *code, Some(reason.clone()), Some(*at)),
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
    })
}
