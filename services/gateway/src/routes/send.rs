//! `POST /api/send_message`: the outgoing message row is the send's intent, committed before
//! anything is queued (invariant 1).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Extension;
use chrono::Utc;
use heydoc_domain::{template, validate, Phone};
use heydoc_entity::message;
use heydoc_store::{chat, contacts};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::routes::messages::MessageOut;
use crate::routes::scheduled::TemplateSpec;
use crate::routes::Envelope;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendMessage {
    /// The recipient, country code first (`"14155550123"`; `+`, spaces and dashes are ignored).
    #[schema(example = "14155550123", pattern = r"^\+?[1-9][0-9 ().-]{5,30}$")]
    pub phone_number: String,
    /// The text, at most 4096 characters.
    #[schema(example = "Hello from the bot!", min_length = 1, max_length = 4096)]
    pub message: String,
    /// An approved template to send instead when the contact is outside WhatsApp's 24-hour
    /// window (free text would be refused there).
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// The business number to send from (its phone number id, see `GET /api/numbers`).
    /// Default: the number the contact last wrote to, else the default number.
    #[serde(default)]
    #[schema(example = "106540352242922")]
    pub from: Option<String>,
}

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Queues a text message to one contact (created when new). With an `Idempotency-Key` header,
/// repeating the same request returns the first one's message instead of sending again.
#[utoipa::path(
    post, path = "/api/send_message", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries of this request safe (at most 255 characters)")),
    request_body = SendMessage,
    responses(
        (status = 200, body = Envelope<MessageOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn send_message(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    headers: HeaderMap,
    Json(body): Json<SendMessage>,
) -> ApiResult<axum::Json<Envelope<MessageOut>>> {
    let phone = Phone::parse(&body.phone_number)?;
    validate::message_text("message", &body.message)?;
    template::check_text(&body.message)
        .map_err(|e| ApiError::validation(format!("message: {e}")))?;
    let key = idempotency_key(&headers)?;
    let payload = match &body.template {
        Some(t) => {
            if t.name.trim().is_empty() || t.language.trim().is_empty() {
                return Err(ApiError::validation("template needs a name and a language"));
            }
            let payload = serde_json::json!({ "fallback_template": t });
            template::check(&payload)
                .map_err(|e| ApiError::validation(format!("template: {e}")))?;
            Some(payload)
        }
        None => None,
    };
    if let Some(from) = &body.from {
        crate::routes::numbers::usable(&state, from).await?;
    }
    let request_hash = hex::encode(Sha256::digest(format!(
        "{phone}\n{}\n{}\n{}",
        body.message,
        payload.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        body.from.as_deref().unwrap_or_default()
    )));

    if let Some(key) = &key {
        if let Some(previous) = find_by_key(&state, key, &request_hash).await? {
            return Ok(axum::Json(Envelope::ok(
                previous.into(),
                "Message already queued for this Idempotency-Key",
            )));
        }
    }

    let now = Utc::now();
    let txn = state.db.begin().await?;
    let contact = contacts::find_or_create(&txn, &phone, None, now).await?;
    let number = match &body.from {
        Some(from) => from.trim().to_string(),
        None => heydoc_store::numbers::for_reply(&txn, &contact, state.business_number()).await?,
    };
    // Personalised now that the contact is known: the chat shows what the patient reads, and
    // a placeholder this contact cannot fill is refused before anything is queued (the
    // transaction, and a contact it created, roll back).
    let fields = template::ContactFields {
        name: &contact.name,
        phone: &contact.phone,
        attributes: &contact.attributes,
    };
    let text = template::fill_text(&body.message, &fields)
        .map_err(|e| ApiError::validation(format!("message: {e}")))?;
    validate::message_text("message", &text)?;
    let payload = payload
        .map(|p| template::fill(&p, &fields))
        .transpose()
        .map_err(|e| ApiError::validation(format!("template: {e}")))?;
    let row = message::ActiveModel {
        payload: Set(payload),
        idempotency_key: Set(key.clone()),
        request_hash: Set(Some(request_hash.clone())),
        created_by: Set(Some(me.user_id)),
        // The relay, if it is the one to publish, carries this request's trace on.
        trace_context: Set(heydoc_telemetry::propagation::traceparent_of(
            &tracing::Span::current(),
        )),
        ..chat::queued_text(contact.id, &number, phone.as_str(), &text, "api", now)
    };
    let inserted = match message::Entity::insert(row).exec_with_returning(&txn).await {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) && key.is_some() =>
        {
            // Another request with the same key committed first: answer with its message.
            drop(txn);
            let key = key.as_deref().unwrap_or_default();
            let previous = find_by_key(&state, key, &request_hash)
                .await?
                .ok_or_else(|| ApiError::Internal("idempotency key vanished".into()))?;
            return Ok(axum::Json(Envelope::ok(
                previous.into(),
                "Message already queued for this Idempotency-Key",
            )));
        }
        Err(e) => return Err(e.into()),
    };
    chat::bump_counters(&txn, contact.id, &text, now, false).await?;
    txn.commit().await?;
    state.publish_after_commit(&number, vec![inserted.id]);
    state
        .live
        .publish(heydoc_store::live::LiveKind::Message, contact.id);
    tracing::info!(message_id = inserted.id, "message queued");
    Ok(axum::Json(Envelope::ok(
        inserted.into(),
        "Message queued for sending",
    )))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?
        .trim();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 characters".into(),
        ));
    }
    Ok(Some(key.to_string()))
}

/// The message first sent with this key; 422 when the key was used for a different request.
async fn find_by_key(
    state: &AppState,
    key: &str,
    request_hash: &str,
) -> ApiResult<Option<message::Model>> {
    let Some(found) = message::Entity::find()
        .filter(message::Column::IdempotencyKey.eq(key))
        .one(&state.db)
        .await?
    else {
        return Ok(None);
    };
    if found.request_hash.as_deref() != Some(request_hash) {
        return Err(ApiError::validation(
            "this Idempotency-Key was already used with a different phone_number or message",
        ));
    }
    Ok(Some(found))
}
