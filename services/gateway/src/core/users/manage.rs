//! Managing accounts once they exist: roles, disabling and deleting (never the last active
//! admin), passwords, and sessions.

use chrono::Utc;
use heydoc_domain::{validate, Role};
use heydoc_store::users;
use serde_json::json;

use crate::auth::AuthUser;
use crate::core::audit::{self, action};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

use super::shapes::*;

/// An account that still exists (not deleted), or 404.
async fn existing(state: &AppState, id: i32) -> ApiResult<users::User> {
    let user = users::find(&state.db, id).await?;
    if user.deleted_at.is_some() {
        return Err(ApiError::not_found(format!("user {id} was deleted")));
    }
    Ok(user)
}

/// Whether `user` is an active admin.
fn active_admin(user: &users::User) -> bool {
    users::is_active(user) && Role::parse_lenient(&user.role) == Some(Role::Admin)
}

/// Refuses a change that would leave the install without an active admin: `target` is one
/// now and will not be after. Inside the change's transaction, after `lock_for_creation`, so
/// two admins taking each other away at once cannot both pass.
async fn keep_an_admin(
    tx: &impl heydoc_store::Conn,
    target: &users::User,
    stays: bool,
) -> ApiResult<()> {
    if active_admin(target) && !stays && users::active_admins(tx).await? <= 1 {
        return Err(ApiError::Conflict(
            "this is the last active admin: make someone else an admin first".into(),
        ));
    }
    Ok(())
}

/// Changes an account's role or disables/enables it (admins only; not their own), all of it
/// or nothing.
pub async fn update(
    state: &AppState,
    me: &AuthUser,
    id: i32,
    body: UserChanges,
) -> ApiResult<UserOut> {
    me.require_admin_session()?;
    let target = existing(state, id).await?;
    if body.role.is_none() && body.disabled.is_none() {
        // Nothing to change: the account as it is.
        return Ok(target.into());
    }
    if id == me.user_id {
        return Err(ApiError::Conflict(
            "you cannot change your own role or disable yourself: ask another admin".into(),
        ));
    }
    let now = Utc::now();
    let role = body.role.map(Role::from);
    let txn = heydoc_store::begin(&state.db).await?;
    users::lock_for_creation(&txn).await?;
    let target = users::find(&txn, id).await?;
    let disables = body.disabled == Some(true) && target.disabled_at.is_none();
    let enables = body.disabled == Some(false) && target.disabled_at.is_some();
    let stays_admin = role.map_or(
        Role::parse_lenient(&target.role) == Some(Role::Admin),
        |r| r == Role::Admin,
    ) && (users::is_active(&target) && !disables);
    keep_an_admin(&txn, &target, stays_admin).await?;
    if let Some(role) = role {
        users::set_role(&txn, id, role.as_str()).await?;
    }
    let mut ended = 0;
    if disables {
        users::set_disabled(&txn, id, Some(now)).await?;
        ended = users::revoke_sessions_of(&txn, id, None, now).await?;
    } else if enables {
        users::set_disabled(&txn, id, None).await?;
    }
    heydoc_store::commit(txn).await?;
    // Every replica forgets what it trusted about this account (its role included).
    state.access_changed().await;
    if let Some(role) = role {
        let detail = json!({"role": role.as_str()});
        audit::record(
            state,
            me,
            action::USER_ROLE,
            target.username.clone(),
            Some(detail),
        )
        .await;
    }
    if disables {
        let detail = json!({"sessions_ended": ended});
        audit::record(
            state,
            me,
            action::USER_DISABLE,
            target.username.clone(),
            Some(detail),
        )
        .await;
    } else if enables {
        audit::record(
            state,
            me,
            action::USER_ENABLE,
            target.username.clone(),
            None,
        )
        .await;
    }
    Ok(users::find(&state.db, id).await?.into())
}

/// Deletes an account (admins only; not their own): it can never sign in again, its sessions
/// end and its API keys are revoked; the row stays, so what it did stays attributed.
pub async fn delete(state: &AppState, me: &AuthUser, id: i32) -> ApiResult<()> {
    me.require_admin_session()?;
    existing(state, id).await?;
    if id == me.user_id {
        return Err(ApiError::Conflict(
            "you cannot delete yourself: ask another admin".into(),
        ));
    }
    let now = Utc::now();
    let txn = heydoc_store::begin(&state.db).await?;
    users::lock_for_creation(&txn).await?;
    let target = users::find(&txn, id).await?;
    keep_an_admin(&txn, &target, false).await?;
    users::mark_deleted(&txn, id, now).await?;
    let sessions = users::revoke_sessions_of(&txn, id, None, now).await?;
    let keys = heydoc_store::api_keys::revoke_all_of(&txn, id, now).await?;
    heydoc_store::commit(txn).await?;
    state.access_changed().await;
    audit::record(
        state,
        me,
        action::USER_DELETE,
        target.username,
        Some(json!({"sessions_ended": sessions, "api_keys_revoked": keys})),
    )
    .await;
    Ok(())
}

