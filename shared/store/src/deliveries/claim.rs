//! The sender's claim, and what pausing, resuming and cancelling a campaign does to its deliveries.
//!
//! A job becomes a send in three steps. `sendable` reads, for a batch of jobs, the rows that may
//! go now (the others wait in the outbox, or were duplicates); only those take pacing slots.
//! `claim` then moves each row to `sending` just before its own Cloud API call, so a sender
//! that dies leaves `sending` only the calls it had started: those become `unknown`, and
//! nothing that never left is lost. A claim that may have failed after it committed is undone
//! by `release_claims`.

use chrono::{DateTime, Utc};
use heydoc_domain::{Direction, MessageStatus};
use heydoc_entity::message;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
    QueryFilter, QuerySelect, Statement, TransactionTrait,
};

use crate::vocabulary;
use crate::Result;

use super::{id_list, not_held, occurrences_of, skip_unsent, to_outbox};

/// Rows that may be claimed now: outgoing, queued or a retry whose time has come, and not
/// held by their campaign.
fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(message::Column::Direction.eq(Direction::Outgoing.as_str()))
        // A retry only once its time has come: an early duplicate job must not jump
        // Retry-After; the relay publishes the row again when it is due.
        .add(
            Condition::any()
                .add(message::Column::Status.eq(MessageStatus::Queued.as_str()))
                .add(
                    Condition::all()
                        .add(message::Column::Status.eq(MessageStatus::Retrying.as_str()))
                        .add(message::Column::NextAttemptAt.lte(now)),
                ),
        )
        .add(not_held())
}

/// Of the rows `ids` named by a batch of jobs, the ones that may be sent now. Campaign
/// deliveries whose contact opted out or was suppressed since they were queued are skipped
/// first, with the reason (invariant 11). Rows that must wait (a held campaign's, a retry not
/// due by this clock) go back to the outbox: the relay publishes them again when they may go,
/// so no job is needed on the bus meanwhile and none is lost. Rows claimed or finished
/// elsewhere are neither returned nor touched: their jobs are duplicates.
pub async fn sendable(
    db: &DatabaseConnection,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<Vec<message::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    skip_unwanted(db, ids, now).await?;
    let rows = message::Entity::find()
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(claimable(now))
        .all(db)
        .await?;
    if rows.len() < ids.len() {
        let got: std::collections::HashSet<i64> = rows.iter().map(|m| m.id).collect();
        let left: Vec<i64> = ids.iter().copied().filter(|id| !got.contains(id)).collect();
        return_unclaimed(db, &left).await?;
    }
    Ok(rows)
}

/// Campaign deliveries whose contact opted out or was suppressed since they were queued are
/// skipped, with the reason, at the last moment before a send (invariant 11).
async fn skip_unwanted(db: &DatabaseConnection, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
    // One statement on the claim's path. A campaign delivery whose run is gone (its campaign
    // was deleted while it was being sent, so nothing else holds it back) is skipped too.
    let list = id_list(ids);
    let (skipped, waiting) = (
        vocabulary::message(MessageStatus::Skipped),
        &*vocabulary::WAITING,
    );
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "UPDATE messages SET status = {skipped}, updated_at = $1,
                last_error_reason = CASE WHEN occurrence_id IS NULL THEN 'the campaign was deleted'
                    ELSE (SELECT CASE WHEN c.opted_out_at IS NOT NULL
                                      THEN 'opted out of campaigns'
                                      ELSE 'suppressed: ' || c.suppressed_reason END
                          FROM contacts c WHERE c.id = messages.contact_id) END
             WHERE id IN ({list}) AND origin = 'occurrence'
               AND status IN ({waiting})
               AND (occurrence_id IS NULL
                    OR contact_id IN (SELECT id FROM contacts
                                      WHERE opted_out_at IS NOT NULL OR suppressed_reason IS NOT NULL))"
        ),
        [now.into()],
    ))
    .await?;
    Ok(())
}

