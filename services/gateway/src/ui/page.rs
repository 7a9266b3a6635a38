//! What every page shares: the signed-in user (or a redirect to the login page), and errors
//! shown as pages rather than JSON.

use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use crate::auth::session::authenticate;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::layout;

/// The user a page is for. Without a live session the browser is sent to the login page, which
/// brings it back here afterwards.
pub struct PageUser(pub AuthUser);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match authenticate(state, &parts.headers).await {
            // Pages are for people: an API key gets the JSON API only.
            Ok(Some(user)) if user.key.is_some() => Err(PageError(ApiError::Forbidden(
                "pages need a logged-in session; API keys use the JSON API".into(),
            ))
            .into_response()),
            Ok(Some(user)) => {
                let route = parts
                    .extensions
                    .get::<axum::extract::MatchedPath>()
                    .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
                user.require(crate::auth::policy::page(&route))
                    .map_err(|e| PageError(e).into_response())?;
                Ok(PageUser(user))
            }
            Ok(None) => {
                let here = parts
                    .extensions
                    .get::<OriginalUri>()
                    .map_or_else(|| parts.uri.to_string(), |u| u.0.to_string());
                Err(Redirect::to(&login_url(&here)).into_response())
            }
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

/// `/login?next=...` for a page path.
pub fn login_url(next: &str) -> String {
    match serde_urlencoded::to_string([("next", next)]) {
        Ok(q) => format!("/login?{q}"),
        Err(_) => "/login".into(),
    }
}

/// A path the login page may send the browser to afterwards: our own pages only, never
/// another site. Browsers drop tabs and newlines from URLs and read `\\` as `/`, so
/// `/\t/evil.example` would become `//evil.example`: only visible ASCII is allowed.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.into()
        }
        _ => "/inbox".into(),
    }
}

pub type PageResult = Result<Html<String>, PageError>;

/// An API error met while building a page, shown as a page with the same status.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<heydoc_store::StoreError> for PageError {
    fn from(e: heydoc_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/login").into_response();
        }
        let message = self.0.public_message();
        let body = layout::bare(
            &format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
            html! {
                h1 { (status.canonical_reason().unwrap_or("Error")) }
                p role="alert" { (message) }
                p { a href="/inbox" { "Back to the inbox" } }
            },
        );
        (status, body).into_response()
    }
}

/// `/`: the inbox when signed in; otherwise registration on a new install (no users yet) or
/// the login page.
pub async fn home(State(state): State<AppState>, parts: Parts) -> Result<Redirect, PageError> {
    if authenticate(&state, &parts.headers).await?.is_some() {
        return Ok(Redirect::to("/inbox"));
    }
    let users = heydoc_store::users::count(&state.db).await?;
    Ok(Redirect::to(if users == 0 {
        "/register"
    } else {
        "/login"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/chat/1415?before=3")),
            "/chat/1415?before=3"
        );
        for evil in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/ /x",
        ] {
            assert_eq!(safe_next(Some(evil)), "/inbox", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/inbox");
    }
}
