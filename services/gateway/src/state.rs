//! What every handler can reach.

use std::sync::Arc;

use heydoc_config::Settings;
use heydoc_store::live::{LiveFeed, LivePublisher};
use heydoc_store::Db;
use secrecy::SecretString;

use crate::auth::limiter::LoginLimiter;
use crate::auth::token::TokenKeys;
use crate::auth::SessionCache;

/// An API key's `last_used_at` is written at most this often per key (per replica): the key's
/// entry in `AppState::key_uses` lives this long.
pub const USE_STAMP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the gateway publishes a send's wake-up right after its commit. Without one (or when
/// the publish fails) the outbox relay publishes it a moment later.
#[derive(Clone)]
pub struct Outbox {
    pub bus: Arc<dyn heydoc_queue::JobBus>,
    pub route: String,
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub tokens: Arc<TokenKeys>,
    pub login_limiter: Arc<LoginLimiter>,
    pub sessions: SessionCache,
    pub outbox: Option<Outbox>,
    /// Wakes an in-process scheduler when a schedule is created (`heydoc all`).
    pub scheduler_wake: Option<Arc<tokio::sync::Notify>>,
    /// Tells every gateway's dashboards that a chat changed (coalesced).
    pub live: LivePublisher,
    /// The events this gateway's dashboards receive; started by the first dashboard to connect.
    pub live_feed: Arc<tokio::sync::OnceCell<LiveFeed>>,
    /// STOP and START, and their synonyms, from the settings.
    pub keywords: Arc<heydoc_domain::consent::Keywords>,
    /// API keys whose use this replica recorded in the last minute.
    pub key_uses: moka::sync::Cache<i32, ()>,
    /// Turns true when the server begins to shut down (long-lived streams end then).
    pub stopping: Option<tokio::sync::watch::Receiver<bool>>,
    /// Dashboard event streams open on this replica now.
    pub live_streams: Arc<std::sync::atomic::AtomicUsize>,
    /// Held while an import is admitted (counted and recorded), so that two uploads at once
    /// cannot both pass the limits on this replica.
    pub import_gate: Arc<tokio::sync::Mutex<()>>,
    /// Password hashing, a few at a time.
    pub hasher: crate::auth::password::Hasher,
    /// Meta's Graph API for what is not a send: templates, read receipts, media.
    pub graph: heydoc_whatsapp::GraphApi,
    /// Where inbound media files are kept (`None`: the store could not be opened; the reason
    /// is logged at start and media rows record it).
    pub media: Option<crate::media::MediaStore>,
    /// Downloads from Meta running at once on this replica (`media.downloads_at_once`).
    pub media_downloads: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// `jwt_secret` is the signing key; the caller decides where it comes from (configured, or
    /// generated in the embedded mode).
    /// Must be called inside a tokio runtime (it starts the live-event publisher).
    pub fn new(settings: Settings, db: Db, jwt_secret: &SecretString) -> Self {
        let limiter = LoginLimiter::new(
            settings.auth.login_attempts_per_minute_per_user,
            settings.auth.login_attempts_per_minute_per_ip,
            settings.auth.registrations_per_hour_per_ip,
        )
        .with_account_limit(settings.auth.login_attempts_per_minute_per_account);
        let hasher = crate::auth::password::Hasher::new(
            settings.auth.hash_concurrency,
            std::time::Duration::from_secs(settings.auth.hash_wait_secs.max(1)),
        );
        let graph = heydoc_whatsapp::GraphApi::new(
            &settings.whatsapp.api_url,
            &settings.whatsapp.api_version,
            std::time::Duration::from_secs(30),
        );
        let media = match crate::media::MediaStore::from_settings(&settings) {
            Ok(store) => Some(store),
            Err(e) => {
                tracing::error!(error = %e, "inbound media cannot be kept until this is fixed");
                None
            }
        };
        Self {
            graph,
            media,
            media_downloads: Arc::new(tokio::sync::Semaphore::new(
                settings.media.downloads_at_once.max(1),
            )),
            keywords: Arc::new(heydoc_domain::consent::Keywords::from_lists(
                &settings.optout.stop_keywords,
                &settings.optout.start_keywords,
            )),
            live: LivePublisher::spawn(db.clone()),
            live_feed: Arc::default(),
            db,
            tokens: Arc::new(TokenKeys::new(jwt_secret)),
            login_limiter: Arc::new(limiter),
            sessions: SessionCache::new(std::time::Duration::from_secs(
                settings.auth.session_cache_secs,
            )),
            settings: Arc::new(settings),
            outbox: None,
            scheduler_wake: None,
            stopping: None,
            live_streams: Arc::default(),
            hasher,
            import_gate: Arc::default(),
            key_uses: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(USE_STAMP_EVERY)
                .build(),
        }
    }

    /// The token Graph API calls for `number` carry: its own, else the environment's.
    pub fn token_for(
        &self,
        number: Option<&heydoc_store::numbers::Number>,
    ) -> Option<SecretString> {
        if let Some(t) = number.and_then(|n| n.access_token.clone()) {
            return Some(SecretString::from(t));
        }
        heydoc_config::WhatsAppSettings::secret(&self.settings.whatsapp.access_token)
            .map(|t| SecretString::from(t.to_string()))
    }

    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Publishes the wake-up for committed deliveries in the background (a producer span,
    /// child of the current one, whose context the jobs carry) and records the confirm; a
    /// failure leaves them to the relay.
    /// `number` is the business number the rows go from (their route).
    pub fn publish_after_commit(&self, number: &str, ids: Vec<i64>) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        let db = self.db.clone();
        let route = number.to_string();
        let span = tracing::info_span!(
            "publish",
            otel.name = %format!("publish {number}"),
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "publish",
            messaging.destination.name = %number,
            messaging.batch.message_count = ids.len(),
        );
        let headers = heydoc_telemetry::propagation::headers_of(&span);
        let task = async move {
            let jobs: Vec<heydoc_queue::Job> = ids
                .iter()
                .map(|&id| {
                    let mut job = heydoc_queue::Job::new(id);
                    job.headers.clone_from(&headers);
                    job
                })
                .collect();
            // Everything the gateway queues is conversational: a send, a reply, a confirmation.
            match heydoc_queue::publish_lanes(outbox.bus.as_ref(), &route, &jobs, &[]).await {
                Ok(()) => {
                    if let Err(e) =
                        heydoc_store::deliveries::mark_enqueued(&db, &ids, chrono::Utc::now()).await
                    {
                        tracing::debug!(error = %e, "could not record the publish; the relay may publish again");
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "publish after commit failed; the relay will publish")
                }
            }
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
    }

    /// Someone's access changed (logout, disabled, deleted, a new password): every replica,
    /// this one at once, forgets the sessions it trusted.
    pub async fn access_changed(&self) {
        self.sessions.clear();
        if let Err(e) = heydoc_store::live::notify_access_changed(&self.db).await {
            tracing::warn!(error = %e, "cannot tell the other replicas that access changed; their caches expire on their own");
        }
    }

    /// The live events every gateway replica hears (started on first use).
    pub async fn live_feed(&self) -> Result<&LiveFeed, heydoc_store::StoreError> {
        self.live_feed
            .get_or_try_init(|| LiveFeed::start(&self.db))
            .await
    }

    /// How our own number appears in the chat log: the configured phone number id, or
    /// `sandbox` when none is configured.
    pub fn business_number(&self) -> &str {
        let id = self.settings.whatsapp.phone_number_id.trim();
        if id.is_empty() {
            "sandbox"
        } else {
            id
        }
    }
}
