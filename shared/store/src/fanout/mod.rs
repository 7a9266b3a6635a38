//! Fan-out: an occurrence becomes one delivery (outgoing message) per recipient, unique on
//! (occurrence, contact). The audience is resolved now: the explicit recipients plus every
//! contact carrying one of the tags. Opted-out and suppressed contacts get a delivery that is
//! `skipped` at once and says why, so campaign results show them; nothing is sent. It is expanded
//! in chunks, each in its own transaction with the saved cursor (the last contact id done), so
//! a crash resumes at the next chunk and no transaction grows with the campaign.

mod audience;
mod write;

use audience::{ensure_contacts, next_audience};
use write::insert_deliveries;

use chrono::{DateTime, Duration, Utc};
use heydoc_domain::{template, ScheduleStatus};
use heydoc_entity::{occurrence, scheduled_message as schedule};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect,
    Statement, TransactionTrait,
};
use tracing::Instrument;

use crate::{Db, Result};

const STATE_FANNING_OUT: &str = heydoc_domain::OccurrenceState::FanningOut.as_str();
const STATE_DONE: &str = heydoc_domain::OccurrenceState::Done.as_str();
const STATE_CANCELLED: &str = heydoc_domain::OccurrenceState::Cancelled.as_str();

/// How a scheduler fans out: its chunk size, its lease, and the default business number.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub db: Db,
    /// Recipients expanded per transaction.
    pub chunk: u64,
    /// A fan-out whose scheduler stopped is taken over after this long.
    pub lease_secs: i64,
    /// The number campaign messages go from when their schedule names none.
    pub business_number: String,
    /// Skip US (+1) recipients of marketing templates (Meta refuses them).
    pub skip_us_marketing: bool,
}

/// Why a US recipient of a marketing template gets nothing.
pub const US_MARKETING_PAUSED: &str =
    "Meta does not deliver marketing templates to US (+1) numbers (paused since 2025-04-01)";

/// Whether this campaign sends a marketing template (as the account's catalog says).
async fn sends_marketing(
    db: &impl ConnectionTrait,
    ctx: &Fanout,
    schedule: &schedule::Model,
) -> Result<bool> {
    let Some((name, language)) = crate::templates::template_of(schedule) else {
        return Ok(false);
    };
    let number = schedule
        .sender_number
        .clone()
        .unwrap_or_else(|| ctx.business_number.clone());
    let Some(n) = crate::numbers::find(db, &number).await? else {
        return Ok(false);
    };
    Ok(crate::templates::find(db, &n.waba_id, &name, &language)
        .await?
        .is_some_and(|t| t.category.eq_ignore_ascii_case("MARKETING")))
}

/// A US recipient (not Canada or the Caribbean, which share +1).
fn in_us(phone: &str) -> bool {
    heydoc_domain::phone::is_us(phone)
}

/// Takes one occurrence whose fan-out lease is free and expands it to the end (or until its
/// schedule is paused). Returns false when there was nothing to take.
pub async fn fan_out_one(ctx: &Fanout) -> Result<bool> {
    let Some(leased) = lease(ctx).await? else {
        return Ok(false);
    };
    expand(ctx, leased).await?;
    Ok(true)
}

/// An occurrence this fan-out holds: its id and the stamp its lease was last taken or renewed
/// with (`occurrences.updated_at`). A chunk goes ahead only while the row still carries the
/// stamp, so a fan-out whose lease ran out and was taken over stops at its next chunk instead
/// of expanding the run a second time beside its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leased {
    pub id: i64,
    stamp: DateTime<Utc>,
}

/// Expands a leased occurrence to the end (or until its schedule is paused, or its lease is
/// lost to another scheduler).
pub async fn expand(ctx: &Fanout, mut leased: Leased) -> Result<()> {
    loop {
        match chunk(ctx, leased).await? {
            Step::More(renewed) => leased = renewed,
            Step::Finished | Step::Paused => return Ok(()),
            Step::LeaseLost => {
                tracing::warn!(
                    occurrence_id = leased.id,
                    "fan-out lease taken over by another scheduler; stopping here"
                );
                return Ok(());
            }
        }
    }
}

