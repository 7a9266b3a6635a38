//! The scheduler: on every tick it claims due schedules (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, in short transactions), records each firing as an occurrence unique on
//! (schedule, fire time), advances `next_run_at`, and fans occurrences out into one delivery
//! per recipient in chunks, saving a cursor so that a crash resumes where it stopped. The
//! deliveries are ordinary outgoing messages: the outbox relay takes them to the sender.
//!
//! Any number of schedulers may run against one database: the row claims and the unique keys
//! keep every run single.

pub mod due;
pub mod fanout;

use std::sync::Arc;
use std::time::Duration;

use heydoc_config::SchedulerSettings;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct SchedulerContext {
    pub db: heydoc_store::Db,
    pub settings: SchedulerSettings,
    /// The business number shown as the sender of campaign messages.
    pub business_number: String,
    /// Woken when a schedule is created, so one due before the next tick is not late.
    pub wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("database: {0}")]
    Store(#[from] heydoc_store::StoreError),
}

/// Fan-outs that run at once: a campaign fired during a long one is expanded beside it.
const FANOUTS_AT_ONCE: usize = 8;

/// Runs until `shutdown`: the due loop (claim what is due, complete finished schedules) and
/// the fan-out loop side by side, so a long fan-out never delays the next firing.
pub async fn run(ctx: SchedulerContext, shutdown: CancellationToken) -> Result<(), SchedulerError> {
    heydoc_telemetry::metrics::install();
    let period = Duration::from_millis(ctx.settings.tick_ms.max(20));
    tracing::info!(tick_ms = ctx.settings.tick_ms, "scheduler started");
    let fired = Arc::new(Notify::new());
    let fanouts = tokio::spawn(fan_out_loop(ctx.clone(), fired.clone(), shutdown.clone()));
    loop {
        match due_round(&ctx).await {
            Ok(0) => {}
            Ok(_) => fired.notify_one(),
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed; trying again next tick"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
            _ = ctx.wake.notified() => {}
        }
    }
    let _ = fanouts.await;
    tracing::info!("scheduler stopped");
    Ok(())
}

/// Claims every due schedule (in batches) and completes finished ones; returns how many runs
/// were recorded.
async fn due_round(ctx: &SchedulerContext) -> Result<usize, SchedulerError> {
    let fired = claim_all_due(ctx).await?;
    due::complete_finished(ctx, chrono::Utc::now()).await?;
    Ok(fired)
}

/// Claims due schedules in batches until a batch comes back short; returns how many.
async fn claim_all_due(ctx: &SchedulerContext) -> Result<usize, SchedulerError> {
    let mut fired = 0;
    loop {
        let claimed = due::claim_due(ctx).await?;
        fired += claimed;
        if claimed < ctx.settings.claim_batch as usize {
            return Ok(fired);
        }
    }
}

/// Takes occurrences to fan out as they come, up to `FANOUTS_AT_ONCE` at a time.
async fn fan_out_loop(ctx: SchedulerContext, fired: Arc<Notify>, shutdown: CancellationToken) {
    let period = Duration::from_millis(ctx.settings.tick_ms.max(20));
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < FANOUTS_AT_ONCE {
            match fanout::lease(&ctx).await {
                Ok(Some(leased)) => {
                    let ctx = ctx.clone();
                    running.spawn(async move {
                        if let Err(e) = fanout::expand(&ctx, leased).await {
                            tracing::warn!(error = %e, occurrence_id = leased.id, "fan-out stopped; it resumes when its lease runs out");
                        }
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lease a fan-out");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = fired.notified() => {}
            _ = tokio::time::sleep(period) => {}
        }
    }
    // Chunks are transactions: one cut short is simply done again elsewhere.
    running.shutdown().await;
}

/// One round of both loops, in turn (benchmarks and tests that step the scheduler): every
/// due schedule claimed, every claimable fan-out worked, finished schedules completed.
pub async fn tick(ctx: &SchedulerContext) -> Result<(), SchedulerError> {
    claim_all_due(ctx).await?;
    while fanout::fan_out_one(ctx).await? {}
    due::complete_finished(ctx, chrono::Utc::now()).await?;
    Ok(())
}
