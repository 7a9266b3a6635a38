//! The outbox relay (invariant 1) and the reconciler, on tokio-cron-scheduler ticks.
//!
//! Relay: leases rows the bus has not confirmed (new sends whose publish after commit did not
//! happen, retries whose time has come), publishes them with confirms, and gives them back on
//! failure. Any number of relays may run; duplicates are absorbed by the sender's claim.
//! Reconciler: hands back rows whose job was lost, and marks sends orphaned by a dead sender
//! `unknown`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use heydoc_queue::Job;
use heydoc_store::deliveries;
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job as Tick, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::pacing::Pacer;
use crate::{SenderContext, SenderError};

/// At most this many batches per relay tick, so one tick never runs away.
const MAX_BATCHES_PER_TICK: usize = 50;
const RECONCILE_EVERY: Duration = Duration::from_secs(10);

pub struct Ticks {
    scheduler: JobScheduler,
    relay: tokio::task::JoinHandle<()>,
}

impl Ticks {
    pub async fn stop(mut self) {
        self.relay.abort();
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::debug!(error = %e, "tick scheduler shutdown");
        }
    }
}

/// Starts the relay and reconcile ticks. The reconciler runs on tokio-cron-scheduler; the relay
/// ticks faster than a second, which tokio-cron-scheduler 0.15 cannot do (it truncates repeat
/// intervals to whole seconds, so 250 ms never fires), so it runs on a tokio interval.
pub async fn start(
    ctx: SenderContext,
    pacer: Arc<Pacer>,
    shutdown: CancellationToken,
) -> Result<Ticks, SenderError> {
    let interval = Duration::from_millis(ctx.settings.relay_interval_ms.max(20));
    let relay_ctx = ctx.clone();
    let relay = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut watch = deliveries::RetryWatch::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if !held(&relay_ctx, &pacer).await {
                        relay_once(&relay_ctx, &mut watch).await;
                    }
                }
            }
        }
    });

    let scheduler = JobScheduler::new()
        .await
        .map_err(|e| SenderError::Ticks(e.to_string()))?;
    let busy = Arc::new(Mutex::new(()));
    let reconcile = Tick::new_repeated_async(RECONCILE_EVERY, move |_, _| {
        let (ctx, busy) = (ctx.clone(), busy.clone());
        Box::pin(async move {
            // A slow round must not overlap the next one.
            let Ok(_guard) = busy.try_lock() else { return };
            reconcile_once(&ctx).await
        })
    })
    .map_err(|e| SenderError::Ticks(e.to_string()))?;
    scheduler
        .add(reconcile)
        .await
        .map_err(|e| SenderError::Ticks(e.to_string()))?;
    scheduler
        .start()
        .await
        .map_err(|e| SenderError::Ticks(e.to_string()))?;
    Ok(Ticks { scheduler, relay })
}

/// Brings the number's hold from the database into its pacer (an error a status webhook
/// reported, another replica's circuit, this sender's own before a restart) and says whether
/// the number is held now: then nothing is published (its rows wait in the database).
async fn held(ctx: &SenderContext, pacer: &Pacer) -> bool {
    match heydoc_store::numbers::hold_of(&ctx.db, &ctx.route).await {
        Ok(Some(hold)) if hold.paused => {
            let why = hold
                .reason
                .as_deref()
                .unwrap_or("the business number is paused");
            pacer.adopt_hold(hold.until.filter(|u| *u > Utc::now()), why);
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "relay: cannot read the number's hold"),
    }
    pacer.paused()
}

/// Publishes a batch to its lanes (conversational first), timing it until confirmed.
async fn publish(ctx: &SenderContext, jobs: &Lanes) -> Result<(), heydoc_queue::BusError> {
    heydoc_queue::publish_lanes(ctx.bus.as_ref(), &ctx.route, &jobs.now, &jobs.campaigns).await
}

/// A leased batch's jobs by lane.
#[derive(Default)]
struct Lanes {
    now: Vec<Job>,
    campaigns: Vec<Job>,
}

/// How many jobs the bus may hold for this number: a few seconds of its rate, with a floor.
pub fn window(ctx: &SenderContext) -> u64 {
    match ctx.settings.mps {
        0 => UNPACED_WINDOW.max(ctx.settings.window_floor),
        mps => (u64::from(mps) * ctx.settings.window_secs.max(1)).max(ctx.settings.window_floor),
    }
}

/// Pacing off (benchmarks, a sandbox): a second or so of what one sender does flat out, so the
/// bus still never holds the whole backlog and a new campaign's first jobs are not behind it
/// (or `window_floor`, when larger).
const UNPACED_WINDOW: u64 = 10_000;

