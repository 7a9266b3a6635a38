//! API keys: only their SHA-256 is stored.

use chrono::{DateTime, Utc};
use heydoc_entity::{api_key, user};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use crate::users::User;
use crate::{Conn, Result, StoreError};

pub use api_key::Model as ApiKey;

/// A key to save: its name, shown prefix, hash and scope, and the admin it acts for.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub name: &'a str,
    pub prefix: String,
    pub hash: String,
    pub scope: &'a str,
    pub created_by: i32,
}

pub async fn insert(db: &impl Conn, new: NewKey<'_>, now: DateTime<Utc>) -> Result<ApiKey> {
    let row = api_key::ActiveModel {
        name: Set(new.name.to_string()),
        prefix: Set(new.prefix),
        key_hash: Set(new.hash),
        scope: Set(new.scope.to_string()),
        created_by: Set(new.created_by),
        created_at: Set(now),
        ..Default::default()
    };
    Ok(api_key::Entity::insert(row).exec_with_returning(db).await?)
}

/// Every key with the user it acts for, newest first.
pub async fn all_with_owner(db: &impl Conn) -> Result<Vec<(ApiKey, Option<User>)>> {
    Ok(api_key::Entity::find()
        .find_also_related(user::Entity)
        .order_by_desc(api_key::Column::Id)
        .all(db)
        .await?)
}

/// Revokes a key (once); `NotFound` when there is none.
pub async fn revoke(db: &impl Conn, id: i32, now: DateTime<Utc>) -> Result<bool> {
    let found = api_key::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("no API key {id}")))?;
    if found.revoked_at.is_some() {
        return Ok(false);
    }
    api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(true)
}

/// The live (not revoked) key with this hash and the user it acts for.
pub async fn live_by_hash(db: &impl Conn, hash: &str) -> Result<Option<(ApiKey, User)>> {
    let found = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash))
        .filter(api_key::Column::RevokedAt.is_null())
        .find_also_related(user::Entity)
        .one(db)
        .await?;
    // A key acts for the person who made it: when they are disabled or deleted, so is it.
    Ok(match found {
        Some((key, Some(owner))) if crate::users::is_active(&owner) => Some((key, owner)),
        _ => None,
    })
}

/// Revokes every key `user_id` made (their account was deleted); returns how many.
pub async fn revoke_all_of(db: &impl Conn, user_id: i32, now: DateTime<Utc>) -> Result<u64> {
    Ok(api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::CreatedBy.eq(user_id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// Records a use unless one was recorded after `stale`.
pub async fn stamp_use(
    db: &impl Conn,
    id: i32,
    now: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> Result<()> {
    api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(id))
        .filter(
            Condition::any()
                .add(api_key::Column::LastUsedAt.is_null())
                .add(api_key::Column::LastUsedAt.lt(stale)),
        )
        .exec(db)
        .await?;
    Ok(())
}
