//! API keys for machine clients: admins create (the key is shown once), list and revoke them,
//! from a logged-in session only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use chrono::{DateTime, Utc};
use heydoc_store::api_keys::{self as store, ApiKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::api_key::{generate, KeyScope};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

const MAX_NAME: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewKey {
    /// What the key is for, such as `CRM sync`.
    #[schema(example = "CRM sync", min_length = 1, max_length = 100)]
    pub name: String,
    /// `read` (GET only) or `write`.
    #[schema(example = "read")]
    pub scope: String,
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
    fn new(k: ApiKey, created_by: String) -> Self {
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

fn require_key_admin(me: &AuthUser) -> ApiResult<()> {
    me.require_session()?;
    me.require_admin()
}

/// Creates an API key (admins, from a session). The answer holds the key, once.
#[utoipa::path(
    post, path = "/api/api-keys", tag = "auth", security(("bearer" = []), ("cookie" = [])),
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
    require_key_admin(&me)?;
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
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(
            CreatedKey {
                info: KeyOut::new(created, me.username),
                key: new.secret,
            },
            "API key created: store it now, it is not shown again",
        )),
    ))
}

/// Every API key, newest first, revoked ones included (admins, from a session).
#[utoipa::path(
    get, path = "/api/api-keys", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<KeyOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<Vec<KeyOut>>> {
    require_key_admin(&me)?;
    let rows = store::all_with_owner(&state.db).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(k, u)| KeyOut::new(k, u.map(|u| u.username).unwrap_or_default()))
            .collect(),
    ))
}

/// Revokes a key: it gets 401 from the next request on, on every replica.
#[utoipa::path(
    delete, path = "/api/api-keys/{id}", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "API key id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    require_key_admin(&me)?;
    if store::revoke(&state.db, id, Utc::now()).await? {
        tracing::info!(key_id = id, by = %me.username, "API key revoked");
    }
    Ok(axum::Json(Ack::new("API key revoked")))
}
