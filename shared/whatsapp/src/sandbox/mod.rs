//! The sandbox: a local stand-in for the WhatsApp Cloud API. It answers
//! `POST /{version}/{phone-number-id}/messages` in Meta's formats with fresh wamids, then posts
//! signed status webhooks (sent, delivered, read) to the configured webhook URL, as Meta does,
//! posting again later any webhook the receiver did not take.
//! Knobs: latency, forced error rates by code (130429, 131056, 500, ...), timeouts, the 24-hour
//! window (131047), and inbound message injection. `GET /sandbox/stats` tells what it saw.
//! Like a WhatsApp Business Account it also keeps a template catalog (listed in pages, with
//! approve/pause/disable knobs that post Meta's template webhooks, and sends checked against
//! it), prices each status as Meta does, and serves inbound media behind expiring URLs.

mod account;
mod catalog;
mod routes;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::templates::TemplateInfo;
use crate::webhook::{ChangeValue, Envelope, Metadata, WaStatus};
use routes::{get_knobs, inject_inbound, put_knobs, reset, send_message, stats};

/// How long the sandbox keeps posting a webhook the receiver does not take.
const WEBHOOK_RETRY_FOR: Duration = Duration::from_secs(300);

/// The business account id the sandbox's webhooks name.
pub const SANDBOX_WABA: &str = "SANDBOX_WABA";

/// The sandbox's knobs. All can be changed at run time with `PUT /sandbox/config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxKnobs {
    /// Added to every answer, in milliseconds.
    pub latency_ms: u64,
    /// Forced failures: Meta error code (or an HTTP status 500-599) to the fraction of sends
    /// that get it, e.g. `{"130429": 0.2}`.
    pub error_rates: BTreeMap<String, f64>,
    /// The fraction of sends that are accepted but never answered (the client times out).
    pub timeout_rate: f64,
    /// Sends accepted and then reported `failed` by status webhook with this error code, as
    /// Meta reports an account's payment problem (131042) or a policy block: code to the
    /// fraction of sends, e.g. `{"131042": 1.0}`.
    pub status_failure_rates: BTreeMap<String, f64>,
    /// Sends accepted (counted, their status webhooks sent) whose answer is then lost behind
    /// a bodyless HTTP error, as a load balancer in front of Meta does: HTTP status (500-599)
    /// to the fraction of sends, e.g. `{"502": 0.1}`.
    pub lost_answer_rates: BTreeMap<String, f64>,
    /// How long a "timed out" send is held before the connection is dropped, in milliseconds.
    pub timeout_hold_ms: u64,
    /// Refuse non-template messages to recipients who have not written in 24 hours (131047).
    pub enforce_window: bool,
    /// Post status webhooks (sent, delivered, read) for accepted messages.
    pub status_webhooks: bool,
    /// The fraction of delivered messages that are then read.
    pub read_rate: f64,
    /// Time between one status and the next, in milliseconds.
    pub status_delay_ms: u64,
    /// The number's real throughput (messages per wall-clock second); sends beyond it are
    /// refused with 130429, as Meta does. 0: no limit.
    pub max_mps: u64,
    /// Check template sends against the catalog, as Meta does: an unknown template or
    /// language is 132001, a paused one 132015, a disabled one 132016, a wrong number of body
    /// parameters 132000. Off by default for tests that name templates freely; `heydoc`'s
    /// built-in and standalone sandboxes turn it on.
    pub enforce_templates: bool,
    /// Serve media files whose bytes do not match the sha256 announced for them.
    pub tamper_media: bool,
    /// How long a media download URL lives, in seconds (Meta's: about 5 minutes).
    pub media_url_ttl_secs: u64,
}

impl Default for SandboxKnobs {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rates: BTreeMap::new(),
            timeout_rate: 0.0,
            status_failure_rates: BTreeMap::new(),
            lost_answer_rates: BTreeMap::new(),
            timeout_hold_ms: 30_000,
            enforce_window: false,
            status_webhooks: true,
            read_rate: 1.0,
            status_delay_ms: 200,
            max_mps: 0,
            enforce_templates: false,
            tamper_media: false,
            media_url_ttl_secs: 300,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where status and inbound webhooks go: the gateway's `/webhooks/whatsapp`.
    pub webhook_url: Option<String>,
    /// Signs the webhooks (`X-Hub-Signature-256`), as the app secret does at Meta.
    pub app_secret: SecretString,
    /// The business number the sandbox pretends to be.
    pub display_phone_number: String,
    pub knobs: SandboxKnobs,
}

