//! Registration, login and logout, the admin's user management, passwords, sessions and the
//! audit log: extract, call `core::users` / `core::audit`, wrap.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::auth::client::Client;
use crate::auth::{csrf, AuthUser, HOST_SESSION_COOKIE, SESSION_COOKIE};
use crate::core::audit::{self, AuditOut, AuditParams};
use crate::core::users::{
    self, Credentials, LoginOut, NewUser, PasswordChange, PasswordReset, Registration, SessionOut,
    UserChanges, UserOut,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, JsonOrForm, Path, Query};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

/// Creates an account. The first account is an admin and needs no invitation (on an install
/// listening beyond 127.0.0.1, it needs the setup token); after that, registration is open only
/// when configured so, or to an admin who is logged in.
#[utoipa::path(
    post, path = "/register", tag = "auth", operation_id = "register",
    request_body = Registration,
    responses(
        (status = 201, description = "The account was created", body = Envelope<UserOut>),
        (status = 400, description = "The body is not valid JSON (an HTML form's fields are read too)", body = ErrorBody),
        (status = 403, description = "Registration is closed, or the setup token is missing or wrong", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 415, description = "Neither JSON nor form data", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address", body = ErrorBody),
        (status = 503, description = "Too many password checks at once; try again", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    JsonOrForm(body): JsonOrForm<Registration>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<UserOut>>)> {
    csrf::check(&axum::http::Method::POST, &headers)?;
    let created = users::register(&state, &headers, &client, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(created, "User registered successfully")),
    ))
}

/// Logs in. Sets an HttpOnly session cookie and returns the same token for API clients.
#[utoipa::path(
    post, path = "/login", tag = "auth", operation_id = "login",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = Envelope<LoginOut>, headers(("Set-Cookie" = String, description = "the session cookie"))),
        (status = 400, description = "The body is not valid JSON (an HTML form's fields are read too)", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 403, description = "The account is disabled, or the request came from another site", body = ErrorBody),
        (status = 415, description = "Neither JSON nor form data", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "Too many password checks at once; try again", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    JsonOrForm(body): JsonOrForm<Credentials>,
) -> ApiResult<Response> {
    csrf::check(&axum::http::Method::POST, &headers)?;
    let login = users::login(&state, &client, body).await?;
    let cookie = session_cookie(&state, &login.out.token, login.ttl_secs);
    let body = Envelope::ok(login.out, "Login successful");
    Ok(([(SET_COOKIE, cookie)], axum::Json(body)).into_response())
}

/// Ends the session: the cookie and the token stop working at once, on every replica.
/// Prefer `POST /logout`; this `GET` is kept for existing clients, and refuses to act on a
/// cookie when another site asks.
#[utoipa::path(
    get, path = "/logout", tag = "auth", operation_id = "logoutGet",
    responses(
        (status = 200, description = "Signed out (also when there was no session)", body = Ack, headers(("Set-Cookie" = String, description = "clears the session cookie"))),
        (status = 403, description = "Another site asked to sign this browser out", body = ErrorBody),
    )
)]
pub async fn logout_get(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if !csrf::same_site(&headers) {
        return Err(ApiError::Forbidden(
            "another site cannot sign you out; use HeyDoc's own sign-out button".into(),
        ));
    }
    logout_now(&state, &headers).await
}

/// Ends the session: the cookie and the token stop working at once, on every replica.
#[utoipa::path(
    post, path = "/logout", tag = "auth", operation_id = "logout",
    responses(
        (status = 200, description = "Signed out (also when there was no session)", body = Ack, headers(("Set-Cookie" = String, description = "clears the session cookie"))),
        (status = 403, description = "The request came from another site", body = ErrorBody),
    )
)]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    csrf::check(&axum::http::Method::POST, &headers)?;
    logout_now(&state, &headers).await
}

async fn logout_now(state: &AppState, headers: &HeaderMap) -> ApiResult<Response> {
    users::logout(state, headers).await?;
    let cookie = session_cookie(state, "", 0);
    let ack = axum::Json(Ack::new("Logged out"));
    // A page's sign-out form comes back to the login page.
    if headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("text/html"))
    {
        return Ok((
            [(SET_COOKIE, cookie)],
            axum::response::Redirect::to("/login"),
        )
            .into_response());
    }
    Ok(([(SET_COOKIE, cookie)], ack).into_response())
}

/// Lists the accounts, deleted ones included (admins only).
#[utoipa::path(
    get, path = "/api/users", tag = "users", operation_id = "listUsers", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Every account", body = Vec<UserOut>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or an API key", body = ErrorBody),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<Vec<UserOut>>> {
    Ok(axum::Json(users::list(&state, &me).await?))
}

/// Creates an account (admins only), whatever the registration setting.
#[utoipa::path(
    post, path = "/api/users", tag = "users", operation_id = "createUser", security(("bearer" = []), ("cookie" = [])),
    request_body = NewUser,
    responses(
        (status = 201, description = "The account was created", body = Envelope<UserOut>),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or an API key", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 503, description = "Too many password checks at once; try again", body = ErrorBody),
    )
)]
pub async fn create_user_as_admin(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<UserOut>>)> {
    let created = users::create(&state, &me, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(created, "User created")),
    ))
}

