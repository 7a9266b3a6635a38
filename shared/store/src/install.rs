//! What one install shares across its replicas and keeps across restarts without anyone
//! configuring it (`install_secrets`): the session-signing secret when `JWT_SECRET` is not
//! set, and the first admin's setup token, kept only as its SHA-256.

use chrono::{DateTime, Utc};
use heydoc_entity::install_secret;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::Result;

/// The generated session-signing secret.
pub const JWT_SECRET: &str = "jwt_secret";
/// The SHA-256 (hex) of the first admin's setup token.
pub const SETUP_TOKEN_SHA256: &str = "setup_token_sha256";

/// The value named `name`, if any.
pub async fn get(db: &impl ConnectionTrait, name: &str) -> Result<Option<String>> {
    Ok(install_secret::Entity::find_by_id(name.to_string())
        .one(db)
        .await?
        .map(|s| s.value))
}

/// Keeps `value` under `name` unless one is there already; returns the value that is kept
/// (this one, or the one another replica kept first) and whether it is this one.
pub async fn keep_first(
    db: &impl ConnectionTrait,
    name: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<(String, bool)> {
    let inserted = install_secret::Entity::insert(install_secret::ActiveModel {
        name: Set(name.to_string()),
        value: Set(value.to_string()),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(install_secret::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(db)
    .await?;
    let ours = matches!(inserted, sea_orm::TryInsertResult::Inserted(_));
    let kept = get(db, name)
        .await?
        .ok_or_else(|| crate::StoreError::not_found(format!("install secret {name}")))?;
    Ok((kept, ours))
}

/// Sets `name` to `value`, replacing what was there.
pub async fn replace(
    db: &impl ConnectionTrait,
    name: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    install_secret::Entity::insert(install_secret::ActiveModel {
        name: Set(name.to_string()),
        value: Set(value.to_string()),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(install_secret::Column::Name)
            .update_columns([
                install_secret::Column::Value,
                install_secret::Column::CreatedAt,
            ])
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

/// Forgets `name` (a setup token once the first admin exists).
pub async fn forget(db: &impl ConnectionTrait, name: &str) -> Result<()> {
    install_secret::Entity::delete_by_id(name.to_string())
        .exec(db)
        .await?;
    Ok(())
}
