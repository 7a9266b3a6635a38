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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use heydoc_config::SenderSettings;
use heydoc_queue::JobBus;
use heydoc_store::Db;
use heydoc_whatsapp::{CloudApi, CloudApiConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// Everything one number's sender and relay need.
#[derive(Clone)]
pub struct SenderContext {
    pub db: Db,
    pub bus: Arc<dyn JobBus>,
    pub api: CloudApi,
    pub settings: SenderSettings,
    /// The bus route, and the number being paced: the business phone number id.
    pub route: String,
}

/// One number, alone: its relay, reconciler and send loop, and the outbound-event dispatcher,
/// until `shutdown` is cancelled; in-flight sends finish within the configured grace period.
/// (`run_registry` runs every registered number.)
pub async fn run(ctx: SenderContext, shutdown: CancellationToken) -> Result<(), SenderError> {
    heydoc_telemetry::metrics::install();
    if !ctx.bus.durable() {
        forget_published(&ctx.db).await;
    }
    let events = tokio::spawn(events::run(
        ctx.db.clone(),
        ctx.settings.clone(),
        shutdown.clone(),
    ));
    let result = run_number(ctx, shutdown).await;
    let _ = events.await;
    result
}

/// The in-process bus starts empty: what it held before a restart is published again at
/// once, not after the stale time.
async fn forget_published(db: &Db) {
    match heydoc_store::deliveries::forget_published(db).await {
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

/// One number's relay, reconciler and send loop.
pub async fn run_number(
    ctx: SenderContext,
    shutdown: CancellationToken,
) -> Result<(), SenderError> {
    // One pacer per number, shared by its relay (which brings the database's hold into it) and
    // its send loop.
    let pacer = Arc::new(pacing::Pacer::new(ctx.settings.mps));
    let ticks = relay::start(ctx.clone(), pacer.clone(), shutdown.clone()).await?;
    let prune = tokio::spawn(prune_pairs(pacer.clone(), shutdown.clone()));
    let result = worker::run(ctx, pacer, shutdown).await;
    prune.abort();
    ticks.stop().await;
    result
}

/// Pair budgets of recipients not messaged for a while are forgotten every few seconds, on a
/// task of their own (a send loop kept busy by its jobs would never get to it), so memory
/// holds at most a minute or so of a campaign's recipients however long it runs.
async fn prune_pairs(pacer: Arc<pacing::Pacer>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                pacer.prune();
                metrics::gauge!(heydoc_telemetry::metrics::PAIR_BUDGETS).set(pacer.remembered() as f64);
            }
        }
    }
}

/// Every business number of the registry, each with its own client (its token, or the
/// environment's), rate, pacing and circuit; numbers added, changed or disabled are picked up
/// within seconds. The bus's single-active-consumer queues spread the numbers over the sender
/// replicas: more numbers, more replicas doing work.
#[derive(Clone)]
pub struct Registry {
    pub db: Db,
    pub bus: Arc<dyn JobBus>,
    pub settings: SenderSettings,
    /// The environment's number (`WHATSAPP_PHONE_NUMBER_ID`, `sandbox` without one).
    pub default_number: String,
    /// How to reach the Cloud API: base URL, version, timeouts, and the environment's token
    /// (used by numbers registered without one). Its phone number id is replaced per number.
    pub api: CloudApiConfig,
}

/// How often the registry is read again.
const REGISTRY_EVERY: Duration = Duration::from_secs(5);

