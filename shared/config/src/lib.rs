//! HeyDoc's configuration, in three layers: the embedded defaults (`defaults.toml`), then an
//! optional file (`HEYDOC_CONFIG`, or `./heydoc.toml` when it exists), then the environment.
//!
//! Environment names: the well-known ones below (`DATABASE_URL`, `JWT_SECRET`, `WHATSAPP_*` ...)
//! as they are, and every other key as `HEYDOC_<KEY>`, with `__` between a section and its key
//! (`HEYDOC_AUTH__OPEN_REGISTRATION=true`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;

const DEFAULTS: &str = include_str!("defaults.toml");

/// Unprefixed variables the deployment world already uses, and the keys they set.
const WELL_KNOWN_ENV: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("AMQP_URL", "amqp_url"),
    ("JWT_SECRET", "jwt_secret"),
    ("WHATSAPP_API_URL", "whatsapp.api_url"),
    ("WHATSAPP_API_VERSION", "whatsapp.api_version"),
    ("WHATSAPP_ACCESS_TOKEN", "whatsapp.access_token"),
    ("WHATSAPP_PHONE_NUMBER_ID", "whatsapp.phone_number_id"),
    ("WHATSAPP_APP_SECRET", "whatsapp.app_secret"),
    ("WHATSAPP_VERIFY_TOKEN", "whatsapp.verify_token"),
    ("WHATSAPP_WABA_ID", "whatsapp.waba_id"),
    ("WHATSAPP_MPS", "sender.mps"),
    ("WHATSAPP_WINDOW_POLICY", "sender.window_policy"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http_addr: String,
    pub metrics_on_http_addr: bool,
    /// Where `heydoc sender` and `heydoc scheduler` serve /healthz, /readyz and /metrics.
    pub admin_addr: String,
    database_url: String,
    pub db_max_connections: u32,
    pub data_dir: PathBuf,
    amqp_url: String,
    jwt_secret: SecretString,
    pub log_format: LogFormat,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub whatsapp: WhatsAppSettings,
    pub sender: SenderSettings,
    pub sandbox: SandboxSettings,
    pub scheduler: SchedulerSettings,
    pub optout: OptOutSettings,
    pub pricing: PricingSettings,
    pub media: MediaSettings,
}

/// What Meta charges per delivered message, to estimate a campaign's cost: per recipient
/// The public HTTP server's limits.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Seconds a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Seconds from a request's headers to its answer, its body included.
    pub request_timeout_secs: u64,
}

/// country calling code (`"91"`, `"1"`, ...; `"default"` for the rest), per pricing category
/// (`marketing`, `utility`, `authentication`, ...), in `currency`.
#[derive(Debug, Clone, Deserialize)]
pub struct PricingSettings {
    pub currency: String,
    pub rates: HashMap<String, HashMap<String, f64>>,
}

impl PricingSettings {
    /// The rate for one message to a recipient whose number starts with `phone`'s digits.
    pub fn rate(&self, phone: &str, category: &str) -> f64 {
        let digits = phone.trim_start_matches('+');
        // The longest calling code that matches (1 to 4 digits).
        let table = (1..=4)
            .rev()
            .filter_map(|n| digits.get(..n))
            .find_map(|code| self.rates.get(code))
            .or_else(|| self.rates.get("default"));
        table
            .and_then(|t| t.get(category).or_else(|| t.get("default")))
            .copied()
            .unwrap_or(0.0)
    }
}

/// Inbound media files: where they are kept, and the largest one downloaded.
#[derive(Debug, Clone, Deserialize)]
pub struct MediaSettings {
    pub backend: MediaBackend,
    /// Empty: `media` under `data_dir`.
    pub dir: String,
    pub max_bytes: u64,
    /// Downloads from Meta at once per gateway.
    pub downloads_at_once: usize,
    /// Bytes a person may upload in 24 hours.
    pub upload_quota_bytes: u64,
    /// Uploads are removed this many days after they were made.
    pub upload_retention_days: u32,
    pub s3_bucket: String,
    /// Empty: AWS itself; an S3-compatible server's URL otherwise (MinIO, Ceph, moto).
    pub s3_endpoint: String,
    pub s3_region: String,
    /// Empty: the AWS_* environment (a role, a profile).
    pub s3_access_key_id: String,
    pub s3_secret_access_key: SecretString,
}

/// Where media files are kept.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaBackend {
    Local,
    S3,
}

impl Settings {
    /// Where the local media store keeps files.
    pub fn media_dir(&self) -> PathBuf {
        match non_empty(&self.media.dir) {
            Some(d) => PathBuf::from(d),
            None => self.data_dir.join("media"),
        }
    }
}