/// Gives rows whose jobs were taken but not sent back to the outbox (`enqueued_at` cleared):
/// only rows still waiting; rows claimed or finished elsewhere are not touched.
pub async fn return_unclaimed(db: &impl ConnectionTrait, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = id_list(ids);
    let waiting = &*vocabulary::WAITING;
    db.execute(Statement::from_string(
        db.get_database_backend(),
        format!(
            "UPDATE messages SET enqueued_at = NULL
             WHERE id IN ({list}) AND enqueued_at IS NOT NULL
               AND status IN ({waiting})"
        ),
    ))
    .await?;
    Ok(())
}

/// Rows whose jobs were taken but must not go before `until` (the number cannot send, or the
/// recipient's pair rate is spent) wait as retries due then, spending no attempt, and leave the
/// bus. Only rows still waiting change.
pub async fn hold(
    db: &impl ConnectionTrait,
    ids: &[i64],
    until: DateTime<Utc>,
    code: Option<i32>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let reason: String = reason.chars().take(1000).collect();
    Ok(waiting_again(until, now, false)
        .col_expr(message::Column::LastErrorCode, Expr::value(code))
        .col_expr(message::Column::LastErrorReason, Expr::value(reason))
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(super::unsent())
        .exec(db)
        .await?
        .rows_affected)
}

/// Rows back in the outbox as retries due `until` (and, with `give_back`, the attempt that was
/// counted for them returned): what the callers filter is what changes.
fn waiting_again(
    until: DateTime<Utc>,
    now: DateTime<Utc>,
    give_back: bool,
) -> sea_orm::UpdateMany<message::Entity> {
    let update = message::Entity::update_many()
        .col_expr(
            message::Column::Status,
            Expr::value(MessageStatus::Retrying.as_str()),
        )
        .col_expr(message::Column::NextAttemptAt, Expr::value(until))
        .col_expr(
            message::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(message::Column::UpdatedAt, Expr::value(now));
    if give_back {
        update.col_expr(
            message::Column::Attempts,
            Expr::col(message::Column::Attempts).sub(1),
        )
    } else {
        update
    }
}

/// One row to claim: its id and, when traces are recorded, the sender span's `traceparent`
/// (stored with the row, it makes the status webhooks children of the send).
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub id: i64,
    pub traceparent: Option<String>,
}

/// Claims rows for sending (invariant 2), stamped `now`: only rows still claimable move to
/// `sending`, so a duplicate job finds nothing to claim. Returns the claimed rows' ids with
/// their attempt number (this one included).
pub async fn claim(
    db: &DatabaseConnection,
    requests: &[ClaimRequest],
    now: DateTime<Utc>,
) -> Result<Vec<(i64, i32)>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = requests.iter().map(|r| r.id).collect();
    let update = || {
        let mut update = message::Entity::update_many();
        let traced: Vec<(i64, &str)> = requests
            .iter()
            .filter_map(|r| r.traceparent.as_deref().map(|t| (r.id, t)))
            .collect();
        if !traced.is_empty() {
            let mut case = sea_orm::sea_query::CaseStatement::new();
            for (id, traceparent) in traced {
                case = case.case(message::Column::Id.eq(id), traceparent);
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
            .filter(claimable(now))
    };
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let rows = update().exec_with_returning(db).await?;
        return Ok(rows.into_iter().map(|m| (m.id, m.attempts)).collect());
    }
    // SQLite (one connection, so the transaction is the only writer): update, then read back
    // the rows this update stamped.
    let txn = db.begin().await?;
    update().exec(&txn).await?;
    let rows: Vec<(i64, i32)> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .column(message::Column::Attempts)
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(message::Column::Status.eq(MessageStatus::Sending.as_str()))
        .filter(message::Column::UpdatedAt.eq(now))
        .into_tuple()
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}

