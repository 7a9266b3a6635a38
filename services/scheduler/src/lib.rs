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
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct SchedulerContext {
    pub db: DatabaseConnection,
    pub settings: SchedulerSettings,
    /// The business number shown as the sender of campaign messages.
    pub business_number: String,
    /// Woken when a schedule is created, so one due before the next tick is not late.
    pub wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("database: {0}")]
    Store(#[from] heydoc_store::StoreError),
}

/// Ticks until `shutdown`: claim what is due, then fan out what is waiting.
pub async fn run(ctx: SchedulerContext, shutdown: CancellationToken) -> Result<(), SchedulerError> {
    heydoc_telemetry::metrics::install();
    let period = Duration::from_millis(ctx.settings.tick_ms.max(20));
    tracing::info!(tick_ms = ctx.settings.tick_ms, "scheduler started");
    loop {
        if let Err(e) = tick(&ctx).await {
            tracing::warn!(error = %e, "scheduler tick failed; trying again next tick");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
            _ = ctx.wake.notified() => {}
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// One round: every due schedule claimed (in batches), then every claimable fan-out worked.
pub async fn tick(ctx: &SchedulerContext) -> Result<(), SchedulerError> {
    loop {
        let claimed = due::claim_due(ctx, chrono::Utc::now()).await?;
        if claimed < ctx.settings.claim_batch as usize {
            break;
        }
    }
    while fanout::fan_out_one(ctx).await? {}
    due::complete_finished(ctx, chrono::Utc::now()).await?;
    Ok(())
}
