//! Staff accounts: registration, login and logout, and letting people go. An admin can
//! disable (sessions and keys stop at once, on every replica), delete (the row stays, so what
//! they did stays attributed), change roles, reset a password, list and end sessions; everyone
//! can change their own password (their other sessions end) and sign out everywhere.
//!
//! Nothing an anonymous visitor sends costs a password hash unless it could succeed: whether
//! registration is open, and whether the login limit is spent, is decided first, and hashes run
//! a few at a time (`auth::password::Hasher`).

use chrono::{DateTime, Duration, Utc};
use heydoc_domain::{validate, Role};
use heydoc_store::users::{self, NewSession};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::client::Client;
use crate::auth::session::authenticate;
use crate::auth::AuthUser;
use crate::core::audit::{self, action};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(
        example = "admin",
        pattern = r"^[A-Za-z0-9_.@-]{3,64}$",
        min_length = 3,
        max_length = 64
    )]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Registration {
    #[schema(
        example = "admin",
        pattern = r"^[A-Za-z0-9_.@-]{3,64}$",
        min_length = 3,
        max_length = 64
    )]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
    /// Only for the first account of an install that listens beyond 127.0.0.1: the setup token
    /// printed at start (or configured as `HEYDOC_AUTH__SETUP_TOKEN`).
    #[serde(default)]
    pub setup_token: Option<String>,
}

/// A role, as asked for. `user` is the old name of `manager`, still understood.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Admin,
    Manager,
    Agent,
    User,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Admin => Role::Admin,
            RoleName::Manager | RoleName::User => Role::Manager,
            RoleName::Agent => Role::Agent,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(
        example = "nurse",
        pattern = r"^[A-Za-z0-9_.@-]{3,64}$",
        min_length = 3,
        max_length = 64
    )]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
    /// `agent` (the default: inbox and chats), `manager` (also campaigns, imports, exports,
    /// tags) or `admin` (also people, keys, endpoints, numbers, the audit log).
    #[serde(default)]
    pub role: Option<RoleName>,
}

/// What an admin changes about an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    #[serde(default)]
    pub role: Option<RoleName>,
    /// `true` disables the account at once (its sessions end, its API keys stop working);
    /// `false` enables it again.
    #[serde(default)]
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(min_length = 1, max_length = 128)]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The new password, to be given to its owner (all their sessions end).
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i32,
    pub username: String,
    /// `admin`, `manager` or `agent`.
    #[schema(value_type = String, example = "agent")]
    pub role: String,
    pub created_at: DateTime<Utc>,
    /// Disabled or deleted: cannot sign in, sessions and keys refused.
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<users::User> for UserOut {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id,
            disabled: !users::is_active(&u),
            role: Role::parse_lenient(&u.role)
                .unwrap_or(Role::Agent)
                .as_str()
                .into(),
            username: u.username,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
            deleted_at: u.deleted_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOut {
    /// The session token: send it as `Authorization: Bearer <token>` (browsers use the cookie).
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The address the login came from.
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// The session this request is made with.
    pub current: bool,
}

/// A login: the token and its lifetime, for the cookie and the body.
pub struct Login {
    pub out: LoginOut,
    pub ttl_secs: i64,
}

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
    validate::password(&body.new_password)?;
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
