//! WhatsApp's webhooks: the subscription handshake, and inbound messages and delivery statuses.
//! Every POST is verified (HMAC-SHA256 of the raw body with the app secret) before anything is
//! parsed; `core::webhooks` applies what it says.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use heydoc_config::WhatsAppSettings;
use heydoc_telemetry::metrics::WEBHOOK_EVENTS;
use heydoc_whatsapp::webhook;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use crate::core::webhooks::{self, WebhookOut};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Query;
use crate::routes::Envelope;
use crate::state::AppState;

pub use heydoc_whatsapp::webhook::SIGNATURE_HEADER;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// Meta's subscription check: answers the challenge when the verify token matches.
#[utoipa::path(
    get, path = "/webhooks/whatsapp", operation_id = "verifyWebhook", tag = "webhooks",
    params(Handshake),
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "the challenge, echoed"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    Query(params): Query<Handshake>,
) -> ApiResult<Response> {
    let Some(expected) = WhatsAppSettings::secret(&state.settings.whatsapp.verify_token) else {
        return Err(ApiError::Forbidden(
            "WHATSAPP_VERIFY_TOKEN is not configured".into(),
        ));
    };
    let given = params.verify_token.unwrap_or_default();
    let token_ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    if params.mode.as_deref() != Some("subscribe") || !token_ok {
        return Err(ApiError::Forbidden(
            "verification failed: wrong hub.mode or hub.verify_token".into(),
        ));
    }
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain")],
        params.challenge.unwrap_or_default(),
    )
        .into_response())
}

/// Inbound messages and delivery statuses from WhatsApp. Needs `X-Hub-Signature-256`.
#[utoipa::path(
    post, path = "/webhooks/whatsapp", operation_id = "receiveWebhook", tag = "webhooks",
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body with the app secret>")),
    request_body(content = Object, content_type = "application/json", description = "WhatsApp's webhook envelope"),
    responses(
        (status = 200, body = Envelope<WebhookOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Envelope<WebhookOut>>> {
    let Some(secret) = WhatsAppSettings::secret(&state.settings.whatsapp.app_secret) else {
        tracing::warn!("webhook refused: WHATSAPP_APP_SECRET is not configured");
        return Err(ApiError::Unauthorized(
            "webhook signatures cannot be checked: WHATSAPP_APP_SECRET is not configured".into(),
        ));
    };
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !webhook::signature_valid(secret.as_bytes(), &body, signature) {
        metrics::counter!(WEBHOOK_EVENTS, "kind" => "bad_signature").increment(1);
        tracing::warn!("webhook refused: bad or missing X-Hub-Signature-256");
        return Err(ApiError::Unauthorized(
            "missing or invalid X-Hub-Signature-256".into(),
        ));
    }
    let envelope: webhook::Envelope = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a WhatsApp webhook payload: {e}")))?;
    let out = webhooks::receive(&state, envelope).await?;
    Ok(axum::Json(Envelope::ok(out, "Webhook processed")))
}
