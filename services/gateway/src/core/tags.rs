//! Tags: the rules for names and colours, and the shapes the API shows.

use chrono::Utc;
use heydoc_domain::validate;
use heydoc_store::tags::{self as store, Tag};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A tag as the seed shows it inside a contact: `{"id":1,"name":"Family","color":"#ff4444"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagOut {
    pub id: i32,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
}

impl From<Tag> for TagOut {
    fn from(t: Tag) -> Self {
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
    #[schema(example = "#ff4444", pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: Option<String>,
}

pub async fn list(state: &AppState) -> ApiResult<Vec<TagWithCount>> {
    Ok(store::all_with_counts(&state.db)
        .await?
        .into_iter()
        .map(|(t, contact_count)| TagWithCount {
            contact_count,
            id: t.id,
            name: t.name,
            color: t.color,
        })
        .collect())
}

pub async fn create(state: &AppState, body: NewTag) -> ApiResult<TagOut> {
    let name = body.name.trim().to_string();
    validate::tag_name(&name)?;
    let color = body.color.unwrap_or_else(|| store::DEFAULT_COLOR.into());
    validate::color(&color)?;
    if store::count(&state.db).await? >= store::MAX_TAGS {
        return Err(ApiError::Conflict(format!(
            "HeyDoc holds at most {} tags: delete some first",
            store::MAX_TAGS
        )));
    }
    ensure_name_free(state, &name, None).await?;
    let created = store::create(&state.db, &name, &color.to_ascii_lowercase(), Utc::now()).await?;
    Ok(created.into())
}

pub async fn update(state: &AppState, id: i32, body: TagChanges) -> ApiResult<TagOut> {
    store::find(&state.db, id).await?;
    let name = match body.name {
        Some(name) => {
            let name = name.trim().to_string();
            validate::tag_name(&name)?;
            ensure_name_free(state, &name, Some(id)).await?;
            Some(name)
        }
        None => None,
    };
    if let Some(color) = &body.color {
        validate::color(color)?;
    }
    let color = body.color.map(|c| c.to_ascii_lowercase());
    Ok(store::update(&state.db, id, name, color).await?.into())
}

pub async fn delete(state: &AppState, id: i32) -> ApiResult<()> {
    Ok(store::delete(&state.db, id).await?)
}

/// Checks that every id names a tag; 404 naming the ones that do not.
pub async fn ensure_exist(db: &impl heydoc_store::Conn, ids: &[i32]) -> ApiResult<()> {
    let missing = store::missing(db, ids).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let missing: Vec<String> = missing.iter().map(i32::to_string).collect();
    // A reference to something that does not exist: 404, as for the tag in a path.
    Err(ApiError::UnknownReference(heydoc_domain::Invalid::at(
        "tag_ids",
        heydoc_domain::codes::UNKNOWN_TAG,
        format!("unknown tag id(s): {}", missing.join(", ")),
    )))
}

async fn ensure_name_free(state: &AppState, name: &str, except: Option<i32>) -> ApiResult<()> {
    if store::name_taken(&state.db, name, except).await? {
        return Err(ApiError::Conflict(format!("a tag named {name:?} exists")));
    }
    Ok(())
}