/// Undoes a claim stamped `claimed_at` whose calls were never made (the claim's answer was
/// lost, so it may or may not have committed): the rows it moved to `sending` wait again, due
/// now, with the attempt given back. Rows anything else has moved since are not touched.
pub async fn release_claims(
    db: &impl ConnectionTrait,
    ids: &[i64],
    claimed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(waiting_again(now, now, true)
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .filter(message::Column::Status.eq(MessageStatus::Sending.as_str()))
        .filter(message::Column::UpdatedAt.eq(claimed_at))
        .exec(db)
        .await?
        .rows_affected)
}

/// A campaign paused at `paused_at` and resumed `now`: its deliveries still to send go back to
/// the relay, and every one that was waiting for a later time (the later days of a campaign
/// spread over days, a retry's back-off, a hold for Meta's marketing limit) moves on by the
/// time the campaign was held, so each keeps its own place: nothing waiting is released early,
/// and a day's share stays a day's share. Returns how many went back to the relay.
pub async fn resume_schedule(
    db: &impl ConnectionTrait,
    schedule_id: i32,
    paused_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let resumed = to_outbox()
        .filter(message::Column::OccurrenceId.in_subquery(occurrences_of(schedule_id)))
        .exec(db)
        .await?
        .rows_affected;
    let Some(paused_at) = paused_at.filter(|p| *p < now) else {
        return Ok(resumed);
    };
    let held = now - paused_at;
    // Rows that were due before the pause are due now; those due during or after it move on.
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.execute(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                format!(
                    "UPDATE messages SET next_attempt_at = next_attempt_at + make_interval(secs => $1)
                     WHERE status = {} AND next_attempt_at > $2
                       AND occurrence_id IN (SELECT id FROM occurrences WHERE schedule_id = $3)",
                    vocabulary::message(MessageStatus::Retrying)
                ),
                [
                    (held.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).into(),
                    paused_at.into(),
                    schedule_id.into(),
                ],
            ))
            .await?;
        }
        _ => shift_each(db, schedule_id, paused_at, held).await?,
    }
    Ok(resumed)
}

/// The embedded database's way of moving waiting rows on: read, add, write back in batches
/// (SQLite has no interval arithmetic on the text it stores times as).
async fn shift_each(
    db: &impl ConnectionTrait,
    schedule_id: i32,
    paused_at: DateTime<Utc>,
    held: chrono::Duration,
) -> Result<()> {
    let rows: Vec<(i64, Option<DateTime<Utc>>)> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .column(message::Column::NextAttemptAt)
        .filter(message::Column::Status.eq(MessageStatus::Retrying.as_str()))
        .filter(message::Column::NextAttemptAt.gt(paused_at))
        .filter(message::Column::OccurrenceId.in_subquery(occurrences_of(schedule_id)))
        .into_tuple()
        .all(db)
        .await?;
    for part in rows.chunks(500) {
        let mut case = sea_orm::sea_query::CaseStatement::new();
        for (id, at) in part {
            if let Some(at) = at {
                case = case.case(message::Column::Id.eq(*id), *at + held);
            }
        }
        message::Entity::update_many()
            .col_expr(
                message::Column::NextAttemptAt,
                case.finally(Expr::col(message::Column::NextAttemptAt))
                    .into(),
            )
            .filter(message::Column::Id.is_in(part.iter().map(|(id, _)| *id)))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// A send Meta accepted and then failed by status webhook for a reason that is the number's,
/// not the message's (the account's payment, registration, a policy block): like the same
/// answer to the call, the delivery waits for the number as a retry due `until`, the attempt
/// given back. Only a row just marked failed changes.
pub async fn refused_for_number(
    db: &impl ConnectionTrait,
    id: i64,
    until: DateTime<Utc>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let reason: String = reason.chars().take(1000).collect();
    Ok(waiting_again(until, now, true)
        .col_expr(message::Column::LastErrorReason, Expr::value(reason))
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::Status.eq(MessageStatus::Failed.as_str()))
        .exec(db)
        .await?
        .rows_affected
        > 0)
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
