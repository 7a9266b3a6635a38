//! WhatsApp's webhooks: the subscription handshake, and inbound messages and delivery statuses.
//! Every POST is verified (HMAC-SHA256 of the raw body with the app secret) before anything is
//! parsed; messages are recorded once by wamid and statuses only move forward.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use heydoc_config::WhatsAppSettings;
use heydoc_domain::consent::Consent;
use heydoc_domain::{MessageStatus, Phone};
use heydoc_store::chat::{self, Inbound, StatusUpdate};
use heydoc_store::events;
use heydoc_store::live::LiveKind;
use heydoc_telemetry::metrics::WEBHOOK_EVENTS;
use heydoc_whatsapp::ErrorClass;
use hmac::{Hmac, Mac};
use sea_orm::{EntityTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Query;
use crate::routes::Envelope;
use crate::state::AppState;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

#[derive(Debug, Deserialize, IntoParams)]
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
    get, path = "/webhooks/whatsapp", tag = "webhooks",
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

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WebhookOut {
    /// Inbound messages recorded (replays are not counted).
    pub messages: u32,
    /// Statuses that moved a message forward.
    pub statuses: u32,
}

/// Inbound messages and delivery statuses from WhatsApp. Needs `X-Hub-Signature-256`.
#[utoipa::path(
    post, path = "/webhooks/whatsapp", tag = "webhooks",
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
    if !signature_valid(secret.as_bytes(), &body, signature) {
        metrics::counter!(WEBHOOK_EVENTS, "kind" => "bad_signature").increment(1);
        tracing::warn!("webhook refused: bad or missing X-Hub-Signature-256");
        return Err(ApiError::Unauthorized(
            "missing or invalid X-Hub-Signature-256".into(),
        ));
    }
    let envelope: WebhookEnvelope = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a WhatsApp webhook payload: {e}")))?;
    let now = Utc::now();
    let mut out = WebhookOut::default();
    for value in envelope
        .entry
        .iter()
        .flat_map(|e| &e.changes)
        .map(|c| &c.value)
    {
        let business = value
            .metadata
            .as_ref()
            .map(|m| m.display_phone_number.clone())
            .unwrap_or_default();
        // Which of our numbers it reached: replies go out from it.
        let number = value
            .metadata
            .as_ref()
            .and_then(|m| m.phone_number_id.clone());
        for msg in &value.messages {
            let Some(mut inbound) = to_inbound(msg, value, &business) else {
                continue;
            };
            inbound.number.clone_from(&number);
            metrics::counter!(WEBHOOK_EVENTS, "kind" => "message").increment(1);
            // The message and its event commit together.
            let txn = state.db.begin().await?;
            let recorded = chat::record_inbound(&txn, &inbound, now).await?;
            if let Some(stored) = &recorded {
                events::emit(
                    &txn,
                    events::MESSAGE_RECEIVED,
                    events::contact_key(stored.contact_id),
                    serde_json::json!({
                        "message_id": stored.id,
                        "wamid": stored.message_id,
                        "contact_id": stored.contact_id,
                        "phone": stored.sender_phone,
                        "profile_name": inbound.profile_name,
                        "type": stored.message_type,
                        "text": stored.message_text,
                        "timestamp": stored.timestamp,
                    }),
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            if let Some(stored) = recorded {
                state.live.publish(LiveKind::Message, stored.contact_id);
                out.messages += 1;
                if stored.message_type == "text" {
                    apply_keyword(&state, &stored, now).await?;
                }
            } else if let Some(latest) = chat::latest_inbound_if(&state.db, &inbound.wamid).await? {
                // A replay of the contact's latest message (WhatsApp retries a webhook we
                // failed): its keyword is applied again, in case the first try stopped after
                // recording the message. An older replay must not undo a newer STOP or START.
                if latest.message_type == "text" {
                    apply_keyword(&state, &latest, now).await?;
                }
            }
        }
        for status in &value.statuses {
            let Some(update) = to_status_update(status) else {
                continue;
            };
            metrics::counter!(WEBHOOK_EVENTS, "kind" => "status", "status" => update.status.as_str())
                .increment(1);
            let span = status_span(&state.db, &update).await;
            // The status and its event commit together.
            let txn = state.db.begin().await?;
            let changed = chat::apply_status(&txn, &update, now)
                .instrument(span)
                .await?;
            let message = if changed {
                chat::by_wamid(&txn, &update.wamid).await?
            } else {
                None
            };
            if let Some(m) = &message {
                failure_consequences(&txn, m, &update, now).await?;
                events::emit(
                    &txn,
                    events::MESSAGE_STATUS,
                    events::contact_key(m.contact_id),
                    serde_json::json!({
                        "message_id": m.id,
                        "wamid": m.message_id,
                        "contact_id": m.contact_id,
                        "phone": m.receiver_phone,
                        "status": update.status.as_str(),
                        "error_code": update.error_code,
                        "error_reason": update.error_reason,
                    }),
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            if changed {
                out.statuses += 1;
            }
            if let Some(m) = message {
                state.live.publish(LiveKind::Status, m.contact_id);
            }
        }
    }
    Ok(axum::Json(Envelope::ok(out, "Webhook processed")))
}

/// A failure Meta reports in a status webhook means what the same code means in the send
/// call's answer (invariant 11): 131050 and 131026 suppress the contact for campaigns, a
/// template problem pauses the campaign that used it, a number that cannot send is logged.
async fn failure_consequences(
    txn: &impl sea_orm::ConnectionTrait,
    m: &heydoc_entity::message::Model,
    update: &StatusUpdate,
    now: chrono::DateTime<Utc>,
) -> ApiResult<()> {
    let (MessageStatus::Failed, Some(code)) = (update.status, update.error_code) else {
        return Ok(());
    };
    let reason = format!(
        "{code}: {}",
        update
            .error_reason
            .as_deref()
            .unwrap_or("refused by WhatsApp")
    );
    match ErrorClass::from_code(i64::from(code)) {
        ErrorClass::NeverRetry { suppress: true } => {
            heydoc_store::failures::suppress_contact(txn, m.contact_id, &reason, now).await?;
        }
        ErrorClass::TemplateProblem => {
            if let Some(occurrence) = m.occurrence_id {
                let why = format!("WhatsApp refused the template ({reason})");
                if heydoc_store::failures::pause_campaign_of(txn, occurrence, &why, now).await? {
                    tracing::warn!(occurrence_id = occurrence, reason = %why, "campaign paused by a status webhook");
                }
            }
        }
        ErrorClass::StopNumber => {
            tracing::error!(code, reason = %reason, "a status webhook says the business number cannot send: check the access token and the account");
        }
        _ => {}
    }
    Ok(())
}

/// STOP or START (or a synonym) as the whole message: the contact leaves or rejoins the
/// campaigns, and gets the one-time confirmation.
async fn apply_keyword(
    state: &AppState,
    stored: &heydoc_entity::message::Model,
    now: chrono::DateTime<Utc>,
) -> ApiResult<()> {
    let Some(consent) = state.keywords.classify(&stored.message_text) else {
        return Ok(());
    };
    let reply = match consent {
        Consent::OptOut => &state.settings.optout.stop_reply,
        Consent::OptIn => &state.settings.optout.start_reply,
    };
    // The confirmation goes out from the number the contact wrote to.
    let number = match heydoc_entity::contact::Entity::find_by_id(stored.contact_id)
        .one(&state.db)
        .await?
    {
        Some(c) => heydoc_store::numbers::for_reply(&state.db, &c, state.business_number()).await?,
        None => state.business_number().to_string(),
    };
    let change =
        heydoc_store::consent::apply(&state.db, stored.contact_id, consent, reply, &number, now)
            .await?;
    let Some(change) = change else {
        return Ok(());
    };
    metrics::counter!(WEBHOOK_EVENTS, "kind" => consent.as_str()).increment(1);
    tracing::info!(
        contact_id = stored.contact_id,
        consent = consent.as_str(),
        "consent changed by keyword"
    );
    if let Some(id) = change.reply_id {
        state.publish_after_commit(&number, vec![id]);
    }
    state.live.publish(LiveKind::Message, stored.contact_id);
    Ok(())
}

/// A status update's span continues the trace of the send it concerns (found through the
/// delivery id WhatsApp echoes back in `biz_opaque_callback_data`, or the wamid).
async fn status_span(db: &sea_orm::DatabaseConnection, update: &StatusUpdate) -> tracing::Span {
    let span = tracing::info_span!(
        "status",
        otel.name = %format!("whatsapp status {}", update.status.as_str()),
        otel.kind = "consumer",
        heydoc.delivery_id = update.delivery_id,
        heydoc.status = update.status.as_str(),
        messaging.message.id = %update.wamid,
    );
    if !heydoc_telemetry::enabled() {
        return span;
    }
    match chat::trace_context_of(db, update.delivery_id, &update.wamid).await {
        Ok(tc) => heydoc_telemetry::propagation::set_parent_traceparent(&span, tc.as_deref()),
        Err(e) => tracing::debug!(error = %e, "cannot read the send's trace context"),
    }
    span
}

/// Checks `sha256=<hex>` against the HMAC of the raw body, in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[derive(Debug, Deserialize)]
struct WebhookEnvelope {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    value: ChangeValue,
}

#[derive(Debug, Default, Deserialize)]
struct ChangeValue {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<serde_json::Value>,
    #[serde(default)]
    statuses: Vec<WaStatus>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    display_phone_number: String,
    #[serde(default)]
    phone_number_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WaContact {
    #[serde(default)]
    wa_id: String,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Debug, Deserialize)]
struct WaError {
    code: i32,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<ErrorData>,
}

#[derive(Debug, Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

fn to_inbound(msg: &serde_json::Value, value: &ChangeValue, business: &str) -> Option<Inbound> {
    let text_of = |path: &[&str]| {
        path.iter()
            .try_fold(msg, |v, key| v.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let wamid = text_of(&["id"])?;
    let from_raw = text_of(&["from"])?;
    let Ok(from) = Phone::parse(&from_raw) else {
        tracing::warn!(from = %from_raw, "inbound message from an unusable number skipped");
        return None;
    };
    let kind = text_of(&["type"]).unwrap_or_else(|| "unknown".into());
    let timestamp = text_of(&["timestamp"])
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(Utc::now);
    let text = match kind.as_str() {
        "text" => text_of(&["text", "body"]),
        "button" => text_of(&["button", "text"]),
        "interactive" => text_of(&["interactive", "button_reply", "title"])
            .or_else(|| text_of(&["interactive", "list_reply", "title"])),
        "reaction" => text_of(&["reaction", "emoji"]),
        "image" | "video" | "document" => text_of(&[kind.as_str(), "caption"]),
        _ => None,
    }
    .unwrap_or_else(|| format!("[{kind}]"));
    let profile_name = value
        .contacts
        .iter()
        .find(|c| c.wa_id == from_raw)
        .or(value.contacts.first())
        .and_then(|c| c.profile.as_ref())
        .map(|p| p.name.clone());
    Some(Inbound {
        wamid,
        from,
        profile_name,
        to: business.to_string(),
        number: None,
        payload: (kind != "text").then(|| msg.clone()),
        message_type: kind,
        text,
        timestamp,
    })
}

fn to_status_update(status: &WaStatus) -> Option<StatusUpdate> {
    let Some(next) = MessageStatus::from_webhook(&status.status) else {
        tracing::debug!(status = %status.status, "status webhook with an unknown status ignored");
        return None;
    };
    let error = status.errors.first();
    Some(StatusUpdate {
        wamid: status.id.clone(),
        status: next,
        delivery_id: status
            .biz_opaque_callback_data
            .as_deref()
            .and_then(|d| d.parse().ok()),
        error_code: error.map(|e| e.code),
        error_reason: error.map(|e| {
            let details = e.error_data.as_ref().and_then(|d| d.details.clone());
            details
                .or_else(|| e.message.clone())
                .or_else(|| e.title.clone())
                .unwrap_or_else(|| format!("error {}", e.code))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_body() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_valid(b"secret", body, &good));
        assert!(!signature_valid(b"other", body, &good));
        assert!(!signature_valid(b"secret", b"{}", &good));
        assert!(!signature_valid(b"secret", body, ""));
        assert!(!signature_valid(b"secret", body, "sha256=zz"));
    }
}