/// Opt-out and opt-in by keyword (comma-separated lists, any language; matched as the whole
/// message, ignoring case and final punctuation) and the one-time confirmations sent back.
#[derive(Debug, Clone, Deserialize)]
pub struct OptOutSettings {
    pub stop_keywords: String,
    pub start_keywords: String,
    /// Empty: no confirmation.
    pub stop_reply: String,
    pub start_reply: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerSettings {
    pub tick_ms: u64,
    pub catch_up_secs: i64,
    pub claim_batch: u64,
    pub fanout_chunk: u64,
    pub fanout_lease_secs: i64,
    /// Skip US (+1) recipients of marketing templates, which Meta refuses since 2025-04-01.
    pub skip_us_marketing: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SenderSettings {
    pub mps: u32,
    pub window_policy: WindowPolicy,
    pub concurrency: usize,
    pub prefetch: u16,
    pub max_attempts: i32,
    pub retry_base_ms: u64,
    pub request_timeout_secs: u64,
    pub delivery_limit: u32,
    pub relay_interval_ms: u64,
    pub relay_batch: u64,
    pub window_secs: u64,
    pub window_floor: u64,
    pub breaker_probe_secs: u64,
    pub stale_enqueue_secs: i64,
    pub sending_lease_secs: i64,
    pub shutdown_grace_secs: u64,
    pub amqp_prefix: String,
    pub amqp_queue_expiry_secs: u64,
    pub event_retry_base_ms: u64,
    pub event_retry_max_secs: u64,
    pub event_timeout_secs: u64,
    pub event_disable_after_secs: u64,
    pub event_private_targets: bool,
}

/// What the sender does with free text to a contact outside the 24-hour window.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WindowPolicy {
    Send,
    Skip,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SandboxSettings {
    pub addr: String,
    pub webhook_url: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub open_registration: bool,
    pub cookie_secure: bool,
    pub session_ttl_hours: u64,
    pub session_cache_secs: u64,
    pub login_attempts_per_minute_per_user: u32,
    pub login_attempts_per_minute_per_ip: u32,
    pub login_attempts_per_minute_per_account: u32,
    pub registrations_per_hour_per_ip: u32,
    pub hash_concurrency: usize,
    pub hash_wait_secs: u64,
    pub trust_forwarded_for: bool,
    pub setup_token: SecretString,
    pub https: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WhatsAppSettings {
    pub api_url: String,
    pub api_version: String,
    pub access_token: SecretString,
    pub phone_number_id: String,
    pub app_secret: SecretString,
    pub verify_token: SecretString,
    /// The WhatsApp Business Account of the default number: its template catalog.
    pub waba_id: String,
    /// How often each gateway reads every account's templates from Meta (0: on demand only).
    pub template_sync_secs: u64,
}

/// Every variable may instead be given as a file to read: `JWT_SECRET_FILE=/run/secrets/jwt`
/// sets `JWT_SECRET` to the file's content (its trailing newline dropped), as Docker and
/// Kubernetes secrets are mounted. Both at once is an error.
fn with_secret_files(
    env: &HashMap<String, String>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = env.clone();
    for (name, path) in env {
        let Some(target) = name.strip_suffix("_FILE") else {
            continue;
        };
        let known =
            WELL_KNOWN_ENV.iter().any(|(n, _)| *n == target) || target.starts_with("HEYDOC_");
        if !known || target.is_empty() {
            continue;
        }
        if env.contains_key(target) {
            return Err(ConfigError::Invalid(format!(
                "both {target} and {name} are set: set one"
            )));
        }
        let value = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid(format!("{name}: cannot read {path}: {e}")))?;
        out.insert(
            target.to_string(),
            value.trim_end_matches(['\r', '\n']).to_string(),
        );
    }
    Ok(out)
}

impl Settings {
    /// Loads the three layers from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("HEYDOC_CONFIG").map(PathBuf::from);
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(file.as_deref(), &vars)
    }

    /// Loads the layers with an explicit file and environment lookup (tests use this).
    pub fn load_from(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let env = &with_secret_files(env)?;
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        match file {
            Some(path) => builder = builder.add_source(File::from(path).required(true)),
            None => builder = builder.add_source(File::with_name("heydoc.toml").required(false)),
        }
        let prefixed: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("HEYDOC_") && *k != "HEYDOC_CONFIG")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("HEYDOC")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(prefixed)),
        );
        for (name, key) in WELL_KNOWN_ENV {
            builder = builder.set_override_option(*key, env.get(*name).cloned())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// The embedded defaults alone, for tests that set fields by hand.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load_from(None, &HashMap::new())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.auth.session_ttl_hours == 0 {
            return Err(ConfigError::Invalid(
                "auth.session_ttl_hours must be at least 1".into(),
            ));
        }
        if self.auth.login_attempts_per_minute_per_user == 0
            || self.auth.login_attempts_per_minute_per_ip == 0
            || self.auth.login_attempts_per_minute_per_account == 0
        {
            return Err(ConfigError::Invalid(
                "login attempt limits must be at least 1".into(),
            ));
        }
        if self.sender.concurrency == 0 || self.sender.prefetch == 0 || self.sender.max_attempts < 1
        {
            return Err(ConfigError::Invalid(
                "sender concurrency, prefetch and max_attempts must be at least 1".into(),
            ));
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError::Invalid(
                "db_max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The database URL: `DATABASE_URL`, or the embedded SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        if self.database_url.trim().is_empty() {
            let path = self.data_dir.join("heydoc.db");
            format!("sqlite://{}?mode=rwc", path.display())
        } else {
            self.database_url.trim().to_string()
        }
    }

    pub fn set_database_url(&mut self, url: impl Into<String>) {
        self.database_url = url.into();
    }

    /// True when running on the embedded SQLite database.
    pub fn is_embedded(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    pub fn amqp_url(&self) -> Option<&str> {
        non_empty(&self.amqp_url)
    }

    /// The JWT signing secret, when one is configured.
    pub fn jwt_secret(&self) -> Option<&SecretString> {
        use secrecy::ExposeSecret;
        (!self.jwt_secret.expose_secret().trim().is_empty()).then_some(&self.jwt_secret)
    }

    pub fn set_jwt_secret(&mut self, secret: SecretString) {
        self.jwt_secret = secret;
    }
}

