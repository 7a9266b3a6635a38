//! The sender's claim, and what pausing, resuming and cancelling a campaign does to its deliveries.

use chrono::{DateTime, Utc};
use heydoc_domain::{Direction, MessageStatus};
use heydoc_entity::message;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
    QueryFilter, Statement, TransactionTrait,
};

use crate::vocabulary;
use crate::Result;

use super::{id_list, not_held, occurrences_of, skip_unsent, to_outbox};

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

/// Jobs whose rows were not claimed because they must wait (a held campaign's, or a retry not
/// due by this sender's clock) give their rows back to the outbox: the relay publishes them
/// again when they may go (resumed, due), so no job is needed on the bus meanwhile and none is
/// lost. Rows claimed or finished elsewhere are not touched.
async fn return_unclaimed(db: &DatabaseConnection, ids: &[i64]) -> Result<()> {
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
