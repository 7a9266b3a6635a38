//! Conversations as the team's work: views, status and assignment, notes, canned replies.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::contacts::ContactOut;
use crate::core::conversations::{
    self, Assignee, CannedReplyOut, ConversationChange, ConversationCounts, ConversationParams,
    NewCannedReply, NewNote, NoteOut,
};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

/// Conversations of a view, unread first, then the newest conversation (an inbound message or
/// a reply; campaign sends and imports do not move a contact up). Contacts who never had a
/// conversation are not listed (see `GET /api/contacts`). The next page's cursor comes in the
/// `X-Next-Cursor` header.
#[utoipa::path(
    get, path = "/api/conversations", operation_id = "listConversations", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    params(ConversationParams),
    responses(
        (status = 200, description = "One page of conversations", body = Vec<ContactOut>, headers(("X-Next-Cursor" = String, description = "cursor of the next page"))),
        (status = 400, description = "An unknown view or status, or a cursor this API did not return", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not read chats", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Query(params): Query<ConversationParams>,
) -> ApiResult<(HeaderMap, axum::Json<Vec<ContactOut>>)> {
    let (out, next) = conversations::list(&state, &me, params).await?;
    let mut headers = HeaderMap::new();
    if let Some(v) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        headers.insert("x-next-cursor", v);
    }
    Ok((headers, axum::Json(out)))
}

/// How many conversations each view holds for the caller.
#[utoipa::path(
    get, path = "/api/conversations/counts", operation_id = "countConversations", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The views' counts", body = ConversationCounts),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not read chats", body = ErrorBody),
    )
)]
pub async fn counts(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<ConversationCounts>> {
    Ok(axum::Json(conversations::counts(&state, &me).await?))
}

/// The colleagues a conversation may be assigned to.
#[utoipa::path(
    get, path = "/api/conversations/assignees", operation_id = "listAssignees", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Active users, by name", body = Vec<Assignee>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not read chats", body = ErrorBody),
    )
)]
pub async fn assignees(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<Assignee>>> {
    Ok(axum::Json(conversations::assignees(&state).await?))
}

/// Sets a conversation's status or assignee. Every replica's inbox shows it at once, and
/// endpoints that asked for `conversation.updated` receive it.
#[utoipa::path(
    patch, path = "/api/conversations/{phone}", operation_id = "updateConversation", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    request_body = ConversationChange,
    responses(
        (status = 200, description = "The contact with its conversation as it is now", body = Envelope<ContactOut>),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not answer chats", body = ErrorBody),
        (status = 404, description = "No such contact or user", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "An unknown status, or nothing to change", body = ErrorBody),
    )
)]
pub async fn change(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(phone): Path<String>,
    Json(body): Json<ConversationChange>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    let out = conversations::change(&state, &me, &phone, body).await?;
    Ok(axum::Json(Envelope::ok(out, "Conversation updated")))
}

/// The private notes in a contact's chat, oldest first.
#[utoipa::path(
    get, path = "/api/contacts/{phone}/notes", operation_id = "listNotes", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    responses(
        (status = 200, description = "The notes", body = Vec<NoteOut>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not read chats", body = ErrorBody),
        (status = 404, description = "No such contact", body = ErrorBody),
        (status = 422, description = "Not a phone number", body = ErrorBody),
    )
)]
pub async fn notes(
    State(state): State<AppState>,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<Vec<NoteOut>>> {
    Ok(axum::Json(
        conversations::notes(&state, &phone, None).await?,
    ))
}

/// Leaves a private note in a contact's chat: colleagues see it, the contact never does.
#[utoipa::path(
    post, path = "/api/contacts/{phone}/notes", operation_id = "addNote", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    request_body = NewNote,
    responses(
        (status = 201, description = "The note", body = Envelope<NoteOut>),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not answer chats", body = ErrorBody),
        (status = 404, description = "No such contact", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "An empty or too long note", body = ErrorBody),
    )
)]
pub async fn add_note(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(phone): Path<String>,
    Json(body): Json<NewNote>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<NoteOut>>)> {
    let out = conversations::add_note(&state, &me, &phone, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(out, "Note added")),
    ))
}

/// The team's canned replies, by shortcut.
#[utoipa::path(
    get, path = "/api/canned-replies", operation_id = "listCannedReplies", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The canned replies", body = Vec<CannedReplyOut>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not answer chats", body = ErrorBody),
    )
)]
pub async fn canned_replies(
    State(state): State<AppState>,
) -> ApiResult<axum::Json<Vec<CannedReplyOut>>> {
    Ok(axum::Json(conversations::canned_replies(&state).await?))
}

/// Adds a canned reply: typing `/shortcut` in a chat offers it.
#[utoipa::path(
    post, path = "/api/canned-replies", operation_id = "createCannedReply", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    request_body = NewCannedReply,
    responses(
        (status = 201, description = "The canned reply", body = Envelope<CannedReplyOut>),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not answer chats", body = ErrorBody),
        (status = 409, description = "The shortcut is taken", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "A bad shortcut or an empty reply", body = ErrorBody),
    )
)]
pub async fn add_canned_reply(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewCannedReply>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<CannedReplyOut>>)> {
    let out = conversations::add_canned_reply(&state, &me, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(out, "Canned reply added")),
    ))
}

/// Deletes a canned reply.
#[utoipa::path(
    delete, path = "/api/canned-replies/{id}", operation_id = "deleteCannedReply", tag = "conversations", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "the canned reply's id")),
    responses(
        (status = 200, description = "Deleted", body = Ack),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not answer chats", body = ErrorBody),
        (status = 404, description = "No such canned reply", body = ErrorBody),
    )
)]
pub async fn delete_canned_reply(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    conversations::delete_canned_reply(&state, &me, id).await?;
    Ok(axum::Json(Ack::new("Canned reply deleted")))
}