/// Changes an account's role, or disables or enables it (admins only, not their own). A
/// disabled account's sessions end and its API keys stop working at once, on every replica.
#[utoipa::path(
    patch, path = "/api/users/{id}", tag = "users", operation_id = "updateUser", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "the user's id", minimum = 1)),
    request_body = UserChanges,
    responses(
        (status = 200, description = "The account as it is now", body = UserOut),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or an API key", body = ErrorBody),
        (status = 404, description = "No such user, or deleted", body = ErrorBody),
        (status = 409, description = "Your own account, or the last active admin", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
    Json(body): Json<UserChanges>,
) -> ApiResult<axum::Json<UserOut>> {
    Ok(axum::Json(users::update(&state, &me, id, body).await?))
}

/// Deletes an account (admins only, not their own): it can never sign in again, its sessions
/// end and its API keys are revoked; what it did stays attributed to it.
#[utoipa::path(
    delete, path = "/api/users/{id}", tag = "users", operation_id = "deleteUser", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "the user's id", minimum = 1)),
    responses(
        (status = 200, description = "Deleted", body = Ack),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or an API key", body = ErrorBody),
        (status = 404, description = "No such user, or deleted already", body = ErrorBody),
        (status = 409, description = "Your own account, or the last active admin", body = ErrorBody),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    users::delete(&state, &me, id).await?;
    Ok(axum::Json(Ack::new("User deleted")))
}

/// Sets someone's password (admins only); all their sessions end.
#[utoipa::path(
    post, path = "/api/users/{id}/password", tag = "users", operation_id = "resetUserPassword", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "the user's id", minimum = 1)),
    request_body = PasswordReset,
    responses(
        (status = 200, description = "The password was set", body = Ack),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or an API key", body = ErrorBody),
        (status = 404, description = "No such user, or deleted", body = ErrorBody),
        (status = 409, description = "It is your own account: your password changes with PUT /api/me/password", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "The password is invalid", body = ErrorBody),
        (status = 503, description = "Too many password checks at once; try again", body = ErrorBody),
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
    Json(body): Json<PasswordReset>,
) -> ApiResult<axum::Json<Ack>> {
    users::reset_password(&state, &me, id, body).await?;
    Ok(axum::Json(Ack::new("Password set; their sessions ended")))
}

/// A user's live sessions: your own, or anyone's for an admin.
#[utoipa::path(
    get, path = "/api/users/{id}/sessions", tag = "users", operation_id = "listUserSessions", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "the user's id", minimum = 1)),
    responses(
        (status = 200, description = "Live sessions, newest first", body = Vec<SessionOut>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Someone else's, and not an admin; or an API key", body = ErrorBody),
        (status = 404, description = "No such user, or deleted", body = ErrorBody),
    )
)]
pub async fn sessions(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Vec<SessionOut>>> {
    Ok(axum::Json(users::sessions(&state, &me, id).await?))
}

/// Signs a user out everywhere: your own sessions, or anyone's for an admin.
#[utoipa::path(
    delete, path = "/api/users/{id}/sessions", tag = "users", operation_id = "revokeUserSessions", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "the user's id", minimum = 1)),
    responses(
        (status = 200, description = "Every session ended", body = Ack),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Someone else's, and not an admin; or an API key", body = ErrorBody),
        (status = 404, description = "No such user, or deleted", body = ErrorBody),
    )
)]
pub async fn revoke_sessions(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    let ended = users::revoke_sessions(&state, &me, id).await?;
    Ok(axum::Json(Ack::new(format!("{ended} sessions ended"))))
}

/// The caller's own account.
#[utoipa::path(
    get, path = "/api/me", tag = "users", operation_id = "getMe", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Your account", body = UserOut),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn me(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<UserOut>> {
    Ok(axum::Json(users::me(&state, &me).await?))
}

/// Changes your own password; your other sessions end (this one stays).
#[utoipa::path(
    put, path = "/api/me/password", tag = "users", operation_id = "changeMyPassword", security(("bearer" = []), ("cookie" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed", body = Ack),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "An API key", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Wrong current password, or the new one is invalid", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many password checks at once; try again", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<PasswordChange>,
) -> ApiResult<axum::Json<Ack>> {
    users::change_password(&state, &me, body).await?;
    Ok(axum::Json(Ack::new(
        "Password changed; your other sessions ended",
    )))
}

/// The audit log, newest first (admins only): sign-ins, account changes, keys, endpoints,
/// exports, imports, deletions, campaign changes.
#[utoipa::path(
    get, path = "/api/audit", tag = "users", operation_id = "listAuditLog", security(("bearer" = []), ("cookie" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "One page; ask for the next with before=<last id>", body = Vec<AuditOut>),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or an API key", body = ErrorBody),
    )
)]
pub async fn audit_log(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Query(params): Query<AuditParams>,
) -> ApiResult<axum::Json<Vec<AuditOut>>> {
    Ok(axum::Json(audit::list(&state, &me, params).await?))
}

/// The session cookie: `__Host-` prefixed, `Secure` and with HSTS when served over HTTPS.
fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let https = state.settings.auth.https || state.settings.auth.cookie_secure;
    let (name, secure) = if https {
        (HOST_SESSION_COOKIE, "; Secure")
    } else {
        (SESSION_COOKIE, "")
    };
    let value =
        format!("{name}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}");
    // A JWT is base64url and dots, so the header value is always valid.
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("heydoc_session=; Max-Age=0"))
}
