//! Staff accounts: registration, login and logout, and letting people go. An admin can
//! disable (sessions and keys stop at once, on every replica), delete (the row stays, so what
//! they did stays attributed), change roles, reset a password, list and end sessions; everyone
//! can change their own password (their other sessions end) and sign out everywhere.
//!
//! Nothing an anonymous visitor sends costs a password hash unless it could succeed: whether
//! registration is open, and whether the login limit is spent, is decided first, and hashes run
//! a few at a time (`auth::password::Hasher`).
//!
//! Here: registration, login, logout, the list and "me"; `manage`: what is done to an account
//! that exists; `shapes`: what the API takes and returns.

mod manage;
mod shapes;

pub use manage::*;
pub use shapes::*;

use chrono::{Duration, Utc};
use heydoc_domain::{validate, Role};
use heydoc_store::users::{self, NewSession};
use serde_json::json;

use crate::auth::client::Client;
use crate::auth::session::authenticate;
use crate::auth::AuthUser;
use crate::core::audit::{self, action};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Creates an account. The first account is an admin (with the setup token, unless it is
/// registered from the machine itself: `core::setup`); after that registration is open only
/// when configured so, or to an admin who is logged in.
pub async fn register(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    client: &Client,
    body: Registration,
) -> ApiResult<UserOut> {
    validate::username(&body.username)?;
    validate::password(&body.password)?;
    // An admin logged in may create accounts; an API key may not, whoever made it.
    let caller = authenticate(state, headers).await?;
    let caller_is_admin = caller
        .as_ref()
        .is_some_and(|u| u.role == Role::Admin && u.key.is_none());
    // Who may register is decided before any hashing.
    let first = users::count(&state.db).await? == 0;
    if first {
        state.login_limiter.check_address(client.ip)?;
        if let Err(e) = super::setup::check(state, client, body.setup_token.as_deref()).await {
            // Guesses at the token count like failed logins.
            state.login_limiter.failed_from(client.ip)?;
            return Err(e);
        }
    } else if !caller_is_admin {
        if !state.settings.auth.open_registration {
            return Err(ApiError::Forbidden(
                "registration is closed: ask an admin to create your account".into(),
            ));
        }
        state.login_limiter.register(client.ip)?;
    }
    let hash = state.hasher.hash(body.password).await?;
    let created = insert(state, &body.username, hash, None, |first_now| {
        if first_now != first && !caller_is_admin && !state.settings.auth.open_registration {
            // Someone else became the first user meanwhile.
            return Err(ApiError::Forbidden(
                "registration is closed: ask an admin to create your account".into(),
            ));
        }
        Ok(())
    })
    .await?;
    if first {
        super::setup::done(state).await;
    }
    if let Some(admin) = caller.filter(|_| caller_is_admin) {
        audit::record(
            state,
            &admin,
            action::USER_CREATE,
            created.username.clone(),
            Some(json!({"role": created.role})),
        )
        .await;
    }
    Ok(created)
}

/// Inserts a user in one transaction; the first becomes an admin. `allow` sees whether this
/// is the first user.
async fn insert(
    state: &AppState,
    username: &str,
    hash: String,
    role: Option<Role>,
    allow: impl FnOnce(bool) -> ApiResult<()>,
) -> ApiResult<UserOut> {
    let txn = heydoc_store::begin(&state.db).await?;
    users::lock_for_creation(&txn).await?;
    let first = users::count(&txn).await? == 0;
    allow(first)?;
    if users::by_name(&txn, username).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "username {username:?} is taken"
        )));
    }
    let role = if first {
        Role::Admin
    } else {
        role.unwrap_or(Role::Agent)
    };
    let inserted = users::insert(&txn, username, hash, role.as_str(), Utc::now()).await?;
    heydoc_store::commit(txn).await?;
    tracing::info!(username, role = role.as_str(), "user created");
    Ok(inserted.into())
}

