//! The sender: takes delivery jobs from the bus, claims each row (invariant 2), paces the
//! business number, calls the WhatsApp Cloud API, and writes the results back in batches
//! before it acks. Retries are rows (invariant 8): a retryable failure records when to try
//! again and the outbox relay republishes it then.

pub mod events;
pub mod pacing;
pub mod relay;
pub mod retry;
pub mod trace;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use heydoc_config::SenderSettings;
use heydoc_queue::JobBus;
use heydoc_whatsapp::CloudApi;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// Everything the sender and the relay need.
#[derive(Clone)]
pub struct SenderContext {
    pub db: DatabaseConnection,
    pub bus: Arc<dyn JobBus>,
    pub api: CloudApi,
    pub settings: SenderSettings,
    /// The bus route, and the number being paced: the business phone number id.
    pub route: String,
}

/// Runs the relay, the reconciler and the send loop until `shutdown` is cancelled, then lets
/// in-flight sends finish within the configured grace period.
pub async fn run(ctx: SenderContext, shutdown: CancellationToken) -> Result<(), SenderError> {
    heydoc_telemetry::metrics::install();
    if !ctx.bus.durable() {
        // The in-process bus starts empty: what it held before a restart is published again
        // at once, not after the stale time.
        match heydoc_store::deliveries::forget_published(&ctx.db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "the in-process bus restarted; its jobs are published again"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand the in-process bus's rows back to the relay; the reconciler will")
            }
        }
    }
    let ticks = relay::start(ctx.clone(), shutdown.clone()).await?;
    let events = tokio::spawn(events::run(
        ctx.db.clone(),
        ctx.settings.clone(),
        shutdown.clone(),
    ));
    let result = worker::run(ctx.clone(), shutdown.clone()).await;
    ticks.stop().await;
    let _ = events.await;
    result
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("job bus: {0}")]
    Bus(#[from] heydoc_queue::BusError),
    #[error("database: {0}")]
    Store(#[from] heydoc_store::StoreError),
    #[error("scheduler: {0}")]
    Ticks(String),
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