impl WhatsAppSettings {
    /// A configured secret, or `None` for an empty one.
    pub fn secret(value: &SecretString) -> Option<&str> {
        use secrecy::ExposeSecret;
        non_empty(value.expose_secret())
    }
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

/// A fresh random secret (64 hex digits) for the embedded mode's generated JWT key.
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load(vars: &[(&str, &str)]) -> Settings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(None, &map).unwrap()
    }

    #[test]
    fn defaults_are_embedded() {
        let s = load(&[]);
        assert_eq!(s.http_addr, "127.0.0.1:8080");
        assert!(s.is_embedded());
        assert!(s.database_url().ends_with("data/heydoc.db?mode=rwc"));
        assert!(s.jwt_secret().is_none());
        assert!(!s.auth.open_registration);
    }

    #[test]
    fn well_known_variables_override() {
        let s = load(&[
            ("DATABASE_URL", "postgres://localhost/heydoc"),
            ("JWT_SECRET", "s3cret"),
            ("WHATSAPP_PHONE_NUMBER_ID", "1234"),
        ]);
        assert!(!s.is_embedded());
        assert_eq!(s.jwt_secret().unwrap().expose_secret(), "s3cret");
        assert_eq!(s.whatsapp.phone_number_id, "1234");
    }

    #[test]
    fn a_secret_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("heydoc-secret-{}", std::process::id()));
        std::fs::write(&path, "from-a-file\n").unwrap();
        let file = path.display().to_string();
        let s = load(&[("JWT_SECRET_FILE", &file)]);
        assert_eq!(s.jwt_secret().unwrap().expose_secret(), "from-a-file");
        let both: HashMap<String, String> =
            [("JWT_SECRET_FILE", file.as_str()), ("JWT_SECRET", "x")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert!(Settings::load_from(None, &both).is_err());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn prefixed_variables_reach_nested_keys() {
        let s = load(&[
            ("HEYDOC_HTTP_ADDR", "0.0.0.0:9000"),
            ("HEYDOC_AUTH__OPEN_REGISTRATION", "true"),
        ]);
        assert_eq!(s.http_addr, "0.0.0.0:9000");
        assert!(s.auth.open_registration);
    }

    #[test]
    fn rates_follow_the_longest_calling_code() {
        let s = load(&[]);
        assert!(
            s.pricing.rate("919800000001", "marketing")
                < s.pricing.rate("14155550123", "marketing")
        );
        assert_eq!(
            s.pricing.rate("999", "marketing"),
            s.pricing.rates["default"]["marketing"]
        );
        assert_eq!(s.pricing.rate("919800000001", "service"), 0.0);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = load(&[
            ("JWT_SECRET", "hunter2hunter2"),
            ("WHATSAPP_ACCESS_TOKEN", "EAAtoken"),
        ]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2hunter2"));
        assert!(!shown.contains("EAAtoken"));
    }
}