/// A lease stamp: now, to the microsecond both databases keep, so that the value written is
/// the value compared.
fn stamp_now() -> DateTime<Utc> {
    use chrono::DurationRound;
    let now = Utc::now();
    now.duration_trunc(Duration::microseconds(1)).unwrap_or(now)
}

/// Leases one occurrence being fanned out whose lease has expired (or was never taken).
pub async fn lease(ctx: &Fanout) -> Result<Option<Leased>> {
    let now = stamp_now();
    let cutoff = now - Duration::seconds(ctx.lease_secs.max(1));
    let backend = ctx.db.get_database_backend();
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE occurrences SET updated_at = $1 WHERE id = (
            SELECT id FROM occurrences WHERE state = '{STATE_FANNING_OUT}' AND updated_at <= $2
            ORDER BY id LIMIT 1{lock})
         RETURNING id"
    );
    let row = ctx
        .db
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [now.into(), cutoff.into()],
        ))
        .await?;
    let id = row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?;
    Ok(id.map(|id| Leased { id, stamp: now }))
}

enum Step {
    /// A chunk was written; the lease was renewed with this stamp.
    More(Leased),
    Finished,
    Paused,
    /// Another scheduler took the occurrence over (this one's lease had run out).
    LeaseLost,
}

/// One chunk, in one transaction: the lease is checked and renewed (the row stays locked until
/// the commit, so no other scheduler can take it meanwhile), the next recipients after the
/// cursor become deliveries, the cursor moves.
async fn chunk(ctx: &Fanout, leased: Leased) -> Result<Step> {
    let now = stamp_now();
    let occurrence_id = leased.id;
    let txn = ctx.db.begin().await?;
    let renewed = occurrence::Entity::update_many()
        .col_expr(occurrence::Column::UpdatedAt, Expr::value(now))
        .filter(occurrence::Column::Id.eq(occurrence_id))
        .filter(occurrence::Column::UpdatedAt.eq(leased.stamp))
        .exec(&txn)
        .await?
        .rows_affected;
    let Some(occ) = occurrence::Entity::find_by_id(occurrence_id)
        .one(&txn)
        .await?
    else {
        return Ok(Step::Finished);
    };
    if occ.state != STATE_FANNING_OUT {
        return Ok(Step::Finished);
    }
    if renewed == 0 {
        return Ok(Step::LeaseLost);
    }
    // A child of the occurrence's span, whichever scheduler fired it.
    let span = tracing::info_span!(
        "fan-out chunk",
        heydoc.occurrence_id = occurrence_id,
        heydoc.schedule_id = occ.schedule_id,
        heydoc.cursor = occ.cursor.unwrap_or(0),
        heydoc.deliveries = tracing::field::Empty,
    );
    heydoc_telemetry::propagation::set_parent_traceparent(&span, occ.trace_context.as_deref());
    chunk_of(ctx, txn, occ, now, &span)
        .instrument(span.clone())
        .await
}

