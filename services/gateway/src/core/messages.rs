//! A contact's chat: its messages, newest first, and marking them read.

use chrono::{DateTime, Utc};
use heydoc_domain::Phone;
use heydoc_store::messages::{self as store, Message};
use heydoc_whatsapp::message_kinds as kinds;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::core::contacts::find as find_contact;
use crate::error::ApiResult;
use crate::routes::page_size;
use crate::state::AppState;

/// A message as the seed shows it, plus HeyDoc's additions.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: i64,
    /// WhatsApp's message id (wamid); empty until WhatsApp has accepted an outgoing message.
    pub message_id: String,
    pub sender_phone: String,
    pub receiver_phone: String,
    /// `text`, `template`, `image`, ...
    pub message_type: String,
    pub message_text: String,
    pub timestamp: DateTime<Utc>,
    /// `incoming` or `outgoing`.
    pub direction: String,
    pub is_read: bool,
    /// `received` for incoming; for outgoing `queued`, `sending`, `retrying`, `sent`,
    /// `delivered`, `read`, `failed`, `skipped` or `unknown`.
    pub status: String,
    /// WhatsApp's error code when the message failed.
    pub error_code: Option<i32>,
    /// Why the message failed or was skipped.
    pub error_reason: Option<String>,
    /// Where the file of an incoming image, document, audio, video or sticker is served
    /// (`GET /api/media/{id}`).
    pub media_url: Option<String>,
    /// For a template message: the template sent and its parameters (`name`, `language`,
    /// `components`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub template: Option<serde_json::Value>,
    /// Reactions to the message, one per person (the newest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionOut>,
    /// When the sender last edited it, and the earlier texts, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<EditOut>,
    /// When the sender deleted it (its text is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// A shared location, with a map link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<kinds::Location>,
    /// Shared contact cards, with their numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_contacts: Vec<kinds::SharedContact>,
    /// An order from the catalog, item by item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<kinds::Order>,
    /// A WhatsApp Flow's answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_reply: Option<kinds::FlowReply>,
}

/// A reaction on a message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReactionOut {
    pub emoji: String,
    /// Who reacted (their phone, or user id).
    pub from: String,
    pub at: Option<DateTime<Utc>>,
}

/// An earlier text of an edited message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EditOut {
    pub text: String,
    /// When it was replaced.
    pub replaced_at: Option<DateTime<Utc>>,
}

/// What happened to a message after it was sent, from its stored revisions.
struct Revised {
    reactions: Vec<ReactionOut>,
    edited_at: Option<DateTime<Utc>>,
    edits: Vec<EditOut>,
    deleted_at: Option<DateTime<Utc>>,
}