/// Runs every number of the registry (and the outbound-event dispatcher) until `shutdown`.
pub async fn run_registry(reg: Registry, shutdown: CancellationToken) -> Result<(), SenderError> {
    heydoc_telemetry::metrics::install();
    if !reg.bus.durable() {
        forget_published(&reg.db).await;
    }
    if let Err(e) = heydoc_store::numbers::ensure_default(
        &reg.db,
        &reg.default_number,
        "",
        reg.settings.mps,
        chrono::Utc::now(),
    )
    .await
    {
        tracing::warn!(error = %e, "cannot register the default business number; sending from it anyway");
    }
    let events = tokio::spawn(events::run(
        reg.db.clone(),
        reg.settings.clone(),
        shutdown.clone(),
    ));
    let mut running: HashMap<String, Running> = HashMap::new();
    // The default number sends even when the registry cannot be read.
    let mut wanted = vec![Wanted::default_of(&reg)];
    loop {
        match heydoc_store::numbers::all(&reg.db).await {
            Ok(numbers) => {
                wanted = numbers
                    .into_iter()
                    .filter(|n| n.state != heydoc_store::numbers::DISABLED)
                    .map(|n| Wanted::of(&reg, n))
                    .collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the business numbers; keeping the ones running")
            }
        }
        for w in &wanted {
            if running
                .get(&w.route)
                .is_some_and(|r| r.fingerprint == w.fingerprint)
            {
                continue;
            }
            if let Some(old) = running.remove(&w.route) {
                old.stop().await;
            }
            match w.context(&reg) {
                Ok(ctx) => {
                    tracing::info!(number = %w.route, mps = ctx.settings.mps, "sending from this number");
                    running.insert(
                        w.route.clone(),
                        Running::start(ctx, w.fingerprint.clone(), &shutdown),
                    );
                }
                Err(e) => {
                    tracing::error!(number = %w.route, error = %e, "cannot send from this number")
                }
            }
        }
        let gone: Vec<String> = running
            .keys()
            .filter(|route| !wanted.iter().any(|w| &w.route == *route))
            .cloned()
            .collect();
        for route in gone {
            if let Some(old) = running.remove(&route) {
                tracing::info!(number = %route, "no longer sending from this number");
                old.stop().await;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(REGISTRY_EVERY) => {}
        }
    }
    for (_, r) in running.drain() {
        r.stop().await;
    }
    let _ = events.await;
    Ok(())
}

/// A number as the registry wants it sent from.
struct Wanted {
    route: String,
    mps: u32,
    token: Option<String>,
    /// What, when it changes, restarts the number's sender (the token only as a digest).
    fingerprint: String,
}

impl Wanted {
    fn default_of(reg: &Registry) -> Self {
        Self::new(reg.default_number.clone(), reg.settings.mps, None)
    }

    fn of(reg: &Registry, n: heydoc_store::numbers::Number) -> Self {
        let mps = if n.is_default {
            reg.settings.mps
        } else {
            u32::try_from(n.mps).unwrap_or(0)
        };
        Self::new(n.phone_number_id, mps, n.access_token)
    }

    fn new(route: String, mps: u32, token: Option<String>) -> Self {
        use sha2::Digest;
        let digest = token
            .as_deref()
            .map(|t| hex::encode(sha2::Sha256::digest(t.as_bytes())))
            .unwrap_or_default();
        Self {
            fingerprint: format!("{mps}/{digest}"),
            route,
            mps,
            token,
        }
    }

    fn context(&self, reg: &Registry) -> Result<SenderContext, heydoc_whatsapp::SendError> {
        let mut config = reg.api.clone();
        config.phone_number_id.clone_from(&self.route);
        if let Some(token) = &self.token {
            config.access_token = SecretString::from(token.clone());
        }
        let mut settings = reg.settings.clone();
        settings.mps = self.mps;
        Ok(SenderContext {
            db: reg.db.clone(),
            bus: reg.bus.clone(),
            api: CloudApi::new(config)?,
            settings,
            route: self.route.clone(),
        })
    }
}

/// One number's sender, running.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    fingerprint: String,
}

impl Running {
    fn start(ctx: SenderContext, fingerprint: String, shutdown: &CancellationToken) -> Self {
        let stop = shutdown.child_token();
        let token = stop.clone();
        let route = ctx.route.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = run_number(ctx, token).await {
                tracing::error!(number = %route, error = %e, "the number's sender stopped");
            }
        });
        Self {
            stop,
            task,
            fingerprint,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
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