/// Creates an account (admins only), whatever the registration setting.
pub async fn create(state: &AppState, me: &AuthUser, body: NewUser) -> ApiResult<UserOut> {
    me.require_admin_session()?;
    validate::username(&body.username)?;
    validate::password(&body.password)?;
    let role = body.role.map(Role::from);
    if users::by_name(&state.db, &body.username).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "username {:?} is taken",
            body.username
        )));
    }
    let hash = state.hasher.hash(body.password).await?;
    let created = insert(
        state,
        &body.username,
        hash,
        Some(role.unwrap_or(Role::Agent)),
        |_| Ok(()),
    )
    .await?;
    audit::record(
        state,
        me,
        action::USER_CREATE,
        created.username.clone(),
        Some(json!({"role": created.role})),
    )
    .await;
    Ok(created)
}

/// Checks a username and password and opens a session. Failures count against the
/// (username, address) pair and the address; a spent limit refuses before hashing.
pub async fn login(state: &AppState, client: &Client, body: Credentials) -> ApiResult<Login> {
    let limiter = &state.login_limiter;
    let wrong = || ApiError::Unauthorized("invalid username or password".into());
    // A name or password no account can have costs no hash and no memory per name: it counts
    // against the address alone.
    if validate::username(&body.username).is_err() || body.password.chars().count() > 128 {
        limiter.failed_from(client.ip)?;
        return Err(wrong());
    }
    // Counted as a failure from here until it succeeds, so parallel guesses gain nothing.
    limiter.attempt(&body.username, client.ip)?;
    let checked = async {
        let found = users::by_name(&state.db, &body.username).await?;
        let stored = found.as_ref().map(|u| u.password_hash.clone());
        let verified = state.hasher.verify(body.password, stored).await?;
        Ok::<_, ApiError>((found, verified))
    }
    .await;
    let (found, verified) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            // Our failure, not a wrong password: it does not count against anyone.
            limiter.abandoned(&body.username, client.ip);
            return Err(e);
        }
    };
    let user = match (found, verified) {
        (Some(user), true) => user,
        _ => {
            tracing::info!(username = %body.username, address = %client.ip, "login failed");
            return Err(wrong());
        }
    };
    limiter.succeeded(&body.username, client.ip);
    if !users::is_active(&user) {
        return Err(ApiError::Forbidden(
            "this account is disabled: ask an admin".into(),
        ));
    }
    let now = Utc::now();
    let ttl =
        Duration::hours(i64::try_from(state.settings.auth.session_ttl_hours).unwrap_or(24 * 7));
    let expires_at = now + ttl;
    let session_id = uuid::Uuid::new_v4().to_string();
    users::open_session(
        &state.db,
        NewSession {
            id: &session_id,
            user_id: user.id,
            expires_at,
            address: Some(client.ip.to_string()),
            user_agent: client.user_agent.clone(),
        },
        now,
    )
    .await?;
    let token = state.tokens.issue(user.id, &session_id, now, expires_at)?;
    let role = Role::parse_lenient(&user.role).unwrap_or(Role::Agent);
    let me = AuthUser::session(user.id, &user.username, role, &session_id, client);
    let out: UserOut = user.into();
    audit::record(state, &me, action::LOGIN, None, None).await;
    tracing::info!(username = %out.username, "login");
    Ok(Login {
        out: LoginOut {
            token,
            token_type: "Bearer".into(),
            expires_at,
            user: out,
        },
        ttl_secs: ttl.num_seconds(),
    })
}

/// Ends the caller's session, if the request has one.
pub async fn logout(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<()> {
    if let Some(user) = authenticate(state, headers).await? {
        if user.key.is_none() {
            users::revoke_session(&state.db, &user.session_id, Utc::now()).await?;
            state.access_changed().await;
            tracing::info!(username = %user.username, "logout");
        }
    }
    Ok(())
}

pub async fn list(state: &AppState, me: &AuthUser) -> ApiResult<Vec<UserOut>> {
    me.require_admin_session()?;
    Ok(users::all(&state.db)
        .await?
        .into_iter()
        .map(UserOut::from)
        .collect())
}

pub async fn me(state: &AppState, me: &AuthUser) -> ApiResult<UserOut> {
    let user = users::get(&state.db, me.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(user.into())
}
