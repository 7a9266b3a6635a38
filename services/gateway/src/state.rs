//! What every handler can reach.

use std::sync::Arc;

use heydoc_config::Settings;
use sea_orm::DatabaseConnection;
use secrecy::SecretString;

use crate::auth::limiter::LoginLimiter;
use crate::auth::token::TokenKeys;
use crate::auth::SessionCache;

/// Where the gateway publishes a send's wake-up right after its commit. Without one (or when
/// the publish fails) the outbox relay publishes it a moment later.
#[derive(Clone)]
pub struct Outbox {
    pub bus: Arc<dyn heydoc_queue::JobBus>,
    pub route: String,
}

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub tokens: Arc<TokenKeys>,
    pub login_limiter: Arc<LoginLimiter>,
    pub sessions: SessionCache,
    pub outbox: Option<Outbox>,
    /// Wakes an in-process scheduler when a schedule is created (`heydoc all`).
    pub scheduler_wake: Option<Arc<tokio::sync::Notify>>,
}

impl AppState {
    /// `jwt_secret` is the signing key; the caller decides where it comes from (configured, or
    /// generated in the embedded mode).
    pub fn new(settings: Settings, db: DatabaseConnection, jwt_secret: &SecretString) -> Self {
        let limiter = LoginLimiter::new(
            settings.auth.login_attempts_per_minute_per_user,
            settings.auth.login_attempts_per_minute_per_ip,
        );
        Self {
            db,
            tokens: Arc::new(TokenKeys::new(jwt_secret)),
            login_limiter: Arc::new(limiter),
            sessions: SessionCache::new(std::time::Duration::from_secs(
                settings.auth.session_cache_secs,
            )),
            settings: Arc::new(settings),
            outbox: None,
            scheduler_wake: None,
        }
    }

    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Publishes the wake-up for committed deliveries in the background and records the
    /// confirm; a failure leaves them to the relay.
    pub fn publish_after_commit(&self, ids: Vec<i64>) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        let db = self.db.clone();
        tokio::spawn(async move {
            let jobs: Vec<heydoc_queue::Job> =
                ids.iter().map(|&id| heydoc_queue::Job::new(id)).collect();
            match outbox.bus.publish(&outbox.route, &jobs).await {
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
        });
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