/// What the sandbox has seen since it started (or was reset).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SandboxStats {
    /// Messages accepted (a wamid was returned, or would have been before a timeout).
    pub accepted: u64,
    /// Accepted messages per recipient.
    pub by_recipient: BTreeMap<String, u64>,
    /// Accepted messages per business number (the phone number id in the path).
    pub by_number: BTreeMap<String, u64>,
    /// Accepted messages per callback data (HeyDoc's delivery id): more than 1 is a double send.
    pub by_callback: BTreeMap<String, u64>,
    /// When each callback data was first accepted (Unix milliseconds), for lateness.
    #[serde(default)]
    pub first_accepted_ms: BTreeMap<String, i64>,
    /// Message calls that reached the API per callback data, accepted or not (counted as they
    /// arrive, before any latency): a call a killed sender had started shows here.
    #[serde(default)]
    pub arrived: BTreeMap<String, u64>,
    /// Refusals by error code.
    pub errors: BTreeMap<String, u64>,
    /// The most messages accepted within any one wall-clock second.
    pub max_per_second: u64,
    /// The same, per business number.
    pub max_per_second_by_number: BTreeMap<String, u64>,
    /// Webhook posts (each retry counts) and how many of them were not taken.
    pub webhooks_posted: u64,
    pub webhooks_failed: u64,
    /// The text parameters of the last template each recipient was sent.
    pub template_params: BTreeMap<String, Vec<String>>,
    /// Files the business uploaded (`POST /{phone-number-id}/media`).
    pub uploads: u64,
    /// The media id of the last file each recipient was sent.
    pub media_sent: BTreeMap<String, String>,
    /// Read receipts taken (`status: read`), and of those the ones with a typing indicator.
    pub read_receipts: u64,
    pub typing_indicators: u64,
    /// The body of the last text message each recipient was sent.
    pub texts: BTreeMap<String, String>,
    /// The last `traceparent` headers the message calls carried (at most 1,000), so the
    /// propagation of traces to the Cloud API can be seen.
    pub traceparents: Vec<String>,
    /// The messaging limit tier the last `/sandbox/number/quality` set (what
    /// `GET /{phone-number-id}` answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_limit: Option<String>,
    /// Media downloads served, and the most that were in progress at once.
    #[serde(default)]
    pub media_downloads: u64,
    #[serde(default)]
    pub max_downloads_at_once: u64,
}

struct Inner {
    config: Mutex<SandboxConfig>,
    stats: Mutex<Counters>,
    /// Last inbound message per sender, for the 24-hour window.
    inbound: Mutex<HashMap<String, Instant>>,
    /// The business account's templates, in the order they are listed.
    templates: Mutex<Vec<TemplateInfo>>,
    /// Media by id: uploaded by the business or sent by users.
    media: Mutex<HashMap<String, account::StoredMedia>>,
    http: reqwest::Client,
}

#[derive(Default)]
struct Counters {
    stats: SandboxStats,
    /// Media downloads in progress.
    downloading: u64,
    second: i64,
    in_second: u64,
    /// Per business number: the current wall-clock second and its count.
    number_seconds: HashMap<String, (i64, u64)>,
}

