//! The business numbers HeyDoc sends from (admins).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::numbers::{self, NewNumber, NumberChanges, NumberOut};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::Envelope;
use crate::state::AppState;

/// Every business number, the default first (admins).
#[utoipa::path(
    get, path = "/api/numbers", operation_id = "listNumbers", tag = "numbers", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<NumberOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<Vec<NumberOut>>> {
    Ok(axum::Json(numbers::list(&state, &me).await?))
}

/// Registers a business number to send from (admins). Senders start sending from it within
/// seconds.
#[utoipa::path(
    post, path = "/api/numbers", operation_id = "createNumber", tag = "numbers", security(("bearer" = []), ("cookie" = [])),
    request_body = NewNumber,
    responses(
        (status = 201, body = Envelope<NumberOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewNumber>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<NumberOut>>)> {
    let created = numbers::create(&state, &me, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(created, "Business number registered")),
    ))
}

/// Changes a business number (admins): its rate, display number, account, token, or state.
#[utoipa::path(
    put, path = "/api/numbers/{phone_number_id}", operation_id = "updateNumber", tag = "numbers", security(("bearer" = []), ("cookie" = [])),
    params(("phone_number_id" = String, Path, description = "Meta's phone number id")),
    request_body = NumberChanges,
    responses(
        (status = 200, body = Envelope<NumberOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(phone_number_id): Path<String>,
    Json(body): Json<NumberChanges>,
) -> ApiResult<axum::Json<Envelope<NumberOut>>> {
    let updated = numbers::update(&state, &me, &phone_number_id, body).await?;
    Ok(axum::Json(Envelope::ok(updated, "Business number updated")))
}
