//! Sending one message: the outgoing row is the send's intent, committed before anything is
//! queued (invariant 1).

use chrono::Utc;
use heydoc_domain::{template, validate, Phone};
use heydoc_store::messages::{self as store, ApiSend, Message};
use heydoc_store::{contacts, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::core::messages::MessageOut;
use crate::core::templates::TemplateSpec;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendMessage {
    /// The recipient, country code first (`"14155550123"`; `+`, spaces and dashes are ignored).
    #[schema(
        example = "14155550123",
        pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$"
    )]
    pub phone_number: String,
    /// The text, at most 4096 characters. Leave it out (or empty) with a `template` to send
    /// the template itself: the chat then records what the template says, with its parameters.
    #[serde(default)]
    #[schema(example = "Hello from the bot!", max_length = 4096)]
    pub message: String,
    /// With a `message`: an approved template to send instead when the contact is outside
    /// WhatsApp's 24-hour window (free text would be refused there). Without one: the template
    /// to send.
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// The business number to send from (its phone number id, see `GET /api/numbers`).
    /// Default: the number the contact last wrote to, else the default number.
    #[serde(default)]
    #[schema(example = "106540352242922")]
    pub from: Option<String>,
    /// A file to send (from `POST /api/media`, uploaded for the number it goes from); the
    /// `message` is its caption (images, video, documents) and what the chat shows.
    #[serde(default)]
    pub media: Option<crate::core::uploads::MediaSpec>,
}

/// What a send did: queued the message, or found the one queued with the same key.
pub enum Sent {
    Queued(MessageOut),
    Repeated(MessageOut),
}

