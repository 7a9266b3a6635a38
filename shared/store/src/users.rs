//! Staff accounts and their sessions.

use chrono::{DateTime, Utc};
use heydoc_entity::{session, user};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

use crate::{Conn, Result, StoreError};

pub use session::Model as Session;
pub use user::Model as User;

pub async fn count(db: &impl Conn) -> Result<u64> {
    Ok(user::Entity::find().count(db).await?)
}

/// Makes the caller's transaction the only one creating users (PostgreSQL), so two first
/// registrations at once cannot both become admin.
pub async fn lock_for_creation(tx: &impl Conn) -> Result<()> {
    if tx.get_database_backend() == DbBackend::Postgres {
        tx.execute_unprepared("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    Ok(())
}

/// The user with this name, regardless of case.
pub async fn by_name(db: &impl Conn, username: &str) -> Result<Option<User>> {
    Ok(user::Entity::find()
        .filter(
            Expr::expr(Func::lower(Expr::col(user::Column::Username))).eq(username.to_lowercase()),
        )
        .one(db)
        .await?)
}

pub async fn get(db: &impl Conn, id: i32) -> Result<Option<User>> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

pub async fn all(db: &impl Conn) -> Result<Vec<User>> {
    Ok(user::Entity::find()
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?)
}

/// A new user; `Conflict` when the name is taken.
pub async fn insert(
    db: &impl Conn,
    username: &str,
    password_hash: String,
    role: &str,
    now: DateTime<Utc>,
) -> Result<User> {
    let model = user::ActiveModel {
        username: Set(username.to_string()),
        password_hash: Set(password_hash),
        role: Set(role.to_string()),
        created_at: Set(now),
        ..Default::default()
    };
    user::Entity::insert(model)
        .exec_with_returning(db)
        .await
        .map_err(|e| StoreError::unique_or_db(e, format!("username {username:?} is taken")))
}

pub async fn open_session(
    db: &impl Conn,
    id: &str,
    user_id: i32,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    session::Entity::insert(session::ActiveModel {
        id: Set(id.to_string()),
        user_id: Set(user_id),
        created_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
    })
    .exec(db)
    .await?;
    Ok(())
}

pub async fn revoke_session(db: &impl Conn, id: &str, now: DateTime<Utc>) -> Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// A session that is neither revoked nor expired, with its user.
pub async fn live_session(
    db: &impl Conn,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Session, Option<User>)>> {
    Ok(session::Entity::find_by_id(id.to_string())
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .find_also_related(user::Entity)
        .one(db)
        .await?)
}
