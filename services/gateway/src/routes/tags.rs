//! Tags: named, coloured labels on contacts, and audiences for campaigns.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use heydoc_domain::validate;
use heydoc_entity::{contact_tag, tag};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

/// A tag as the seed shows it inside a contact: `{"id":1,"name":"Family","color":"#ff4444"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagOut {
    pub id: i32,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
}

impl From<tag::Model> for TagOut {
    fn from(t: tag::Model) -> Self {
        Self {
            id: t.id,
            name: t.name,
            color: t.color,
        }
    }
}

/// A tag in the tag list, with how many contacts carry it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagWithCount {
    pub id: i32,
    pub name: String,
    pub color: String,
    pub contact_count: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTag {
    #[schema(example = "Family", min_length = 1, max_length = 64)]
    pub name: String,
    /// `#rrggbb`; a neutral grey when omitted.
    #[serde(default)]
    #[schema(example = "#ff4444", pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TagChanges {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
}

const DEFAULT_COLOR: &str = "#888888";

/// Every tag, by name.
#[utoipa::path(
    get, path = "/api/tags", tag = "tags", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<TagWithCount>), (status = 401, body = ErrorBody))
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<TagWithCount>>> {
    let tags = tag::Entity::find()
        .order_by_asc(tag::Column::Name)
        .all(&state.db)
        .await?;
    let counts: Vec<(i32, i64)> = contact_tag::Entity::find()
        .select_only()
        .column(contact_tag::Column::TagId)
        .column_as(contact_tag::Column::ContactId.count(), "n")
        .group_by(contact_tag::Column::TagId)
        .into_tuple()
        .all(&state.db)
        .await?;
    let counts: std::collections::HashMap<i32, i64> = counts.into_iter().collect();
    Ok(axum::Json(
        tags.into_iter()
            .map(|t| TagWithCount {
                contact_count: counts.get(&t.id).copied().unwrap_or(0),
                id: t.id,
                name: t.name,
                color: t.color,
            })
            .collect(),
    ))
}

/// Creates a tag; names are unique regardless of case.
#[utoipa::path(
    post, path = "/api/tags", tag = "tags", security(("bearer" = []), ("cookie" = [])),
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
    let name = body.name.trim().to_string();
    validate::tag_name(&name)?;
    let color = body.color.unwrap_or_else(|| DEFAULT_COLOR.into());
    validate::color(&color)?;
    ensure_name_free(&state, &name, None).await?;
    let created = tag::Entity::insert(tag::ActiveModel {
        name: Set(name),
        color: Set(color.to_ascii_lowercase()),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec_with_returning(&state.db)
    .await
    .map_err(conflict_on_unique)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(created.into(), "Tag created")),
    ))
}

/// Renames or recolours a tag.
#[utoipa::path(
    put, path = "/api/tags/{id}", tag = "tags", security(("bearer" = []), ("cookie" = [])),
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
    let existing = find(&state, id).await?;
    let mut model: tag::ActiveModel = existing.into();
    if let Some(name) = body.name {
        let name = name.trim().to_string();
        validate::tag_name(&name)?;
        ensure_name_free(&state, &name, Some(id)).await?;
        model.name = Set(name);
    }
    if let Some(color) = body.color {
        validate::color(&color)?;
        model.color = Set(color.to_ascii_lowercase());
    }
    let updated = tag::Entity::update(model)
        .exec(&state.db)
        .await
        .map_err(conflict_on_unique)?;
    Ok(axum::Json(Envelope::ok(updated.into(), "Tag updated")))
}

/// Deletes a tag and takes it off every contact.
#[utoipa::path(
    delete, path = "/api/tags/{id}", tag = "tags", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "tag id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    let result = tag::Entity::delete_by_id(id).exec(&state.db).await?;
    if result.rows_affected == 0 {
        return Err(ApiError::not_found(format!("tag {id} not found")));
    }
    Ok(axum::Json(Ack::new("Tag deleted")))
}

pub async fn find(state: &AppState, id: i32) -> ApiResult<tag::Model> {
    tag::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tag {id} not found")))
}

/// Checks that every id names a tag; 422 naming the ones that do not.
pub async fn ensure_exist(db: &impl sea_orm::ConnectionTrait, ids: &[i32]) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: Vec<i32> = tag::Entity::find()
        .select_only()
        .column(tag::Column::Id)
        .filter(tag::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !found.contains(id))
        .map(i32::to_string)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "unknown tag id(s): {}",
            missing.join(", ")
        )))
    }
}

async fn ensure_name_free(state: &AppState, name: &str, except: Option<i32>) -> ApiResult<()> {
    let mut q = tag::Entity::find()
        .filter(Expr::expr(Func::lower(Expr::col(tag::Column::Name))).eq(name.to_lowercase()));
    if let Some(id) = except {
        q = q.filter(tag::Column::Id.ne(id));
    }
    if q.one(&state.db).await?.is_some() {
        return Err(ApiError::Conflict(format!("a tag named {name:?} exists")));
    }
    Ok(())
}

fn conflict_on_unique(e: sea_orm::DbErr) -> ApiError {
    match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            ApiError::Conflict("a tag with that name exists".into())
        }
        _ => e.into(),
    }
}