/// Queues a text message to one contact (created when new). With an idempotency `key` (as the
/// request's header read: a bad one is refused after the phone and the text are checked),
/// repeating the same request returns the first one's message instead of sending again.
pub async fn send_message(
    state: &AppState,
    me: &AuthUser,
    key: ApiResult<Option<String>>,
    body: SendMessage,
) -> ApiResult<Sent> {
    let phone = Phone::parse(&body.phone_number).map_err(|e| e.in_field("phone_number"))?;
    // A template alone is a template send; otherwise the text is the message.
    let template_only = body.template.is_some() && body.message.trim().is_empty();
    if !template_only {
        if body.message.trim().is_empty() {
            return Err(ApiError::validation(
                "message must not be empty: write the message, or choose a template to send",
            ));
        }
        validate::message_text("message", &body.message)?;
        template::check_text(&body.message)
            .map_err(|e| ApiError::validation(format!("message: {e}")))?;
    }
    let key = key?;
    let payload = match &body.template {
        Some(t) => {
            t.check_name()?;
            let payload = if template_only {
                serde_json::to_value(t)
                    .map_err(|e| ApiError::Internal(format!("template spec: {e}")))?
            } else {
                serde_json::json!({ "fallback_template": t })
            };
            template::check(&payload)
                .map_err(|e| ApiError::validation(format!("template: {e}")))?;
            Some(payload)
        }
        None => None,
    };
    if body.template.is_some() && body.media.is_some() {
        return Err(ApiError::validation(
            "give a template or a file (media), not both",
        ));
    }
    if let Some(from) = &body.from {
        crate::core::numbers::usable(state, from).await?;
    }
    let request_hash = hex::encode(Sha256::digest(format!(
        "{phone}\n{}\n{}\n{}\n{}",
        body.message,
        payload.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        body.from.as_deref().unwrap_or_default(),
        body.media
            .as_ref()
            .map(|m| m.upload_id.to_string())
            .unwrap_or_default()
    )));

    if let Some(key) = &key {
        if let Some(previous) = find_by_key(state, key, &request_hash).await? {
            return Ok(Sent::Repeated(previous.into()));
        }
    }
    let mut kind = if template_only { "template" } else { "text" }.to_string();
    let mut payload = payload;
    let mut catalog_entry = None;
    if body.template.is_some() || body.media.is_some() {
        // Checked against the account (or the uploads) of the number it will go from.
        let number = match &body.from {
            Some(from) => from.trim().to_string(),
            None => match contacts::find_by_phone(&state.db, phone.as_str()).await? {
                Some(c) => {
                    heydoc_store::numbers::for_reply(&state.db, &c, state.business_number()).await?
                }
                None => state.business_number().to_string(),
            },
        };
        if let Some(t) = &body.template {
            catalog_entry = crate::core::templates::check(state, Some(&number), t).await?;
        }
        if let Some(m) = &body.media {
            let (k, p) =
                crate::core::uploads::payload_for(state, m, &number, &body.message).await?;
            kind = k;
            payload = Some(p);
        }
    }

    let now = Utc::now();
    let txn = heydoc_store::begin(&state.db).await?;
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
    let payload = payload
        .map(|p| template::fill(&p, &fields))
        .transpose()
        .map_err(|e| ApiError::validation(format!("template: {e}")))?;
    let text = if template_only {
        template_text(
            body.template.as_ref(),
            catalog_entry.as_ref(),
            payload.as_ref(),
        )
    } else {
        let text = template::fill_text(&body.message, &fields)
            .map_err(|e| ApiError::validation(format!("message: {e}")))?;
        validate::message_text("message", &text)?;
        text
    };
    let send = ApiSend {
        kind: &kind,
        contact_id: contact.id,
        from: &number,
        to: phone.as_str(),
        text: &text,
        payload,
        idempotency_key: key.clone(),
        request_hash: request_hash.clone(),
        created_by: me.user_id,
        trace_context: heydoc_telemetry::propagation::traceparent_of(&tracing::Span::current()),
    };
    let inserted = match store::queue_api_send(&txn, send, now).await {
        Ok(m) => m,
        Err(StoreError::Conflict(_)) if key.is_some() => {
            // Another request with the same key committed first: answer with its message.
            drop(txn);
            let key = key.as_deref().unwrap_or_default();
            let previous = find_by_key(state, key, &request_hash)
                .await?
                .ok_or_else(|| ApiError::Internal("idempotency key vanished".into()))?;
            return Ok(Sent::Repeated(previous.into()));
        }
        Err(e) => return Err(e.into()),
    };
    heydoc_store::commit(txn).await?;
    state.publish_after_commit(&number, vec![inserted.id]);
    state
        .live
        .publish(heydoc_store::live::LiveKind::Message, contact.id);
    tracing::info!(message_id = inserted.id, "message queued");
    Ok(Sent::Queued(inserted.into()))
}

/// What the chat records for a template send: the template's text with the (personalised)
/// parameters, or its name when the account's catalog is not synced yet.
fn template_text(
    spec: Option<&TemplateSpec>,
    entry: Option<&heydoc_store::templates::Template>,
    filled: Option<&serde_json::Value>,
) -> String {
    let name = spec.map(|t| t.name.trim()).unwrap_or_default();
    let filled: Option<TemplateSpec> = filled.and_then(|p| serde_json::from_value(p.clone()).ok());
    match (entry, filled.as_ref().or(spec)) {
        (Some(entry), Some(spec)) => {
            let text = crate::core::templates::rendered(entry, spec);
            if text.trim().is_empty() {
                format!("[template {name}]")
            } else {
                text
            }
        }
        _ => format!("[template {name}]"),
    }
}

/// The message first sent with this key; 422 when the key was used for a different request.
async fn find_by_key(
    state: &AppState,
    key: &str,
    request_hash: &str,
) -> ApiResult<Option<Message>> {
    let Some(found) = store::by_idempotency_key(&state.db, key).await? else {
        return Ok(None);
    };
    if found.request_hash.as_deref() != Some(request_hash) {
        return Err(ApiError::validation(
            "this Idempotency-Key was already used with a different phone_number or message",
        ));
    }
    Ok(Some(found))
}
