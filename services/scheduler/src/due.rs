//! Claiming due schedules: one occurrence per (schedule, fire time), `next_run_at` advanced in
//! the same short transaction, missed runs older than the catch-up window recorded as skipped.

use chrono::{DateTime, Duration, Utc};
use heydoc_domain::recurrence::parse_time_zone;
use heydoc_domain::{Recurrence, ScheduleStatus};
use heydoc_entity::{occurrence, scheduled_message as schedule};
use sea_orm::sea_query::{LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::{SchedulerContext, SchedulerError};

/// Missed runs recorded per schedule per claim, at most (a schedule far behind catches up over
/// several ticks).
const MAX_SKIPS_PER_CLAIM: usize = 1000;

pub const STATE_FANNING_OUT: &str = "fanning_out";
pub const STATE_SKIPPED: &str = "skipped";

/// Claims up to `claim_batch` due schedules; returns how many.
pub async fn claim_due(
    ctx: &SchedulerContext,
    now: DateTime<Utc>,
) -> Result<usize, SchedulerError> {
    let txn = ctx.db.begin().await?;
    let mut query = schedule::Entity::find()
        .filter(schedule::Column::Status.eq(ScheduleStatus::Pending.as_str()))
        .filter(schedule::Column::NextRunAt.lte(now))
        .order_by_asc(schedule::Column::NextRunAt)
        .limit(ctx.settings.claim_batch.max(1));
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = query.all(&txn).await?;
    let catch_up = Duration::seconds(ctx.settings.catch_up_secs.max(0));
    for s in &due {
        fire(&txn, s, now, catch_up).await?;
    }
    txn.commit().await?;
    Ok(due.len())
}

async fn fire(
    txn: &impl ConnectionTrait,
    s: &schedule::Model,
    now: DateTime<Utc>,
    catch_up: Duration,
) -> Result<(), SchedulerError> {
    let Some(fire_at) = s.next_run_at else {
        return Ok(());
    };
    let tz = parse_time_zone(&s.timezone).unwrap_or(chrono_tz::UTC);
    let recurrence = Recurrence::parse(s.recurrence.as_deref()).unwrap_or(Recurrence::Once);
    let missed = now - fire_at > catch_up;
    record(
        txn,
        s.id,
        fire_at,
        if missed {
            STATE_SKIPPED
        } else {
            STATE_FANNING_OUT
        },
    )
    .await?;
    let fired = s.occurrence_count + i32::from(!missed);
    if missed {
        tracing::warn!(schedule_id = s.id, %fire_at, "run missed by more than the catch-up window: skipped");
    }
    let mut next = recurrence.next_after(s.scheduled_time, tz, fire_at);
    // Runs missed in a long downtime are recorded as skipped too, never sent late.
    let mut skips = 0;
    while let Some(n) = next.filter(|n| now - *n > catch_up && skips < MAX_SKIPS_PER_CLAIM) {
        if s.end_time.is_some_and(|end| n > end) {
            break;
        }
        record(txn, s.id, n, STATE_SKIPPED).await?;
        skips += 1;
        next = recurrence.next_after(s.scheduled_time, tz, n);
    }
    let finished = match next {
        None => true,
        Some(n) => {
            s.end_time.is_some_and(|end| n > end)
                || s.max_occurrences.is_some_and(|max| fired >= max)
        }
    };
    let mut update: schedule::ActiveModel = s.clone().into();
    update.occurrence_count = Set(fired);
    update.updated_at = Set(now);
    if finished {
        // No more runs. The schedule stays pending (and can still be paused or cancelled)
        // until its last deliveries are out; `complete_finished` then marks it sent.
        update.next_run_at = Set(None);
    } else {
        update.next_run_at = Set(next);
    }
    schedule::Entity::update(update).exec(txn).await?;
    Ok(())
}

/// Marks sent the schedules with no run left whose fan-outs are done and whose deliveries have
/// all been sent (or have failed, been skipped ...). Returns how many.
pub async fn complete_finished(
    ctx: &SchedulerContext,
    now: DateTime<Utc>,
) -> Result<u64, SchedulerError> {
    let backend = ctx.db.get_database_backend();
    // Several schedulers run this at once: on PostgreSQL each takes the rows nobody else holds
    // (SKIP LOCKED), so they never wait on or deadlock with each other.
    let lock = match backend {
        sea_orm::DatabaseBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let sql = format!(
        "UPDATE scheduled_messages SET status = 'sent', updated_at = $1
        WHERE id IN (
          SELECT s.id FROM scheduled_messages s
          WHERE s.status = 'pending' AND s.next_run_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM occurrences o
                            WHERE o.schedule_id = s.id AND o.state = 'fanning_out')
            AND NOT EXISTS (SELECT 1 FROM messages m JOIN occurrences o ON o.id = m.occurrence_id
                            WHERE o.schedule_id = s.id
                              AND m.status IN ('queued', 'sending', 'retrying'))
          {lock})"
    );
    let result = ctx
        .db
        .execute(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [now.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Inserts the occurrence unless it exists (invariant 3: unique on schedule and fire time).
async fn record(
    txn: &impl ConnectionTrait,
    schedule_id: i32,
    fire_at: DateTime<Utc>,
    state: &str,
) -> Result<(), SchedulerError> {
    let now = Utc::now();
    occurrence::Entity::insert(occurrence::ActiveModel {
        schedule_id: Set(schedule_id),
        fire_at: Set(fire_at),
        state: Set(state.to_string()),
        cursor: Set(None),
        planned: Set(0),
        created_at: Set(now),
        // For an occurrence being fanned out, `updated_at` is the fan-out lease: the epoch
        // means "free to take now".
        updated_at: Set(DateTime::UNIX_EPOCH),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([occurrence::Column::ScheduleId, occurrence::Column::FireAt])
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(txn)
    .await?;
    Ok(())
}
