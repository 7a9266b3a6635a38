//! Conversations as the team's work: the inbox's views (mine, unassigned, needs reply,
//! resolved), status and assignment (live on every replica and sent to event endpoints),
//! private notes and canned replies.

use chrono::{DateTime, Utc};
use heydoc_store::contacts::Filter;
use heydoc_store::conversations::{self as store, View};
use heydoc_store::events::{self, OutboundEvent};
use heydoc_store::live::LiveKind;
use heydoc_store::outbound::ConversationUpdated;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::core::audit;
use crate::core::contacts::{self, decode_cursor, encode_cursor, tags_of, ContactOut};
use crate::error::{ApiError, ApiResult};
use crate::routes::page_size;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationParams {
    /// `all` (default), `mine`, `unassigned`, `needs_reply` or `resolved`. All but `resolved`
    /// leave resolved conversations out.
    #[param(value_type = Option<ConversationView>)]
    pub view: Option<String>,
    /// Only conversations with this status.
    #[param(value_type = Option<crate::core::contacts::ConversationStatus>)]
    pub status: Option<String>,
    /// Name, phone (`+`, spaces and dashes are ignored) or message text containing this.
    pub q: Option<String>,
    /// Only contacts carrying this tag id.
    pub tag: Option<i32>,
    /// Page size, 1 to 200 (default 50; other values are brought within).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` header of the previous page.
    pub cursor: Option<String>,
}

/// The inbox's views.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the document's enum; the handler reads the string and says what is wrong
pub enum ConversationView {
    All,
    Mine,
    Unassigned,
    NeedsReply,
    Resolved,
}

fn view_of(name: Option<&str>, me: &AuthUser) -> ApiResult<View> {
    Ok(match name.unwrap_or("all") {
        "all" | "" => View::All,
        "mine" => View::Mine(me.user_id),
        "unassigned" => View::Unassigned,
        "needs_reply" => View::NeedsReply,
        "resolved" => View::Resolved,
        other => {
            return Err(ApiError::BadRequest(format!(
                "view {other:?} is not one of all, mine, unassigned, needs_reply, resolved"
            )))
        }
    })
}

fn check_status(status: &str) -> ApiResult<()> {
    if store::STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "status {status:?} is not one of open, pending, resolved"
        )))
    }
}

/// One page of conversations, unread first then the newest, and the next page's cursor.
pub async fn list(
    state: &AppState,
    me: &AuthUser,
    params: ConversationParams,
) -> ApiResult<(Vec<ContactOut>, Option<String>)> {
    let view = view_of(params.view.as_deref(), me)?;
    if let Some(status) = &params.status {
        check_status(status).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let limit = page_size(params.limit, 50, 200);
    let after = params
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(decode_position)
        .transpose()?;
    let filter = Filter {
        q: params.q,
        tag: params.tag,
        said_by: None,
    };
    let mut rows = store::page(
        &state.db,
        view,
        params.status.as_deref(),
        &filter,
        after,
        limit + 1,
    )
    .await?;
    let mut next = None;
    if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        next = rows.last().and_then(store::position).map(encode_position);
    }
    let mut tags = tags_of(&state.db, &rows.iter().map(|c| c.id).collect::<Vec<_>>()).await?;
    Ok((
        rows.into_iter()
            .map(|c| {
                let t = tags.remove(&c.id).unwrap_or_default();
                ContactOut::new(c, t)
            })
            .collect(),
        next,
    ))
}

fn encode_position((unread, at, id): store::Position) -> String {
    format!(
        "{}{}",
        if unread { 'u' } else { 'r' },
        encode_cursor(at, id)
    )
}

fn decode_position(cursor: &str) -> ApiResult<store::Position> {
    let unread = match cursor.chars().next() {
        Some('u') => true,
        Some('r') => false,
        _ => {
            return Err(ApiError::BadRequest(
                "cursor is not one this API returned".into(),
            ))
        }
    };
    let (at, id) = decode_cursor(&cursor[1..])?;
    Ok((unread, at, id))
}

/// How many conversations each view holds for the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationCounts {
    /// Unresolved conversations whose last message waits for a reply.
    pub needs_reply: u64,
    /// Unresolved conversations assigned to the caller.
    pub mine: u64,
    /// Unresolved conversations nobody has.
    pub unassigned: u64,
    /// Unresolved conversations with unread messages (the tab title's count).
    pub unread: u64,
}

pub async fn counts(state: &AppState, me: &AuthUser) -> ApiResult<ConversationCounts> {
    let c = store::counts(&state.db, me.user_id).await?;
    Ok(ConversationCounts {
        needs_reply: c.needs_reply,
        mine: c.mine,
        unassigned: c.unassigned,
        unread: c.unread,
    })
}

/// A colleague a conversation may be assigned to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Assignee {
    pub id: i32,
    pub username: String,
}

/// Everyone who can answer chats (active users), by name.
pub async fn assignees(state: &AppState) -> ApiResult<Vec<Assignee>> {
    let mut out: Vec<Assignee> = heydoc_store::users::all(&state.db)
        .await?
        .into_iter()
        .filter(heydoc_store::users::is_active)
        .map(|u| Assignee {
            id: u.id,
            username: u.username,
        })
        .collect();
    out.sort_by_key(|a| a.username.to_lowercase());
    Ok(out)
}

/// A change to a conversation; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationChange {
    /// `open`, `pending` or `resolved`.
    #[serde(default)]
    #[schema(value_type = Option<crate::core::contacts::ConversationStatus>)]
    pub status: Option<String>,
    /// The colleague to assign it to; `null` unassigns.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, nullable)]
    pub assignee_id: Option<Option<i32>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
    Option::<i32>::deserialize(d).map(Some)
}

