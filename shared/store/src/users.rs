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

/// Makes the caller's transaction the only one creating users or changing who may act
/// (PostgreSQL), so two first registrations cannot both become admin, and two admins cannot
/// take each other away at once.
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

/// Whether `user` may act at all: neither disabled nor deleted.
pub fn is_active(user: &User) -> bool {
    user.disabled_at.is_none() && user.deleted_at.is_none()
}

/// How many active admins there are (the last one cannot be disabled, demoted or deleted).
pub async fn active_admins(db: &impl Conn) -> Result<u64> {
    Ok(user::Entity::find()
        .filter(user::Column::Role.eq("admin"))
        .filter(user::Column::DisabledAt.is_null())
        .filter(user::Column::DeletedAt.is_null())
        .count(db)
        .await?)
}

/// The user with this id, or `NotFound`.
pub async fn find(db: &impl Conn, id: i32) -> Result<User> {
    get(db, id)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("no user {id}")))
}

/// Disables (`Some(now)`) or enables (`None`) an account.
/// Disables (`Some`) or enables a user; a disabled user's conversations become unassigned.
pub async fn set_disabled(db: &impl Conn, id: i32, at: Option<DateTime<Utc>>) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::DisabledAt, Expr::value(at))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    if at.is_some() {
        crate::conversations::unassign_all_of(db, id).await?;
    }
    Ok(())
}

pub async fn set_role(db: &impl Conn, id: i32, role: &str) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::Role, Expr::value(role))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_password_hash(db: &impl Conn, id: i32, hash: String) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Marks an account deleted. The row stays, so what it did stays attributed.
pub async fn mark_deleted(db: &impl Conn, id: i32, now: DateTime<Utc>) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::DeletedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    crate::conversations::unassign_all_of(db, id).await?;
    Ok(())
}

/// A login to record.
#[derive(Debug)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i32,
    pub expires_at: DateTime<Utc>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn open_session(db: &impl Conn, new: NewSession<'_>, now: DateTime<Utc>) -> Result<()> {
    session::Entity::insert(session::ActiveModel {
        id: Set(new.id.to_string()),
        user_id: Set(new.user_id),
        created_at: Set(now),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
        address: Set(new.address),
        user_agent: Set(new.user_agent.map(|ua| ua.chars().take(200).collect())),
    })
    .exec(db)
    .await?;
    Ok(())
}

/// A user's live sessions (neither revoked nor expired), newest first.
pub async fn live_sessions_of(
    db: &impl Conn,
    user_id: i32,
    now: DateTime<Utc>,
) -> Result<Vec<Session>> {
    Ok(session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .order_by_desc(session::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Ends every live session of `user_id` but `keep` (the caller's own, after a password
/// change); returns how many ended.
pub async fn revoke_sessions_of(
    db: &impl Conn,
    user_id: i32,
    keep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        update = update.filter(session::Column::Id.ne(keep));
    }
    Ok(update.exec(db).await?.rows_affected)
}

pub async fn revoke_session(db: &impl Conn, id: &str, now: DateTime<Utc>) -> Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// A session that is neither revoked nor expired, with its user, when that user is active.
pub async fn live_session(
    db: &impl Conn,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Session, User)>> {
    let found = session::Entity::find_by_id(id.to_string())
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .find_also_related(user::Entity)
        .one(db)
        .await?;
    Ok(match found {
        Some((session, Some(user))) if is_active(&user) => Some((session, user)),
        _ => None,
    })
}