fn time_at(v: &serde_json::Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key)
        .and_then(|t| t.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn revised(revisions: Option<&serde_json::Value>) -> Revised {
    let Some(r) = revisions else {
        return Revised {
            reactions: Vec::new(),
            edited_at: None,
            edits: Vec::new(),
            deleted_at: None,
        };
    };
    let mut reactions: Vec<ReactionOut> = r
        .get("reactions")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(from, v)| {
                    Some(ReactionOut {
                        emoji: v.get("emoji")?.as_str()?.to_string(),
                        from: from.clone(),
                        at: time_at(v, "at"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    reactions.sort_by_key(|x| x.at);
    let edits = r
        .get("edits")
        .and_then(|e| e.as_array())
        .map(|list| {
            list.iter()
                .map(|e| EditOut {
                    text: e
                        .get("text")
                        .and_then(|t| t.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    replaced_at: time_at(e, "replaced_at"),
                })
                .collect()
        })
        .unwrap_or_default();
    Revised {
        reactions,
        edited_at: time_at(r, "edited_at"),
        edits,
        deleted_at: time_at(r, "deleted_at"),
    }
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        let incoming = m.direction == heydoc_domain::Direction::Incoming.as_str();
        let media_url = (incoming
            && heydoc_whatsapp::webhook::MEDIA_KINDS.contains(&m.message_type.as_str()))
        .then(|| format!("/api/media/{}", m.id));
        let template = (m.message_type == "template")
            .then(|| m.payload.clone())
            .flatten()
            .filter(|p| p.get("name").is_some());
        // An inbound message's payload is Meta's message as it came.
        let raw = m.payload.as_ref().filter(|_| incoming);
        let revised = revised(m.revisions.as_ref());
        Self {
            media_url,
            template,
            location: raw.and_then(kinds::location),
            shared_contacts: raw.map(kinds::shared_contacts).unwrap_or_default(),
            order: raw
                .filter(|p| p.get("order").is_some())
                .and_then(kinds::order),
            flow_reply: raw.and_then(kinds::flow_reply),
            reactions: revised.reactions,
            edited_at: revised.edited_at,
            edits: revised.edits,
            deleted_at: revised.deleted_at,
            id: m.id,
            message_id: m.message_id.unwrap_or_default(),
            sender_phone: m.sender_phone,
            receiver_phone: m.receiver_phone,
            message_type: m.message_type,
            message_text: m.message_text,
            timestamp: m.timestamp,
            direction: m.direction,
            is_read: m.is_read,
            status: m.status,
            error_code: m.last_error_code,
            error_reason: m.last_error_reason,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatParams {
    /// How many messages, 1 to 200 (default 20).
    pub limit: Option<i64>,
    /// Only messages older than this message id (the `id` of the last one on the previous page).
    pub before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadOut {
    pub phone: String,
    /// Always 0 afterwards.
    pub unread_count: i32,
    /// How many incoming messages were marked read.
    pub marked: u64,
}

pub async fn list(state: &AppState, phone: &str, params: ChatParams) -> ApiResult<Vec<MessageOut>> {
    let phone = Phone::parse(phone)?;
    let rows = store::page(
        &state.db,
        &phone,
        params.before,
        page_size(params.limit, 20, 200),
    )
    .await?;
    Ok(rows.into_iter().map(MessageOut::from).collect())
}

pub async fn mark_read(state: &AppState, phone: &str) -> ApiResult<ReadOut> {
    let txn = heydoc_store::begin(&state.db).await?;
    let contact = find_contact(&txn, phone).await?;
    let marked = store::mark_read(&txn, contact.id).await?;
    heydoc_store::commit(txn).await?;
    if marked > 0 {
        tell_whatsapp(state, &contact, false);
    }
    Ok(ReadOut {
        phone: contact.phone,
        unread_count: 0,
        marked,
    })
}

/// Someone is writing a reply: WhatsApp shows the patient that the business is typing (and
/// their latest message as read), and colleagues with the chat open see who is writing. The
/// colleagues' notice is a hint: failing to send it fails nothing.
pub async fn typing(state: &AppState, me: &AuthUser, phone: &str) -> ApiResult<()> {
    let contact = find_contact(&state.db, phone).await?;
    tell_whatsapp(state, &contact, true);
    if let Err(e) = heydoc_store::live::notify_replying(&state.db, contact.id, me.user_id).await {
        tracing::debug!(error = %e, "could not tell colleagues who is replying");
    }
    Ok(())
}

/// Marks the contact's latest message read at Meta (blue ticks on the patient's phone), with
/// the typing indicator when asked, from the number they wrote to; in the background (a
/// failure only loses the ticks, and is logged).
fn tell_whatsapp(state: &AppState, contact: &heydoc_store::contacts::Contact, typing: bool) {
    let state = state.clone();
    let contact = contact.clone();
    tokio::spawn(async move {
        let latest = match store::latest_inbound(&state.db, contact.id).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the latest inbound message");
                return;
            }
        };
        let Some(wamid) = latest.message_id else {
            return;
        };
        let number_id = contact
            .last_number
            .clone()
            .unwrap_or_else(|| state.business_number().to_string());
        let number = heydoc_store::numbers::find(&state.db, &number_id)
            .await
            .ok()
            .flatten();
        let Some(token) = state.token_for(number.as_ref()) else {
            return;
        };
        if let Err(e) = state
            .graph
            .mark_read(&number_id, &wamid, typing, &token)
            .await
        {
            tracing::info!(error = %e.message, typing, "WhatsApp did not take the read receipt");
        }
    });
}