/// Changes a conversation's status or assignee; every replica's inbox and every endpoint that
/// asked for `conversation.updated` hear of it.
pub async fn change(
    state: &AppState,
    me: &AuthUser,
    phone: &str,
    body: ConversationChange,
) -> ApiResult<ContactOut> {
    if body.status.is_none() && body.assignee_id.is_none() {
        return Err(ApiError::validation("give status, assignee_id, or both"));
    }
    if let Some(status) = &body.status {
        check_status(status)?;
    }
    let assignee_name = match body.assignee_id {
        Some(Some(id)) => match heydoc_store::users::get(&state.db, id).await? {
            Some(u) if heydoc_store::users::is_active(&u) => Some(u.username),
            _ => return Err(ApiError::NotFound(format!("user {id} not found"))),
        },
        _ => None,
    };
    let now = Utc::now();
    let txn = heydoc_store::begin(&state.db).await?;
    let existing = contacts::find(&txn, phone).await?;
    let assignee_name = match (body.assignee_id, existing.assignee_id) {
        (Some(_), _) => assignee_name,
        (None, Some(id)) => heydoc_store::users::get(&txn, id)
            .await?
            .map(|u| u.username),
        (None, None) => None,
    };
    let change = store::Change {
        status: body.status,
        assignee: body.assignee_id,
    };
    let updated = store::change(&txn, &existing, &change, now).await?;
    events::emit(
        &txn,
        OutboundEvent::ConversationUpdated(ConversationUpdated {
            contact_id: updated.id,
            phone: updated.phone.clone(),
            status: updated.conversation_status.clone(),
            assignee_id: updated.assignee_id,
            assignee: assignee_name,
            needs_reply: updated.awaiting_reply,
            changed_by: me.username.clone(),
            changed_at: now,
        }),
        now,
    )
    .await?;
    let out = contacts::with_tags(&txn, updated).await?;
    heydoc_store::commit(txn).await?;
    state.live.publish(LiveKind::Conversation, out.id);
    Ok(out)
}

/// A private note in a chat.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteOut {
    pub id: i64,
    /// Who wrote it.
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<store::Note> for NoteOut {
    fn from(n: store::Note) -> Self {
        Self {
            id: n.id,
            author: n.author,
            body: n.body,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// What the team should know; the contact never sees it.
    #[schema(min_length = 1, max_length = 4096)]
    pub body: String,
}

pub async fn notes(
    state: &AppState,
    phone: &str,
    since: Option<DateTime<Utc>>,
) -> ApiResult<Vec<NoteOut>> {
    let contact = contacts::find(&state.db, phone).await?;
    Ok(store::notes(&state.db, contact.id, since)
        .await?
        .into_iter()
        .map(NoteOut::from)
        .collect())
}

pub async fn add_note(
    state: &AppState,
    me: &AuthUser,
    phone: &str,
    body: NewNote,
) -> ApiResult<NoteOut> {
    let text = body.body.trim();
    if text.is_empty() {
        return Err(ApiError::validation("body: write the note first"));
    }
    if text.chars().count() > 4096 {
        return Err(ApiError::validation("body: at most 4096 characters"));
    }
    let contact = contacts::find(&state.db, phone).await?;
    let note = store::add_note(
        &state.db,
        contact.id,
        (me.user_id, &me.username),
        text,
        Utc::now(),
    )
    .await?;
    state.live.publish(LiveKind::Conversation, contact.id);
    Ok(note.into())
}

/// A reply the team reuses.
#[derive(Debug, Serialize, ToSchema)]
pub struct CannedReplyOut {
    pub id: i32,
    /// Typed after `/` in a chat.
    pub shortcut: String,
    pub body: String,
}

impl From<store::CannedReply> for CannedReplyOut {
    fn from(r: store::CannedReply) -> Self {
        Self {
            id: r.id,
            shortcut: r.shortcut,
            body: r.body,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCannedReply {
    /// Letters, digits, `-` and `_`, 1 to 40 (without the `/`).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,40}$", example = "hours")]
    pub shortcut: String,
    #[schema(
        min_length = 1,
        max_length = 4096,
        example = "We are open 9:00-18:00, Monday to Saturday."
    )]
    pub body: String,
}

pub async fn canned_replies(state: &AppState) -> ApiResult<Vec<CannedReplyOut>> {
    Ok(store::canned_replies(&state.db)
        .await?
        .into_iter()
        .map(CannedReplyOut::from)
        .collect())
}

pub async fn add_canned_reply(
    state: &AppState,
    me: &AuthUser,
    body: NewCannedReply,
) -> ApiResult<CannedReplyOut> {
    let shortcut = body.shortcut.trim().trim_start_matches('/');
    if shortcut.is_empty()
        || shortcut.len() > 40
        || !shortcut
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::validation(
            "shortcut: use 1 to 40 letters, digits, - or _ (for example: hours)",
        ));
    }
    let text = body.body.trim();
    if text.is_empty() || text.chars().count() > 4096 {
        return Err(ApiError::validation(
            "body: write the reply (at most 4096 characters)",
        ));
    }
    let shortcut = shortcut.to_lowercase();
    Ok(
        store::add_canned_reply(&state.db, &shortcut, text, me.user_id, Utc::now())
            .await?
            .into(),
    )
}

/// Deletes a canned reply for the whole team; the audit log keeps who deleted which and what
/// it said.
pub async fn delete_canned_reply(state: &AppState, me: &AuthUser, id: i32) -> ApiResult<()> {
    let gone = store::delete_canned_reply(&state.db, id).await?;
    audit::record(
        state,
        me,
        audit::action::CANNED_REPLY_DELETE,
        format!("/{}", gone.shortcut),
        Some(serde_json::json!({"id": gone.id, "body": gone.body})),
    )
    .await;
    Ok(())
}