/// Changes the caller's own password after checking the current one; their other sessions end.
pub async fn change_password(
    state: &AppState,
    me: &AuthUser,
    body: PasswordChange,
) -> ApiResult<()> {
    me.require_session()?;
    validate::password(&body.new_password).map_err(|e| e.in_field("new_password"))?;
    let user = existing(state, me.user_id).await?;
    let address = me
        .address
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    // Counted like a login: a stolen session cannot guess the password at leisure.
    state.login_limiter.attempt(&user.username, address)?;
    if !state
        .hasher
        .verify(body.current_password, Some(user.password_hash.clone()))
        .await?
    {
        return Err(ApiError::validation(
            "current_password is not your current password",
        ));
    }
    state.login_limiter.succeeded(&user.username, address);
    let hash = state.hasher.hash(body.new_password).await?;
    users::set_password_hash(&state.db, me.user_id, hash).await?;
    let now = Utc::now();
    let ended = users::revoke_sessions_of(&state.db, me.user_id, Some(&me.session_id), now).await?;
    // Keys made with the old password (perhaps by whoever knew it) stop too.
    let keys = heydoc_store::api_keys::revoke_all_of(&state.db, me.user_id, now).await?;
    state.access_changed().await;
    audit::record(
        state,
        me,
        action::PASSWORD_CHANGE,
        user.username,
        Some(json!({"sessions_ended": ended, "api_keys_revoked": keys})),
    )
    .await;
    Ok(())
}

/// Sets someone's password (admins only); all their sessions end.
pub async fn reset_password(
    state: &AppState,
    me: &AuthUser,
    id: i32,
    body: PasswordReset,
) -> ApiResult<()> {
    me.require_admin_session()?;
    if id == me.user_id {
        return Err(ApiError::Conflict(
            "your own password changes with PUT /api/me/password, which asks for the current one"
                .into(),
        ));
    }
    validate::password(&body.password)?;
    let target = existing(state, id).await?;
    let hash = state.hasher.hash(body.password).await?;
    users::set_password_hash(&state.db, id, hash).await?;
    let now = Utc::now();
    let ended = users::revoke_sessions_of(&state.db, id, None, now).await?;
    let keys = heydoc_store::api_keys::revoke_all_of(&state.db, id, now).await?;
    state.access_changed().await;
    audit::record(
        state,
        me,
        action::PASSWORD_RESET,
        target.username,
        Some(json!({"sessions_ended": ended, "api_keys_revoked": keys})),
    )
    .await;
    Ok(())
}

/// Whose sessions the caller may see and end: their own, or anyone's for an admin.
fn may_manage_sessions(me: &AuthUser, id: i32) -> ApiResult<()> {
    me.require_session()?;
    if id == me.user_id {
        Ok(())
    } else {
        me.require_admin()
    }
}

pub async fn sessions(state: &AppState, me: &AuthUser, id: i32) -> ApiResult<Vec<SessionOut>> {
    may_manage_sessions(me, id)?;
    existing(state, id).await?;
    Ok(users::live_sessions_of(&state.db, id, Utc::now())
        .await?
        .into_iter()
        .map(|s| SessionOut {
            current: s.id == me.session_id,
            id: s.id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            address: s.address,
            user_agent: s.user_agent,
        })
        .collect())
}

/// Signs a user out everywhere (their own, or anyone's for an admin): every session ends and
/// every API key they made is revoked, so nothing that acts for them is left. Returns how many
/// sessions ended.
pub async fn revoke_sessions(state: &AppState, me: &AuthUser, id: i32) -> ApiResult<u64> {
    may_manage_sessions(me, id)?;
    let target = existing(state, id).await?;
    let now = Utc::now();
    let ended = users::revoke_sessions_of(&state.db, id, None, now).await?;
    let keys = heydoc_store::api_keys::revoke_all_of(&state.db, id, now).await?;
    state.access_changed().await;
    audit::record(
        state,
        me,
        action::LOGOUT_EVERYWHERE,
        target.username,
        Some(json!({"sessions_ended": ended, "api_keys_revoked": keys})),
    )
    .await;
    Ok(ended)
}
