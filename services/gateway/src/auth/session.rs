//! The `/api` guard: a valid, unrevoked session from the cookie or the bearer token.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use heydoc_domain::Role;

use crate::auth::api_key::{self, KeyGrant, KeyScope};
use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "heydoc_session";

/// Sessions this replica has checked recently, by session id: spares the database one query
/// per request. Entries live `auth.session_cache_secs`; logout evicts its own at once.
#[derive(Clone)]
pub struct SessionCache {
    entries: Option<moka::sync::Cache<String, AuthUser>>,
}

impl SessionCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        let entries = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build()
        });
        Self { entries }
    }

    fn get(&self, session_id: &str) -> Option<AuthUser> {
        self.entries.as_ref()?.get(session_id)
    }

    fn put(&self, user: &AuthUser) {
        if let Some(c) = &self.entries {
            c.insert(user.session_id.clone(), user.clone());
        }
    }

    pub fn evict(&self, session_id: &str) {
        if let Some(c) = &self.entries {
            c.invalidate(session_id);
        }
    }
}

/// The authenticated caller, available to `/api` handlers as `Extension<AuthUser>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: i32,
    pub username: String,
    pub role: Role,
    /// The login session; empty for an API key.
    pub session_id: String,
    /// The API key the request came with, if it came with one instead of a session.
    pub key: Option<KeyGrant>,
}

impl AuthUser {
    /// Key management and other account matters need a person logged in, not a key.
    pub fn require_session(&self) -> Result<(), ApiError> {
        match self.key {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                "this needs a logged-in session; API keys cannot do it".into(),
            )),
        }
    }

    /// An admin, in a logged-in session (what managing keys, endpoints and users needs).
    pub fn require_admin_session(&self) -> Result<(), ApiError> {
        self.require_session()?;
        self.require_admin()
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an admin account".into()))
        }
    }
}

/// The token from `Authorization: Bearer` or, failing that, the session cookie.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = auth.splitn(2, ' ');
        if parts
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        {
            return parts
                .next()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
        }
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Resolves the caller from the request's token, or `None` when it is missing, forged,
/// expired or revoked.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<AuthUser>, ApiError> {
    let Some(token) = token_from(headers) else {
        return Ok(None);
    };
    if api_key::is_key(&token) {
        return api_key::authenticate(state, &token).await;
    }
    let Some(claims) = state.tokens.verify(&token) else {
        return Ok(None);
    };
    if let Some(user) = state.sessions.get(&claims.jti) {
        if claims.sub == user.user_id.to_string() {
            return Ok(Some(user));
        }
    }
    let Some((session, Some(user))) =
        heydoc_store::users::live_session(&state.db, &claims.jti, Utc::now()).await?
    else {
        return Ok(None);
    };
    if claims.sub != user.id.to_string() {
        return Ok(None);
    }
    let user = AuthUser {
        user_id: user.id,
        username: user.username,
        role: Role::parse(&user.role).unwrap_or(Role::User),
        session_id: session.id,
        key: None,
    };
    state.sessions.put(&user);
    Ok(Some(user))
}

/// Middleware for every `/api` route: 401 unless the caller has a live session or API key;
/// 403 when a read-only key asks to change something.
pub async fn require_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let user = authenticate(&state, req.headers())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if let Some(grant) = user.key {
        let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if grant.scope == KeyScope::Read && !reads {
            return Err(ApiError::Forbidden(format!(
                "this API key can only read; {} needs a key with the write scope",
                req.method()
            )));
        }
    }
    req.extensions_mut().insert(user);
    Ok(next.run(req).await)
}