/// Refills the bus's window from the outbox; returns how many jobs were confirmed. Only the
/// free part of the window is leased (the database is the backlog, the bus a window), in lane
/// order. Pipelined: while one batch waits for the broker's confirms, the next is leased.
/// `watch` is the number's memory of when a retry can next come due (kept across refills).
pub async fn relay_once(ctx: &SenderContext, watch: &mut deliveries::RetryWatch) -> usize {
    let mut free = match deliveries::on_bus(&ctx.db, &ctx.route).await {
        Ok(n) => window(ctx).saturating_sub(n),
        Err(e) => {
            tracing::warn!(error = %e, "relay: cannot count the jobs on the bus");
            return 0;
        }
    };
    let mut published = 0;
    let mut batch = match lease(ctx, &mut free, watch).await {
        Ok(b) => b,
        Err(()) => return 0,
    };
    for round in 0..MAX_BATCHES_PER_TICK {
        if batch.is_empty() {
            break;
        }
        let ids: Vec<i64> = batch.iter().map(|l| l.id).collect();
        let full = ids.len() as u64 >= ctx.settings.relay_batch;
        let more = full && free > 0 && round + 1 < MAX_BATCHES_PER_TICK;
        let jobs = jobs_of(std::mem::take(&mut batch));
        let (sent, next) = tokio::join!(publish(ctx, &jobs), async {
            if more {
                lease(ctx, &mut free, watch).await
            } else {
                Ok(Vec::new())
            }
        });
        let next = next.unwrap_or_default();
        if let Err(e) = sent {
            tracing::warn!(error = %e, count = ids.len(), "relay: publish failed; the rows stay in the outbox");
            let mut leased = ids;
            leased.extend(next.iter().map(|l| l.id));
            if let Err(e) = deliveries::release(&ctx.db, &leased).await {
                tracing::warn!(error = %e, "relay: cannot release leased rows; the reconciler returns them");
            }
            return published;
        }
        published += ids.len();
        batch = next;
    }
    if published > 0 {
        tracing::debug!(published, "relay published");
    }
    published
}

/// The next batch of the outbox, or `Err` (logged) when the database cannot be read.
async fn lease(
    ctx: &SenderContext,
    free: &mut u64,
    watch: &mut deliveries::RetryWatch,
) -> Result<Vec<deliveries::Leased>, ()> {
    let want = ctx.settings.relay_batch.min(*free);
    let leased = deliveries::lease_unrelayed(&ctx.db, &ctx.route, want, Utc::now(), watch)
        .await
        .map_err(|e| tracing::warn!(error = %e, "relay: cannot read the outbox"))?;
    *free = free.saturating_sub(leased.len() as u64);
    Ok(leased)
}

/// Each job carries on the trace its row was created in (or its previous attempt's), in its
/// row's lane.
fn jobs_of(leased: Vec<deliveries::Leased>) -> Lanes {
    let mut lanes = Lanes::default();
    for l in leased {
        let mut job = Job::new(l.id);
        if let Some(tc) = l.trace_context {
            job.headers
                .insert(heydoc_telemetry::propagation::TRACEPARENT.into(), tc);
        }
        if l.conversational {
            lanes.now.push(job);
        } else {
            lanes.campaigns.push(job);
        }
    }
    lanes
}

async fn reconcile_once(ctx: &SenderContext) {
    sample_deliveries(ctx).await;
    // Lost jobs are looked for only when the bus has none ready for this number: a job that is
    // merely waiting its turn is never published twice.
    let stale = if nothing_waits(ctx).await {
        Some(chrono::Duration::seconds(
            ctx.settings.stale_enqueue_secs.max(1),
        ))
    } else {
        None
    };
    let lease = chrono::Duration::seconds(ctx.settings.sending_lease_secs.max(1));
    match deliveries::reconcile(&ctx.db, &ctx.route, Utc::now(), stale, lease).await {
        Ok((0, 0)) => {}
        Ok((requeued, unknown)) => {
            tracing::warn!(requeued, unknown, "reconciled orphaned deliveries")
        }
        Err(e) => tracing::warn!(error = %e, "reconcile failed"),
    }
}

/// Whether a stale published row can only be a lost job: neither of the number's queues holds
/// a job ready. (A held number's sender does not keep jobs: its rows wait in the database.)
async fn nothing_waits(ctx: &SenderContext) -> bool {
    for route in [
        ctx.route.clone(),
        heydoc_queue::conversation_route(&ctx.route),
    ] {
        match ctx.bus.ready(&route).await {
            Ok(Some(0)) => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::debug!(error = %e, "reconcile: the bus cannot say what it holds");
                return false;
            }
        }
    }
    true
}

/// Sets `heydoc_deliveries{status}` for the unfinished statuses (one GROUP BY per reconcile
/// round, over the rows the partial indexes cover).
async fn sample_deliveries(ctx: &SenderContext) {
    match deliveries::count_in_flight(&ctx.db, &ctx.route).await {
        Ok(counts) => {
            let mut backlog = 0;
            for (status, n) in counts {
                metrics::gauge!(heydoc_telemetry::metrics::DELIVERIES, "status" => status)
                    .set(n as f64);
                if status != "sending" {
                    backlog += n;
                }
            }
            // The autoscaling signal: what waits in the database, not what the bus holds.
            metrics::gauge!(heydoc_telemetry::metrics::BACKLOG, "number" => ctx.route.clone())
                .set(backlog as f64);
        }
        Err(e) => tracing::debug!(error = %e, "cannot count deliveries"),
    }
    if let Ok(n) = deliveries::on_bus(&ctx.db, &ctx.route).await {
        metrics::gauge!(heydoc_telemetry::metrics::ON_BUS, "number" => ctx.route.clone())
            .set(n as f64);
    }
    heydoc_store::record_pool_metrics(&ctx.db);
}