async fn chunk_of(
    ctx: &Fanout,
    txn: sea_orm::DatabaseTransaction,
    occ: occurrence::Model,
    now: DateTime<Utc>,
    span: &tracing::Span,
) -> Result<Step> {
    let occurrence_id = occ.id;
    // The schedule row is held (shared) until this chunk commits, so a cancel, a delete or a
    // "sent" waits for the chunk and then sees (and skips) the deliveries it made.
    let mut find = schedule::Entity::find_by_id(occ.schedule_id);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        find = find.lock_shared();
    }
    let schedule = find.one(&txn).await?;
    // Cancelled, or ended by the client marking it sent: nothing more is fanned out.
    let Some(schedule) = schedule.filter(|s| {
        s.status != ScheduleStatus::Cancelled.as_str() && s.status != ScheduleStatus::Sent.as_str()
    }) else {
        set_state(&txn, occurrence_id, STATE_CANCELLED, occ.cursor, 0, now).await?;
        txn.commit().await?;
        return Ok(Step::Finished);
    };
    if schedule.status == ScheduleStatus::Paused.as_str() {
        // Stop here; the lease runs out and the fan-out resumes after the schedule does.
        return Ok(Step::Paused);
    }
    let recipients: Vec<String> =
        serde_json::from_value(schedule.recipients.clone()).unwrap_or_default();
    let tag_ids: Vec<i32> = serde_json::from_value(schedule.tag_ids.clone()).unwrap_or_default();
    if occ.cursor.is_none() && !recipients.is_empty() {
        ensure_contacts(&txn, &recipients, now).await?;
    }
    let cursor = occ.cursor.unwrap_or(0);
    let limit = ctx.chunk.max(1);
    let personal = schedule
        .message
        .as_deref()
        .is_some_and(template::has_placeholders)
        || schedule
            .template
            .as_ref()
            .is_some_and(template::value_has_placeholders);
    let mut rows =
        next_audience(&txn, &recipients, &tag_ids, cursor as i32, limit, personal).await?;
    if ctx.skip_us_marketing
        && rows.iter().any(|r| r.skip.is_none() && in_us(&r.phone))
        && sends_marketing(&txn, ctx, &schedule).await?
    {
        for r in rows
            .iter_mut()
            .filter(|r| r.skip.is_none() && in_us(&r.phone))
        {
            r.skip = Some(US_MARKETING_PAUSED.to_string());
        }
    }
    if !rows.is_empty() {
        let spread = write::Spread {
            first: i64::from(occ.planned),
            start: occ.fire_at,
        };
        insert_deliveries(&txn, ctx, &schedule, occurrence_id, &rows, spread, now).await?;
    }
    span.record("heydoc.deliveries", rows.len());
    let last = rows.last().map(|r| i64::from(r.id)).unwrap_or(cursor);
    let finished = (rows.len() as u64) < limit;
    let state = if finished {
        STATE_DONE
    } else {
        STATE_FANNING_OUT
    };
    set_state(
        &txn,
        occurrence_id,
        state,
        Some(last),
        rows.len() as i32,
        now,
    )
    .await?;
    if finished {
        // In the same transaction: the event exists if and only if the run is complete.
        let event = crate::outbound::OccurrenceCompleted {
            schedule_id: schedule.id,
            occurrence_id,
            fire_at: occ.fire_at,
            deliveries: occ.planned + rows.len() as i32,
        };
        crate::events::emit(
            &txn,
            crate::outbound::OutboundEvent::OccurrenceCompleted(event),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    metrics::counter!(heydoc_telemetry::metrics::FANOUT_DELIVERIES).increment(rows.len() as u64);
    if finished {
        tracing::info!(
            occurrence_id,
            schedule_id = schedule.id,
            planned = occ.planned + rows.len() as i32,
            "fan-out done"
        );
        Ok(Step::Finished)
    } else {
        Ok(Step::More(Leased {
            id: occurrence_id,
            stamp: now,
        }))
    }
}

async fn set_state(
    txn: &impl ConnectionTrait,
    id: i64,
    state: &str,
    cursor: Option<i64>,
    added: i32,
    now: DateTime<Utc>,
) -> Result<()> {
    occurrence::Entity::update_many()
        .col_expr(occurrence::Column::State, Expr::value(state))
        .col_expr(occurrence::Column::Cursor, Expr::value(cursor))
        .col_expr(
            occurrence::Column::Planned,
            Expr::col(occurrence::Column::Planned).add(added),
        )
        .col_expr(occurrence::Column::UpdatedAt, Expr::value(now))
        .filter(occurrence::Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(())
}