/// A running sandbox; cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                stats: Mutex::new(Counters::default()),
                inbound: Mutex::new(HashMap::new()),
                templates: Mutex::new(catalog::starter_templates()),
                media: Mutex::new(HashMap::new()),
                http,
            }),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/{version}/{phone_number_id}/messages", post(send_message))
            .route("/sandbox/inbound", post(inject_inbound))
            .route("/sandbox/stats", get(stats))
            .route("/sandbox/config", get(get_knobs).put(put_knobs))
            .route("/sandbox/reset", post(reset))
            .route(
                "/{version}/{waba_id}/message_templates",
                get(catalog::list_templates),
            )
            .route(
                "/sandbox/templates",
                get(catalog::get_templates)
                    .put(catalog::put_templates)
                    .post(catalog::add_template),
            )
            .route("/sandbox/templates/status", post(catalog::set_status))
            .route("/sandbox/templates/quality", post(catalog::set_quality))
            .route("/sandbox/number/quality", post(account::number_quality))
            .route("/{version}/{media_id}", get(account::media_info))
            .route(
                "/{version}/{phone_number_id}/media",
                post(account::upload_media),
            )
            .route("/sandbox/media/{id}", get(account::download_media))
            .with_state(self.clone())
    }

    /// Serves on `listener` until the task is dropped. A call whose client goes away (a sender
    /// killed mid-call) is still read and answered: the connection is served with half-close,
    /// so a request that arrived whole is never dropped unseen. Whether Meta finishes such a
    /// call is not known; that doubt is what a delivery's `unknown` says.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let router = self.router();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "sandbox cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .half_close(true)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// Binds `addr` and serves in a background task; returns the bound address.
    pub async fn spawn(self, addr: &str) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = self.serve(listener).await {
                tracing::error!(error = %e, "sandbox stopped");
            }
        });
        Ok(bound)
    }

    /// Accepted messages in all and per business number: `stats` without its large maps, cheap
    /// enough to poll during a long run.
    pub fn counts(&self) -> (u64, BTreeMap<String, u64>) {
        let c = lock(&self.inner.stats);
        (c.stats.accepted, c.stats.by_number.clone())
    }

    pub fn stats(&self) -> SandboxStats {
        lock(&self.inner.stats).stats.clone()
    }

    pub fn set_knobs(&self, knobs: SandboxKnobs) {
        lock(&self.inner.config).knobs = knobs;
    }

    pub fn set_webhook_url(&self, url: String) {
        lock(&self.inner.config).webhook_url = Some(url);
    }

    fn config(&self) -> SandboxConfig {
        lock(&self.inner.config).clone()
    }

    /// Whether one more send fits this wall-clock second under `max_mps`.
    fn over_throughput(&self, number: &str, max_mps: u64) -> bool {
        if max_mps == 0 {
            return false;
        }
        let c = lock(&self.inner.stats);
        let now = Utc::now().timestamp();
        c.number_seconds
            .get(number)
            .is_some_and(|(second, n)| *second == now && *n >= max_mps)
    }

    fn count_accepted(&self, number: &str, to: &str, callback: Option<&str>) {
        let mut c = lock(&self.inner.stats);
        let now = Utc::now().timestamp();
        if c.second != now {
            c.second = now;
            c.in_second = 0;
        }
        c.in_second += 1;
        c.stats.max_per_second = c.stats.max_per_second.max(c.in_second);
        c.stats.accepted += 1;
        *c.stats.by_recipient.entry(to.to_string()).or_default() += 1;
        *c.stats.by_number.entry(number.to_string()).or_default() += 1;
        let (second, in_second) = c.number_seconds.entry(number.to_string()).or_default();
        if *second != now {
            *second = now;
            *in_second = 0;
        }
        *in_second += 1;
        let count = *in_second;
        let max = c
            .stats
            .max_per_second_by_number
            .entry(number.to_string())
            .or_default();
        *max = (*max).max(count);
        if let Some(cb) = callback {
            *c.stats.by_callback.entry(cb.to_string()).or_default() += 1;
            c.stats
                .first_accepted_ms
                .entry(cb.to_string())
                .or_insert_with(|| Utc::now().timestamp_millis());
        }
    }

    fn note_traceparent(&self, traceparent: &str) {
        let seen = &mut lock(&self.inner.stats).stats.traceparents;
        if seen.len() >= 1000 {
            seen.remove(0);
        }
        seen.push(traceparent.to_string());
    }

    fn count_error(&self, code: &str) {
        *lock(&self.inner.stats)
            .stats
            .errors
            .entry(code.to_string())
            .or_default() += 1;
    }

    fn in_window(&self, phone: &str) -> bool {
        lock(&self.inner.inbound)
            .get(phone)
            .is_some_and(|t| t.elapsed() < Duration::from_secs(24 * 3600))
    }

    /// Posts a messages webhook (signed) to the configured URL.
    async fn post_webhook(&self, value: ChangeValue) {
        self.post_envelope(Envelope::of(SANDBOX_WABA, value)).await;
    }

    /// Posts any webhook envelope (signed) to the configured URL. As Meta does, a webhook the
    /// receiver did not take (no answer, or not a 2xx) is posted again later, in the
    /// background: after 1, 2, 4 ... seconds, at most a minute apart, for `WEBHOOK_RETRY_FOR`
    /// (Meta: up to 7 days). A gateway restarting while a status is on its way gets it once it
    /// is back; the knobs that post a webhook still answer after the first attempt.
    async fn post_envelope(&self, envelope: Envelope) {
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        if self.post_once(&body).await {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let first = Instant::now();
            let mut pause = Duration::from_secs(1);
            while first.elapsed() + pause <= WEBHOOK_RETRY_FOR {
                tokio::time::sleep(pause).await;
                if this.post_once(&body).await {
                    return;
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// One signed POST of a webhook body; true when the receiver took it. Without a webhook
    /// URL there is nobody to tell, which counts as taken.
    async fn post_once(&self, body: &[u8]) -> bool {
        let config = self.config();
        let Some(url) = config.webhook_url else {
            return true;
        };
        let signature = crate::webhook::sign(config.app_secret.expose_secret().as_bytes(), body);
        let result = self
            .inner
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header(crate::webhook::SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await;
        let ok = matches!(&result, Ok(r) if r.status().is_success());
        let mut c = lock(&self.inner.stats);
        c.stats.webhooks_posted += 1;
        if !ok {
            c.stats.webhooks_failed += 1;
            tracing::debug!(
                ?result,
                "sandbox webhook not accepted; it is posted again later"
            );
        }
        ok
    }

    fn metadata(&self) -> Metadata {
        let number = self.config().display_phone_number;
        Metadata::new(&number, &number)
    }

    /// Sends the status webhooks of one accepted message, in order, with a pause between;
    /// each carries `pricing` as Meta's would.
    fn spawn_statuses(
        &self,
        wamid: String,
        to: String,
        callback: Option<String>,
        pricing: serde_json::Value,
        fails_later: Option<i64>,
    ) {
        let knobs = self.config().knobs;
        if !knobs.status_webhooks {
            return;
        }
        let this = self.clone();
        if let Some(code) = fails_later {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(knobs.status_delay_ms)).await;
                let mut st = WaStatus::new(&wamid, "failed", &to, Utc::now().timestamp(), callback);
                st.pricing = None;
                let (title, details) = routes::error_text(code);
                st.errors = vec![crate::webhook::WaError {
                    code: i32::try_from(code).unwrap_or(131000),
                    title: Some(title.to_string()),
                    message: Some(title.to_string()),
                    error_data: Some(crate::webhook::ErrorData {
                        details: Some(details.to_string()),
                    }),
                    href: Some(
                        "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
                            .to_string(),
                    ),
                }];
                this.post_webhook(ChangeValue::status(this.metadata(), st))
                    .await;
            });
            return;
        }
        tokio::spawn(async move {
            let read = rand::thread_rng().gen_bool(knobs.read_rate.clamp(0.0, 1.0));
            let statuses: &[&str] = if read {
                &["sent", "delivered", "read"]
            } else {
                &["sent", "delivered"]
            };
            for status in statuses {
                tokio::time::sleep(Duration::from_millis(knobs.status_delay_ms)).await;
                let mut st = WaStatus::new(
                    &wamid,
                    status,
                    &to,
                    Utc::now().timestamp(),
                    callback.clone(),
                );
                st.pricing = Some(pricing.clone());
                this.post_webhook(ChangeValue::status(this.metadata(), st))
                    .await;
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the counters inconsistent in a way
    // that matters; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A receiver that refuses the first post (a gateway restarting) gets the webhook again,
    /// signed the same, a second later.
    #[tokio::test]
    async fn a_webhook_the_receiver_refused_is_posted_again() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let receiver = axum::Router::new().route(
            "/webhooks/whatsapp",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    match counter.fetch_add(1, Ordering::SeqCst) {
                        0 => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        _ => axum::http::StatusCode::OK,
                    }
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/whatsapp",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, receiver).await });
        let sandbox = Sandbox::new(SandboxConfig {
            webhook_url: Some(url),
            app_secret: SecretString::from("app-secret"),
            display_phone_number: "15550001111".into(),
            knobs: SandboxKnobs::default(),
        });

        sandbox
            .post_webhook(ChangeValue::inbound_text(
                sandbox.metadata(),
                "15551234567",
                "Ana",
                "wamid.retried",
                "hello",
                0,
            ))
            .await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the first post answers at once"
        );
        for _ in 0..100 {
            if hits.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "posted again, and only until taken"
        );
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "a taken webhook is not posted again"
        );
        let stats = sandbox.stats();
        assert_eq!((stats.webhooks_posted, stats.webhooks_failed), (2, 1));
    }
}
