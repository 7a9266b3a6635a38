//! The `/api` guard: a valid, unrevoked session from the cookie or the bearer token.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use heydoc_domain::{Permission, Role};

use crate::auth::api_key::{self, KeyGrant, KeyScope};
use crate::auth::client::Client;
use crate::auth::{csrf, policy};
use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "heydoc_session";
/// The cookie's name over HTTPS: the `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, host-only and for `/`, so a sibling subdomain cannot plant one.
pub const HOST_SESSION_COOKIE: &str = "__Host-heydoc_session";

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

    /// Forgets every session: someone's access changed (heard from any replica).
    pub fn clear(&self) {
        if let Some(c) = &self.entries {
            c.invalidate_all();
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
    /// Where this request came from (set per request, for the audit log).
    pub address: Option<std::net::IpAddr>,
}

impl AuthUser {
    /// The caller of a session just opened.
    pub fn session(
        user_id: i32,
        username: &str,
        role: Role,
        session_id: &str,
        client: &crate::auth::client::Client,
    ) -> Self {
        Self {
            user_id,
            username: username.to_string(),
            role,
            session_id: session_id.to_string(),
            key: None,
            address: Some(client.ip),
        }
    }

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
        self.require(Permission::Admin)
    }

    /// 403 unless the caller's role covers `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.can(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "your role ({}) cannot do this; it needs {}",
                self.role,
                match permission {
                    Permission::Inbox => "a signed-in account",
                    Permission::Campaigns => "a manager or an admin (campaigns)",
                    Permission::Audience => "a manager or an admin (imports, exports, tags)",
                    Permission::Admin => "an admin account",
                }
            )))
        }
    }
}

/// The token from `Authorization: Bearer` or, failing that, the session cookie: over HTTPS
/// only the `__Host-` one (a sibling subdomain can plant the other, but not that).
pub fn token_from(headers: &HeaderMap, https: bool) -> Option<String> {
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
        .find(|(name, _)| {
            if https {
                *name == HOST_SESSION_COOKIE
            } else {
                *name == SESSION_COOKIE
            }
        })
        .map(|(_, value)| value.to_string())
}

/// When the request's session token expires (a login session's, not an API key's): a stream
/// opened with it ends then.
pub async fn session_expiry(
    state: &AppState,
    headers: &HeaderMap,
) -> Option<chrono::DateTime<Utc>> {
    let https = state.settings.auth.https || state.settings.auth.cookie_secure;
    let token = token_from(headers, https)?;
    if api_key::is_key(&token) {
        return None;
    }
    let claims = state.tokens.verify(&token)?;
    let signed = chrono::DateTime::from_timestamp(claims.exp, 0)?;
    // The session row's own end, when it is sooner (it is what the guard checks).
    match heydoc_store::users::live_session(&state.db, &claims.jti, Utc::now()).await {
        Ok(Some((session, _))) => Some(signed.min(session.expires_at)),
        _ => Some(signed),
    }
}

/// Resolves the caller from the request's token, or `None` when it is missing, forged,
/// expired or revoked.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<AuthUser>, ApiError> {
    let https = state.settings.auth.https || state.settings.auth.cookie_secure;
    let Some(token) = token_from(headers, https) else {
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
    let Some((session, user)) =
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
        role: Role::parse_lenient(&user.role).unwrap_or(Role::Agent),
        session_id: session.id,
        key: None,
        address: None,
    };
    state.sessions.put(&user);
    Ok(Some(user))
}

/// Middleware for every `/api` route: 401 unless the caller has a live session or API key;
/// 403 when a read-only key asks to change something, or the caller's role does not cover the
/// route (`policy::api`).
pub async fn require_session(
    State(state): State<AppState>,
    client: Client,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let mut user = authenticate(&state, req.headers())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    user.address = Some(client.ip);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let Some(permission) = policy::api(req.method(), &route) else {
        tracing::error!(method = %req.method(), route = %route, "an API route with no permission in auth/policy.rs: refused");
        return Err(ApiError::Forbidden(
            "this route has no permission set, so nobody may use it".into(),
        ));
    };
    user.require(permission)?;
    if user.key.is_none() {
        csrf::check(req.method(), req.headers())?;
    }
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
