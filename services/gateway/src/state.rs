//! What every handler can reach.

use std::sync::Arc;

use heydoc_config::Settings;
use sea_orm::DatabaseConnection;
use secrecy::SecretString;

use crate::auth::limiter::LoginLimiter;
use crate::auth::token::TokenKeys;
use crate::auth::SessionCache;

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub tokens: Arc<TokenKeys>,
    pub login_limiter: Arc<LoginLimiter>,
    pub sessions: SessionCache,
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
        }
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
