//! Registration, login and logout, and the admin's user management.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Duration, Utc};
use heydoc_domain::{validate, Role};
use heydoc_store::users;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::session::authenticate;
use crate::auth::{password, AuthUser, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, JsonOrForm};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(example = "admin", pattern = r"^[A-Za-z0-9_.@-]{3,64}$")]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    #[schema(example = "nurse", pattern = r"^[A-Za-z0-9_.@-]{3,64}$")]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
    /// `admin` or `user` (the default).
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i32,
    pub username: String,
    /// `admin` or `user`.
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl From<users::User> for UserOut {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role,
            created_at: u.created_at,
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

/// Creates an account. The first account is an admin and needs no invitation; after that,
/// registration is open only when configured so, or to an admin who is logged in.
#[utoipa::path(
    post, path = "/register", tag = "auth",
    request_body(content(
        (Credentials = "application/json"),
        (Credentials = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, body = Envelope<UserOut>),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonOrForm(body): JsonOrForm<Credentials>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<UserOut>>)> {
    validate::username(&body.username)?;
    validate::password(&body.password)?;
    // An admin logged in may create accounts; an API key may not, whoever made it.
    let caller_is_admin = authenticate(&state, &headers)
        .await?
        .is_some_and(|u| u.role == Role::Admin && u.key.is_none());
    let created = create_user(&state, &body.username, &body.password, None, |first| {
        if first || caller_is_admin || state.settings.auth.open_registration {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "registration is closed: ask an admin to create your account".into(),
            ))
        }
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(created, "User registered successfully")),
    ))
}

/// Creates a user in one transaction; the first user becomes an admin. `allow` decides, given
/// whether this is the first user, whether the caller may create it.
async fn create_user(
    state: &AppState,
    username: &str,
    password_text: &str,
    role: Option<Role>,
    allow: impl FnOnce(bool) -> ApiResult<()>,
) -> ApiResult<UserOut> {
    let hash = password::hash(password_text)?;
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
        role.unwrap_or(Role::User)
    };
    let inserted = users::insert(&txn, username, hash, role.as_str(), Utc::now()).await?;
    heydoc_store::commit(txn).await?;
    tracing::info!(username, role = role.as_str(), "user created");
    Ok(inserted.into())
}

/// Logs in. Sets an HttpOnly session cookie and returns the same token for API clients.
#[utoipa::path(
    post, path = "/login", tag = "auth",
    request_body(content(
        (Credentials = "application/json"),
        (Credentials = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, body = Envelope<LoginOut>, headers(("Set-Cookie" = String, description = "the session cookie"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonOrForm(body): JsonOrForm<Credentials>,
) -> ApiResult<Response> {
    state
        .login_limiter
        .check(&body.username, client_ip(&state, &headers, peer))?;
    let found = users::by_name(&state.db, &body.username).await?;
    let password_text = body.password;
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    // Argon2 is deliberately slow: keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => password::verify(&password_text, &hash),
        None => {
            password::verify(&password_text, password::decoy());
            false
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
    let user = match (found, verified) {
        (Some(user), true) => user,
        _ => {
            return Err(ApiError::Unauthorized(
                "invalid username or password".into(),
            ))
        }
    };

    let now = Utc::now();
    let ttl =
        Duration::hours(i64::try_from(state.settings.auth.session_ttl_hours).unwrap_or(24 * 7));
    let expires_at = now + ttl;
    let session_id = uuid::Uuid::new_v4().to_string();
    users::open_session(&state.db, &session_id, user.id, now, expires_at).await?;
    let token = state.tokens.issue(user.id, &session_id, now, expires_at)?;
    let cookie = session_cookie(&token, ttl.num_seconds(), state.settings.auth.cookie_secure);
    tracing::info!(username = %user.username, "login");
    let body = Envelope::ok(
        LoginOut {
            token,
            token_type: "Bearer".into(),
            expires_at,
            user: user.into(),
        },
        "Login successful",
    );
    Ok(([(SET_COOKIE, cookie)], axum::Json(body)).into_response())
}

/// Ends the session: the cookie and the token stop working at once, everywhere.
#[utoipa::path(
    get, path = "/logout", tag = "auth",
    responses((status = 200, body = Ack, headers(("Set-Cookie" = String, description = "clears the session cookie"))))
)]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(user) = authenticate(&state, &headers).await? {
        users::revoke_session(&state.db, &user.session_id, Utc::now()).await?;
        state.sessions.evict(&user.session_id);
        tracing::info!(username = %user.username, "logout");
    }
    let cookie = session_cookie("", 0, state.settings.auth.cookie_secure);
    Ok(([(SET_COOKIE, cookie)], axum::Json(Ack::new("Logged out"))).into_response())
}

/// Lists the accounts (admins only).
#[utoipa::path(
    get, path = "/api/users", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<UserOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_users(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<Vec<UserOut>>> {
    me.require_admin_session()?;
    let users = users::all(&state.db).await?;
    Ok(axum::Json(users.into_iter().map(UserOut::from).collect()))
}

/// Creates an account (admins only), whatever the registration setting.
#[utoipa::path(
    post, path = "/api/users", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    request_body = NewUser,
    responses(
        (status = 201, body = Envelope<UserOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn create_user_as_admin(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<UserOut>>)> {
    me.require_admin_session()?;
    validate::username(&body.username)?;
    validate::password(&body.password)?;
    let role = match body.role.as_deref() {
        None => Role::User,
        Some(r) => Role::parse(r)
            .ok_or_else(|| ApiError::validation(format!("role {r:?} must be admin or user")))?,
    };
    let created = create_user(&state, &body.username, &body.password, Some(role), |_| {
        Ok(())
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(created, "User created")),
    ))
}

/// The caller's own account.
#[utoipa::path(
    get, path = "/api/me", tag = "auth", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody))
)]
pub async fn me(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<UserOut>> {
    let user = users::get(&state.db, me.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(axum::Json(user.into()))
}

fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    );
    // A JWT is base64url and dots, so the header value is always valid.
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("heydoc_session=; Max-Age=0"))
}

/// The address the login limit counts: the peer, or the first `X-Forwarded-For` hop when the
/// gateway is configured to trust its proxy.
fn client_ip(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    if state.settings.auth.trust_forwarded_for {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
    }
    peer.ip()
}
