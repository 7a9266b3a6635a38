//! The Cloud API client: one pooled reqwest client, the messages endpoint of one business
//! phone number, and answers turned into [`Accepted`] or a classified [`SendError`].

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

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

/// Meta accepted the message; `wamid` is what its status webhooks will name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub wamid: String,
}

#[derive(Clone)]
pub struct CloudApi {
    http: reqwest::Client,
    messages_url: String,
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
        let messages_url = format!(
            "{}/{}/{}/messages",
            config.base_url.trim_end_matches('/'),
            config.version.trim_matches('/'),
            config.phone_number_id
        );
        Ok(Self {
            http,
            messages_url,
            token: config.access_token,
        })
    }

    pub fn messages_url(&self) -> &str {
        &self.messages_url
    }

    /// Sends one message. `traceparent` (W3C) rides along for tracing.
    pub async fn send(
        &self,
        message: &Outgoing,
        traceparent: Option<&str>,
    ) -> Result<Accepted, SendError> {
        let body = message.to_json();
        let reply = self.post(&body, traceparent).await?;
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
        self.post(&body, None).await.map(|_| ())
    }

    async fn post(
        &self,
        body: &serde_json::Value,
        traceparent: Option<&str>,
    ) -> Result<axum::body::Bytes, SendError> {
        let mut request = self
            .http
            .post(&self.messages_url)
            .bearer_auth(self.token.expose_secret())
            .json(body);
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
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
            Err(_) if status.is_server_error() => SendError::new(
                ErrorClass::RetrySoon,
                None,
                format!("HTTP {status} from the Cloud API"),
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
