//! Cross-site request forgery: a state change that a browser authenticates with the session
//! cookie must come from HeyDoc's own pages. Browsers say where a request comes from
//! (`Sec-Fetch-Site`, or at least `Origin` on every POST/PUT/DELETE); a request from another
//! site is refused whatever SameSite does. Requests with a bearer token or an API key carry
//! no ambient credential and are not checked; neither are clients that send neither header
//! (they are not browsers, and cannot ride on someone's cookie).

use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};

use crate::error::ApiError;

/// Refuses a cookie-authenticated state change from another site.
pub fn check(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || bearer(headers) {
        return Ok(());
    }
    if same_site(headers) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this request came from another site; changes need HeyDoc's own pages".into(),
        ))
    }
}

/// Whether the request carries a bearer token (which a browser never adds by itself; Basic
/// credentials for a proxy in front, it does).
fn bearer(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        })
}

/// Whether the browser says the request comes from this site (or says nothing).
pub fn same_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers.get(HOST).and_then(|v| v.to_str().ok());
            let origin_host = origin
                .split_once("://")
                .map(|(_, rest)| rest.trim_end_matches('/'));
            origin_host.is_some() && origin_host == host
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn another_site_is_refused_and_our_pages_pass() {
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(same_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_site(&headers(&[
            ("origin", "http://heydoc.local:8080"),
            ("host", "heydoc.local:8080")
        ])));
        assert!(!same_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "heydoc.local:8080")
        ])));
        assert!(!same_site(&headers(&[("origin", "null"), ("host", "h")])));
        assert!(same_site(&HeaderMap::new()), "not a browser");
    }
}
