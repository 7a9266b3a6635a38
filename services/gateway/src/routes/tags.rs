//! Tags: named, coloured labels on contacts, and audiences for campaigns.

use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::AuthUser;
use crate::core::audit;
use crate::core::tags::{self, NewTag, TagChanges, TagOut, TagWithCount};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;
use axum::Extension;

/// Every tag, by name.
#[utoipa::path(
    get, path = "/api/tags", operation_id = "listTags", tag = "tags", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<TagWithCount>), (status = 401, body = ErrorBody))
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<TagWithCount>>> {
    Ok(axum::Json(tags::list(&state).await?))
}

/// Creates a tag; names are unique regardless of case.
#[utoipa::path(
    post, path = "/api/tags", operation_id = "createTag", tag = "tags", security(("bearer" = []), ("cookie" = [])),
    request_body = NewTag,
    responses(
        (status = 201, body = Envelope<TagOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewTag>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<TagOut>>)> {
    let created = tags::create(&state, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(created, "Tag created")),
    ))
}

/// Renames or recolours a tag.
#[utoipa::path(
    put, path = "/api/tags/{id}", operation_id = "updateTag", tag = "tags", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "tag id")),
    request_body = TagChanges,
    responses(
        (status = 200, body = Envelope<TagOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Json(body): Json<TagChanges>,
) -> ApiResult<axum::Json<Envelope<TagOut>>> {
    let updated = tags::update(&state, id, body).await?;
    Ok(axum::Json(Envelope::ok(updated, "Tag updated")))
}

/// Deletes a tag and takes it off every contact.
#[utoipa::path(
    delete, path = "/api/tags/{id}", operation_id = "deleteTag", tag = "tags", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "tag id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    tags::delete(&state, id).await?;
    audit::record(&state, &me, audit::action::TAG_DELETE, id.to_string(), None).await;
    Ok(axum::Json(Ack::new("Tag deleted")))
}
