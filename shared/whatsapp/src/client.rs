//! The Cloud API client: one pooled reqwest client, the messages endpoint of one business
//! phone number, and answers turned into [`Accepted`] or a classified [`SendError`].

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tracing::Instrument;

use crate::error::{ErrorClass, SendError};
use crate::payload::{ErrorResponse, Outgoing, SendResponse};

#[derive(Debug, Clone)]
pub struct CloudApiConfig {
    /// `https://graph.facebook.com`, or the sandbox's address.
    pub base_url: String,
    /// `v23.0`.
    pub version: String,
    pub phone_number_id: String,
    pub access_token: SecretString,
    /// The whole request, connection included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

/// `{base}/{version}/{phone number id}/messages`. A base that already ends in a version, as
/// Meta's documents write it (`https://graph.facebook.com/v23.0`), is taken as it is: its
/// version wins over `version` (with a warning when they differ), never `/v23.0/v23.0/`.
pub fn messages_url(base_url: &str, version: &str, phone_number_id: &str) -> String {
    graph_url(base_url, version, &format!("{phone_number_id}/messages"))
}

/// `{base}/{version}/{path}`, with a base that already names a version taken as it is (see
/// [`messages_url`]).
pub fn graph_url(base_url: &str, version: &str, path: &str) -> String {
    let base = base_url.trim().trim_end_matches('/');
    let version = version.trim().trim_matches('/');
    let last = base.rsplit('/').next().unwrap_or_default();
    if is_version(last) {
        if last != version {
            tracing::warn!(
                url_version = last,
                configured = version,
                "WHATSAPP_API_URL names a Graph API version; it is used instead of WHATSAPP_API_VERSION"
            );
        }
        return format!("{base}/{path}");
    }
    format!("{base}/{version}/{path}")
}

/// `v23.0`, `v23`: a Graph API version path segment.
fn is_version(segment: &str) -> bool {
    segment.strip_prefix('v').is_some_and(|rest| {
        !rest.is_empty()
            && rest.split('.').count() <= 2
            && rest
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Meta accepted the message; `wamid` is what its status webhooks will name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub wamid: String,
}

#[derive(Clone)]
pub struct CloudApi {
    http: reqwest::Client,
    messages_url: String,
    /// The host of `messages_url`, for spans.
    host: String,
    token: SecretString,
}

impl CloudApi {
    pub fn new(config: CloudApiConfig) -> Result<Self, SendError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                SendError::new(ErrorClass::StopNumber, None, format!("HTTP client: {e}"))
            })?;
        let messages_url = messages_url(&config.base_url, &config.version, &config.phone_number_id);
        let host = reqwest::Url::parse(&messages_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        Ok(Self {
            http,
            messages_url,
            host,
            token: config.access_token,
        })
    }

    pub fn messages_url(&self) -> &str {
        &self.messages_url
    }

    /// Sends one message, in a client span whose `traceparent` rides along (W3C).
    pub async fn send(&self, message: &Outgoing) -> Result<Accepted, SendError> {
        let body = message.to_json();
        let reply = self.post(&body).await?;
        let parsed: SendResponse = serde_json::from_slice(&reply).map_err(|e| {
            SendError::new(
                ErrorClass::OutcomeUnknown,
                None,
                format!("unreadable success reply: {e}"),
            )
        })?;
        let wamid = parsed
            .messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .ok_or_else(|| {
                SendError::new(
                    ErrorClass::OutcomeUnknown,
                    None,
                    "success reply without a message id",
                )
            })?;
        Ok(Accepted { wamid })
    }

    /// Marks an inbound message as read (blue ticks on the user's phone).
    pub async fn mark_read(&self, wamid: &str) -> Result<(), SendError> {
        let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
        self.post(&body).await.map(|_| ())
    }

    async fn post(&self, body: &serde_json::Value) -> Result<axum::body::Bytes, SendError> {
        // OpenTelemetry HTTP client conventions; the span's context goes out as `traceparent`.
        let span = tracing::info_span!(
            "POST",
            otel.kind = "client",
            http.request.method = "POST",
            url.full = %self.messages_url,
            server.address = %self.host,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let result = self.post_in(body, &span).instrument(span.clone()).await;
        metrics::histogram!(heydoc_telemetry::metrics::WHATSAPP_DURATION)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            let kind = e
                .code
                .map_or_else(|| "transport".to_string(), |c| c.to_string());
            span.record("error.type", kind.as_str());
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    async fn post_in(
        &self,
        body: &serde_json::Value,
        span: &tracing::Span,
    ) -> Result<axum::body::Bytes, SendError> {
        let mut request = self
            .http
            .post(&self.messages_url)
            .bearer_auth(self.token.expose_secret())
            .json(body);
        for (name, value) in heydoc_telemetry::propagation::headers_of(span) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|e| {
            SendError::new(
                ErrorClass::OutcomeUnknown,
                None,
                format!("reply cut off: {e}"),
            )
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let mut error = match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(ErrorResponse { error }) => {
                let details = error
                    .error_data
                    .as_ref()
                    .map(|d| d.details.clone())
                    .filter(|d| !d.is_empty());
                let message = match details {
                    Some(d) => format!("({}) {}: {d}", error.code, error.message),
                    None => format!("({}) {}", error.code, error.message),
                };
                SendError::new(ErrorClass::from_code(error.code), Some(error.code), message)
            }
            // No Meta error in it: a proxy or load balancer answered, perhaps after Meta took
            // the message. Never sent again blind.
            Err(_) if status.is_server_error() => SendError::new(
                ErrorClass::OutcomeUnknown,
                None,
                format!("HTTP {status} from the Cloud API without an error body: WhatsApp may or may not have accepted it"),
            ),
            Err(_) if status.as_u16() == 429 => SendError::new(
                ErrorClass::BackOffNumber,
                None,
                "HTTP 429 from the Cloud API",
            ),
            Err(_) => SendError::new(
                ErrorClass::NeverRetry { suppress: false },
                None,
                format!("HTTP {status} from the Cloud API"),
            ),
        };
        error.retry_after = retry_after;
        Err(error)
    }
}

/// Before the request left (no connection), resending is safe; after, the outcome is unknown.
fn transport_error(e: reqwest::Error) -> SendError {
    if e.is_connect() {
        SendError::new(
            ErrorClass::RetrySoon,
            None,
            format!("could not connect to the Cloud API: {e}"),
        )
    } else if e.is_builder() {
        SendError::new(
            ErrorClass::NeverRetry { suppress: false },
            None,
            format!("bad request: {e}"),
        )
    } else {
        SendError::new(
            ErrorClass::OutcomeUnknown,
            None,
            format!("no answer from the Cloud API: {e}"),
        )
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::messages_url;

    #[test]
    fn a_base_url_with_or_without_a_version_makes_one_path() {
        let want = "https://graph.facebook.com/v23.0/1234/messages";
        assert_eq!(
            messages_url("https://graph.facebook.com", "v23.0", "1234"),
            want
        );
        assert_eq!(
            messages_url("https://graph.facebook.com/", "/v23.0/", "1234"),
            want
        );
        assert_eq!(
            messages_url("https://graph.facebook.com/v23.0", "v23.0", "1234"),
            want
        );
        assert_eq!(
            messages_url("https://graph.facebook.com/v23.0/", "v23.0", "1234"),
            want
        );
        // The URL's own version wins.
        assert_eq!(
            messages_url("https://graph.facebook.com/v22.0", "v23.0", "1234"),
            "https://graph.facebook.com/v22.0/1234/messages"
        );
        // A path that only looks like one is kept, and the version added.
        assert_eq!(
            messages_url("http://127.0.0.1:9000/video", "v23.0", "1"),
            "http://127.0.0.1:9000/video/v23.0/1/messages"
        );
    }
}
