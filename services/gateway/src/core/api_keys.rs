//! API keys for machine clients: admins create (the key is shown once), list and revoke them,
//! from a logged-in session only.

use chrono::{DateTime, Utc};
use heydoc_store::api_keys::{self as store, ApiKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::api_key::{generate, KeyScope};
use crate::auth::AuthUser;
use crate::core::audit;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_NAME: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewKey {
    /// What the key is for, such as `CRM sync`.
    #[schema(example = "CRM sync", min_length = 1, max_length = 100)]
    pub name: String,
    /// `read` (GET only) or `write`.
    #[schema(example = "read", value_type = ScopeName)]
    pub scope: String,
}

/// A key's scope, as the document lists it.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the document's enum; the handler reads the string and says what is wrong
pub enum ScopeName {
    Read,
    Write,
}

/// A key as lists show it: never the key itself, nor its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: i32,
    pub name: String,
    /// `read` or `write`.
    pub scope: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// The username of the admin who created it (the key acts for them).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Within a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyOut {
    pub fn new(k: ApiKey, created_by: String) -> Self {
        Self {
            id: k.id,
            name: k.name,
            scope: k.scope,
            prefix: k.prefix,
            created_by,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key, with the secret itself: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyOut,
    /// Send as `Authorization: Bearer <key>`. Store it now: it cannot be shown again.
    pub key: String,
}

pub async fn create(state: &AppState, me: &AuthUser, body: NewKey) -> ApiResult<CreatedKey> {
    me.require_admin_session()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::validation(format!(
            "name must be 1 to {MAX_NAME} characters"
        )));
    }
    let scope = KeyScope::parse(body.scope.trim()).ok_or_else(|| {
        ApiError::validation(format!(
            "scope {:?} must be \"read\" or \"write\"",
            body.scope
        ))
    })?;
    let new = generate();
    let row = store::NewKey {
        name,
        prefix: new.prefix,
        hash: new.hash,
        scope: scope.as_str(),
        created_by: me.user_id,
    };
    let created = store::insert(&state.db, row, Utc::now()).await?;
    tracing::info!(key_id = created.id, scope = scope.as_str(), by = %me.username, "API key created");
    let detail = serde_json::json!({"key_id": created.id, "scope": scope.as_str()});
    audit::record(
        state,
        me,
        audit::action::API_KEY_CREATE,
        name.to_string(),
        Some(detail),
    )
    .await;
    Ok(CreatedKey {
        info: KeyOut::new(created, me.username.clone()),
        key: new.secret,
    })
}

pub async fn list(state: &AppState, me: &AuthUser) -> ApiResult<Vec<KeyOut>> {
    me.require_admin_session()?;
    let rows = store::all_with_owner(&state.db).await?;
    Ok(rows
        .into_iter()
        .map(|(k, u)| KeyOut::new(k, u.map(|u| u.username).unwrap_or_default()))
        .collect())
}

pub async fn revoke(state: &AppState, me: &AuthUser, id: i32) -> ApiResult<()> {
    me.require_admin_session()?;
    if store::revoke(&state.db, id, Utc::now()).await? {
        tracing::info!(key_id = id, by = %me.username, "API key revoked");
        audit::record(
            state,
            me,
            audit::action::API_KEY_REVOKE,
            format!("key {id}"),
            None,
        )
        .await;
    }
    Ok(())
}
