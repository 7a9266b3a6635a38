//! Claiming due schedules: one occurrence per (schedule, fire time), `next_run_at` advanced in
//! the same short transaction, missed runs older than the catch-up window recorded as skipped.

use chrono::{DateTime, Duration, Utc};
use heydoc_domain::recurrence::parse_time_zone;
use heydoc_domain::{OccurrenceState, Recurrence};
use heydoc_store::firing::{self, Advance, NewOccurrence};
use heydoc_store::schedules::Schedule;

use crate::{SchedulerContext, SchedulerError};

/// Missed runs recorded per schedule per claim, at most (a schedule far behind catches up over
/// several ticks).
const MAX_SKIPS_PER_CLAIM: usize = 1000;

/// Claims up to `claim_batch` schedules due by the database's clock (shared by every
/// replica, whatever each host's own says); returns how many. The whole batch is written with
/// one multi-row occurrence INSERT and one UPDATE, in one short transaction.
pub async fn claim_due(ctx: &SchedulerContext) -> Result<usize, SchedulerError> {
    let txn = heydoc_store::begin(&ctx.db).await?;
    let now = firing::database_now(&txn).await?;
    let due = firing::lock_due(&txn, now, ctx.settings.claim_batch).await?;
    let catch_up = Duration::seconds(ctx.settings.catch_up_secs.max(0));
    let mut plan = FirePlan::default();
    for s in &due {
        plan.fire(s, now, catch_up);
    }
    let observed = plan.write(&txn, now).await?;
    heydoc_store::commit(txn).await?;
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
    occurrences: Vec<NewOccurrence>,
    advances: Vec<Advance>,
}

impl FirePlan {
    fn fire(&mut self, s: &Schedule, now: DateTime<Utc>, catch_up: Duration) {
        let Some(fire_at) = s.next_run_at else {
            return;
        };
        let tz = parse_time_zone(&s.timezone).unwrap_or(chrono_tz::UTC);
        let recurrence = Recurrence::parse(s.recurrence.as_deref()).unwrap_or(Recurrence::Once);
        // The wall-clock time the schedule was written in, when it had no offset.
        let local = s.local_anchor.as_deref().and_then(|t| {
            chrono::NaiveDateTime::parse_from_str(t, heydoc_domain::schedule::LOCAL_ANCHOR_FORMAT)
                .ok()
        });
        let missed = now - fire_at > catch_up;
        let state = if missed {
            OccurrenceState::Skipped
        } else {
            OccurrenceState::FanningOut
        };
        // One span per occurrence, linked to the request that created the schedule; the
        // fan-out's chunk spans are its children, the deliveries' traces link to it.
        let span = tracing::info_span!(
            "occurrence",
            otel.name = %format!("fire schedule {}", s.id),
            heydoc.schedule_id = s.id,
            heydoc.fire_at = %fire_at,
            heydoc.state = state.as_str(),
        );
        heydoc_telemetry::propagation::link(&span, s.trace_context.as_deref());
        let trace_context = heydoc_telemetry::propagation::traceparent_of(&span);
        if missed {
            span.in_scope(|| {
                tracing::warn!(schedule_id = s.id, %fire_at, "run missed by more than the catch-up window: skipped")
            });
        }
        self.occurrences.push(NewOccurrence {
            schedule_id: s.id,
            fire_at,
            state,
            trace_context,
        });
        let fired = s.occurrence_count + i32::from(!missed);
        let mut next = recurrence.next_after_local(s.scheduled_time, local, tz, fire_at);
        // Runs missed in a long downtime are recorded as skipped too, never sent late.
        let mut skips = 0;
        while let Some(n) = next.filter(|n| now - *n > catch_up && skips < MAX_SKIPS_PER_CLAIM) {
            if s.end_time.is_some_and(|end| n > end) {
                break;
            }
            self.occurrences.push(NewOccurrence {
                schedule_id: s.id,
                fire_at: n,
                state: OccurrenceState::Skipped,
                trace_context: None,
            });
            skips += 1;
            next = recurrence.next_after_local(s.scheduled_time, local, tz, n);
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
        txn: &heydoc_store::Tx,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, Option<f64>)>, SchedulerError> {
        let observed = self
            .occurrences
            .iter()
            .enumerate()
            .map(|(i, o)| {
                // The first occurrence of each schedule in the batch is the run it fired for.
                let first = i == 0 || self.occurrences[i - 1].schedule_id != o.schedule_id;
                let late =
                    first.then(|| (now - o.fire_at).to_std().unwrap_or_default().as_secs_f64());
                (o.state.as_str(), late)
            })
            .collect();
        firing::record(txn, &self.occurrences, &self.advances, now).await?;
        Ok(observed)
    }
}

/// Marks sent the schedules with no run left whose fan-outs are done and whose deliveries have
/// all been sent (or have failed, been skipped ...). Returns how many.
pub async fn complete_finished(
    ctx: &SchedulerContext,
    now: DateTime<Utc>,
) -> Result<u64, SchedulerError> {
    Ok(firing::complete_finished(&ctx.db, now).await?)
}
