//! `POST /api/send_message`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::messages::MessageOut;
use crate::core::send::{self, SendMessage, Sent};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::routes::Envelope;
use crate::state::AppState;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Queues a text message to one contact (created when new). With an `Idempotency-Key` header,
/// repeating the same request returns the first one's message instead of sending again.
#[utoipa::path(
    post, path = "/api/send_message", operation_id = "sendMessage", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries of this request safe (1 to 255 visible ASCII characters)", pattern = r"^[!-~](?:[\t -~]{0,253}[!-~])?$")),
    request_body = SendMessage,
    responses(
        (status = 200, body = Envelope<MessageOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "The business number in from is not registered", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn send_message(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    headers: HeaderMap,
    Json(body): Json<SendMessage>,
) -> ApiResult<axum::Json<Envelope<MessageOut>>> {
    // Checked in its turn: after the body's phone and text (the order clients see errors in).
    let key = idempotency_key(&headers);
    let (out, message) = match send::send_message(&state, &me, key, body).await? {
        Sent::Queued(m) => (m, "Message queued for sending"),
        Sent::Repeated(m) => (m, "Message already queued for this Idempotency-Key"),
    };
    Ok(axum::Json(Envelope::ok(out, message)))
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
