//! Claiming due schedules: one occurrence per (schedule, fire time), `next_run_at` advanced in
//! the same short transaction, missed runs older than the catch-up window recorded as skipped.

use chrono::{DateTime, Duration, Utc};
use heydoc_domain::recurrence::parse_time_zone;
use heydoc_domain::{Recurrence, ScheduleStatus};
use heydoc_entity::{occurrence, scheduled_message as schedule};
use sea_orm::sea_query::{CaseStatement, Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::{SchedulerContext, SchedulerError};

/// Missed runs recorded per schedule per claim, at most (a schedule far behind catches up over
/// several ticks).
const MAX_SKIPS_PER_CLAIM: usize = 1000;

/// Occurrence rows per INSERT (7 values each: well under SQLite's 32,766 parameters).
const OCCURRENCE_INSERT_CHUNK: usize = 1000;

pub const STATE_FANNING_OUT: &str = "fanning_out";
pub const STATE_SKIPPED: &str = "skipped";

/// Claims up to `claim_batch` due schedules; returns how many. The whole batch is written with
/// one multi-row occurrence INSERT and one UPDATE, in one short transaction.
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
    let mut plan = FirePlan::default();
    for s in &due {
        plan.fire(s, now, catch_up);
    }
    let observed = plan.write(&txn, now).await?;
    txn.commit().await?;
    // Counted once committed: a batch that rolls back is claimed (and counted) again.
    for (state, lateness) in observed {
        metrics::counter!(heydoc_telemetry::metrics::OCCURRENCES, "state" => state).increment(1);
        if let Some(late) = lateness {
            metrics::histogram!(heydoc_telemetry::metrics::SCHEDULER_LATENESS).record(late);
        }
    }
    Ok(due.len())
}

/// What one claim batch writes: the occurrences, and each schedule's new run count and next run.
#[derive(Default)]
struct FirePlan {
    /// (schedule, fire time, state, trace context of the firing).
    occurrences: Vec<(i32, DateTime<Utc>, &'static str, Option<String>)>,
    advances: Vec<Advance>,
}

struct Advance {
    id: i32,
    occurrence_count: i32,
    next_run_at: Option<DateTime<Utc>>,
}

impl FirePlan {
    fn fire(&mut self, s: &schedule::Model, now: DateTime<Utc>, catch_up: Duration) {
        let Some(fire_at) = s.next_run_at else {
            return;
        };
        let tz = parse_time_zone(&s.timezone).unwrap_or(chrono_tz::UTC);
        let recurrence = Recurrence::parse(s.recurrence.as_deref()).unwrap_or(Recurrence::Once);
        let missed = now - fire_at > catch_up;
        let state = if missed {
            STATE_SKIPPED
        } else {
            STATE_FANNING_OUT
        };
        // One span per occurrence, linked to the request that created the schedule; the
        // fan-out's chunk spans are its children, the deliveries' traces link to it.
        let span = tracing::info_span!(
            "occurrence",
            otel.name = %format!("fire schedule {}", s.id),
            heydoc.schedule_id = s.id,
            heydoc.fire_at = %fire_at,
            heydoc.state = state,
        );
        heydoc_telemetry::propagation::link(&span, s.trace_context.as_deref());
        let trace_context = heydoc_telemetry::propagation::traceparent_of(&span);
        if missed {
            span.in_scope(|| {
                tracing::warn!(schedule_id = s.id, %fire_at, "run missed by more than the catch-up window: skipped")
            });
        }
        self.occurrences.push((s.id, fire_at, state, trace_context));
        let fired = s.occurrence_count + i32::from(!missed);
        let mut next = recurrence.next_after(s.scheduled_time, tz, fire_at);
        // Runs missed in a long downtime are recorded as skipped too, never sent late.
        let mut skips = 0;
        while let Some(n) = next.filter(|n| now - *n > catch_up && skips < MAX_SKIPS_PER_CLAIM) {
            if s.end_time.is_some_and(|end| n > end) {
                break;
            }
            self.occurrences.push((s.id, n, STATE_SKIPPED, None));
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
        // A finished schedule stays pending (and can still be paused or cancelled) with no
        // next run until its last deliveries are out; `complete_finished` then marks it sent.
        self.advances.push(Advance {
            id: s.id,
            occurrence_count: fired,
            next_run_at: if finished { None } else { next },
        });
    }

    /// Writes the batch; returns, per occurrence, its state and (for the run that fired) how
    /// late it was, in seconds, for the metrics.
    async fn write(
        self,
        txn: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, Option<f64>)>, SchedulerError> {
        let observed = self
            .occurrences
            .iter()
            .enumerate()
            .map(|(i, (schedule_id, fire_at, state, _))| {
                // The first occurrence of each schedule in the batch is the run it fired for.
                let first = i == 0 || self.occurrences[i - 1].0 != *schedule_id;
                let late =
                    first.then(|| (now - *fire_at).to_std().unwrap_or_default().as_secs_f64());
                (*state, late)
            })
            .collect();
        // Invariant 3: unique on (schedule, fire time); a run already recorded stays as it is.
        for chunk in self.occurrences.chunks(OCCURRENCE_INSERT_CHUNK) {
            let rows =
                chunk.iter().map(
                    |(schedule_id, fire_at, state, trace)| occurrence::ActiveModel {
                        schedule_id: Set(*schedule_id),
                        fire_at: Set(*fire_at),
                        state: Set(state.to_string()),
                        trace_context: Set(trace.clone()),
                        cursor: Set(None),
                        planned: Set(0),
                        created_at: Set(now),
                        // For an occurrence being fanned out, `updated_at` is the fan-out lease: the
                        // epoch means "free to take now".
                        updated_at: Set(DateTime::UNIX_EPOCH),
                        ..Default::default()
                    },
                );
            occurrence::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        occurrence::Column::ScheduleId,
                        occurrence::Column::FireAt,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .do_nothing()
                .exec(txn)
                .await?;
        }
        if self.advances.is_empty() {
            return Ok(observed);
        }
        let mut count = CaseStatement::new();
        let mut next = CaseStatement::new();
        for a in &self.advances {
            count = count.case(schedule::Column::Id.eq(a.id), a.occurrence_count);
            next = next.case(schedule::Column::Id.eq(a.id), a.next_run_at);
        }
        schedule::Entity::update_many()
            .col_expr(
                schedule::Column::OccurrenceCount,
                count
                    .finally(Expr::col(schedule::Column::OccurrenceCount))
                    .into(),
            )
            .col_expr(
                schedule::Column::NextRunAt,
                next.finally(Expr::col(schedule::Column::NextRunAt)).into(),
            )
            .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
            .filter(schedule::Column::Id.is_in(self.advances.iter().map(|a| a.id)))
            .exec(txn)
            .await?;
        Ok(observed)
    }
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
