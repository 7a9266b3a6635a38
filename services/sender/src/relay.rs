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

use crate::{SenderContext, SenderError};

/// At most this many batches per relay tick, so one tick never runs away.
const MAX_BATCHES_PER_TICK: usize = 50;
const RECONCILE_EVERY: Duration = Duration::from_secs(10);

pub struct Ticks {
    scheduler: JobScheduler,
}

impl Ticks {
    pub async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::debug!(error = %e, "tick scheduler shutdown");
        }
    }
}

/// Starts the relay and reconcile ticks.
pub async fn start(ctx: SenderContext, shutdown: CancellationToken) -> Result<Ticks, SenderError> {
    let scheduler = JobScheduler::new()
        .await
        .map_err(|e| SenderError::Ticks(e.to_string()))?;
    let interval = Duration::from_millis(ctx.settings.relay_interval_ms.max(50));

    let busy = Arc::new(Mutex::new(()));
    let relay_ctx = ctx.clone();
    let relay_stop = shutdown.clone();
    let relay = Tick::new_repeated_async(interval, move |_, _| {
        let (ctx, busy, stop) = (relay_ctx.clone(), busy.clone(), relay_stop.clone());
        Box::pin(async move {
            // A slow tick must not overlap the next one.
            let Ok(_guard) = busy.try_lock() else { return };
            if !stop.is_cancelled() {
                relay_once(&ctx).await;
            }
        })
    })
    .map_err(|e| SenderError::Ticks(e.to_string()))?;

    let reconcile_ctx = ctx.clone();
    let reconcile = Tick::new_repeated_async(RECONCILE_EVERY, move |_, _| {
        let ctx = reconcile_ctx.clone();
        Box::pin(async move { reconcile_once(&ctx).await })
    })
    .map_err(|e| SenderError::Ticks(e.to_string()))?;

    for tick in [relay, reconcile] {
        scheduler
            .add(tick)
            .await
            .map_err(|e| SenderError::Ticks(e.to_string()))?;
    }
    scheduler
        .start()
        .await
        .map_err(|e| SenderError::Ticks(e.to_string()))?;
    Ok(Ticks { scheduler })
}

/// Publishes what is waiting; returns how many jobs were confirmed.
pub async fn relay_once(ctx: &SenderContext) -> usize {
    let mut published = 0;
    for _ in 0..MAX_BATCHES_PER_TICK {
        let ids = match deliveries::lease_unrelayed(&ctx.db, ctx.settings.relay_batch, Utc::now())
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "relay: cannot read the outbox");
                return published;
            }
        };
        if ids.is_empty() {
            break;
        }
        let jobs: Vec<Job> = ids.iter().map(|&id| Job::new(id)).collect();
        if let Err(e) = ctx.bus.publish(&ctx.route, &jobs).await {
            tracing::warn!(error = %e, count = ids.len(), "relay: publish failed; the rows stay in the outbox");
            if let Err(e) = deliveries::release(&ctx.db, &ids).await {
                tracing::warn!(error = %e, "relay: cannot release leased rows; they return after the stale time");
            }
            return published;
        }
        published += ids.len();
        if (ids.len() as u64) < ctx.settings.relay_batch {
            break;
        }
    }
    if published > 0 {
        tracing::debug!(published, "relay published");
    }
    published
}

async fn reconcile_once(ctx: &SenderContext) {
    let stale = chrono::Duration::seconds(ctx.settings.stale_enqueue_secs.max(1));
    let lease = chrono::Duration::seconds(ctx.settings.sending_lease_secs.max(1));
    match deliveries::reconcile(&ctx.db, Utc::now(), stale, lease).await {
        Ok((0, 0)) => {}
        Ok((requeued, unknown)) => {
            tracing::warn!(requeued, unknown, "reconciled orphaned deliveries")
        }
        Err(e) => tracing::warn!(error = %e, "reconcile failed"),
    }
}
