//! A contact's chat: the messages, newest first, and marking them read.

use axum::extract::State;
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::messages::{self, ChatParams, MessageOut, ReadOut};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::routes::Envelope;
use crate::state::AppState;

/// The conversation with one contact, newest first.
#[utoipa::path(
    get, path = "/api/messages/{phone}", operation_id = "listMessages", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$"), ChatParams),
    responses(
        (status = 200, body = Vec<MessageOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Path(phone): Path<String>,
    Query(params): Query<ChatParams>,
) -> ApiResult<axum::Json<Vec<MessageOut>>> {
    Ok(axum::Json(messages::list(&state, &phone, params).await?))
}

/// Marks the contact's incoming messages read and clears its unread count.
#[utoipa::path(
    post, path = "/api/messages/{phone}/read", operation_id = "markMessagesRead", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    responses((status = 200, body = Envelope<ReadOut>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn mark_read(
    State(state): State<AppState>,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<Envelope<ReadOut>>> {
    let out = messages::mark_read(&state, &phone).await?;
    Ok(axum::Json(Envelope::ok(out, "Messages marked as read")))
}

/// Shows the patient that the business is typing a reply (WhatsApp's typing indicator, up to
/// 25 s or until the reply arrives), and marks their latest message read. Colleagues with the
/// chat open are told who is writing (a `replying` event on `/api/events`).
#[utoipa::path(
    post, path = "/api/messages/{phone}/typing", operation_id = "showTyping", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    responses((status = 202, body = crate::routes::Ack), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn typing(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(phone): Path<String>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<crate::routes::Ack>)> {
    messages::typing(&state, &me, &phone).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(crate::routes::Ack::new("Typing indicator sent")),
    ))
}
