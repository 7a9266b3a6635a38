//! API keys for machine clients: admins create (the key is shown once), list and revoke them,
//! from a logged-in session only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::api_keys::{self as keys, CreatedKey, KeyOut, NewKey};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

/// Creates an API key (admins, from a session). The answer holds the key, once.
#[utoipa::path(
    post, path = "/api/api-keys", operation_id = "createApiKey", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body = NewKey,
    responses(
        (status = 201, body = Envelope<CreatedKey>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewKey>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<CreatedKey>>)> {
    let created = keys::create(&state, &me, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(
            created,
            "API key created: store it now, it is not shown again",
        )),
    ))
}

/// Every API key, newest first, revoked ones included (admins, from a session).
#[utoipa::path(
    get, path = "/api/api-keys", operation_id = "listApiKeys", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<KeyOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<Vec<KeyOut>>> {
    Ok(axum::Json(keys::list(&state, &me).await?))
}

/// Revokes a key: it gets 401 from the next request on, on every replica.
#[utoipa::path(
    delete, path = "/api/api-keys/{id}", operation_id = "revokeApiKey", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "API key id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    keys::revoke(&state, &me, id).await?;
    Ok(axum::Json(Ack::new("API key revoked")))
}
