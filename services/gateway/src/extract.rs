//! Axum's extractors with their rejections turned into [`ApiError`] JSON, a body extractor that
//! takes JSON or an HTML form, and one rule for all of them: no NUL characters, which neither
//! PostgreSQL text nor JSON columns can store.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body (`Content-Type: application/json`).
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if body_kind(req.headers()) != BodyKind::Json {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// A query string.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::BadRequest(
                "the query string must not contain NUL characters".into(),
            ));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::try_from_uri(&parts.uri)?;
        Ok(Self(value))
    }
}

/// A body sent either as JSON or as `application/x-www-form-urlencoded` (HTML forms).
pub struct JsonOrForm<T>(pub T);

impl<S, T> FromRequest<S> for JsonOrForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match body_kind(req.headers()) {
            BodyKind::Json => {
                let bytes = Bytes::from_request(req, state).await?;
                Ok(Self(parse_json(&bytes)?))
            }
            BodyKind::Form => {
                let bytes = Bytes::from_request(req, state).await?;
                if bytes.windows(3).any(|w| w == b"%00") {
                    return Err(nul_error());
                }
                serde_urlencoded::from_bytes(&bytes)
                    .map(Self)
                    .map_err(|e| ApiError::Validation(format!("invalid form body: {e}")))
            }
            BodyKind::Other => Err(ApiError::UnsupportedMediaType(
                "send the body as application/json or application/x-www-form-urlencoded".into(),
            )),
        }
    }
}

#[derive(PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
    Other,
}

fn body_kind(headers: &HeaderMap) -> BodyKind {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return BodyKind::Other;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if has_escaped_nul(bytes) {
        return Err(nul_error());
    }
    let axum::Json(value) = axum::Json::<T>::from_bytes(bytes)?;
    Ok(value)
}

fn nul_error() -> ApiError {
    ApiError::Validation("text must not contain NUL characters (\\u0000)".into())
}

/// True when the JSON text holds the escape `\u0000` (a raw NUL is invalid JSON already). An
/// escape is one preceded by an odd number of backslashes: `\\u0000` is a literal backslash.
fn has_escaped_nul(json: &[u8]) -> bool {
    let needle = b"u0000";
    let mut i = 0;
    while let Some(pos) = json[i..].windows(needle.len()).position(|w| w == needle) {
        let at = i + pos;
        let backslashes = json[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 1 {
            return true;
        }
        i = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_real_nul_escapes() {
        assert!(has_escaped_nul(br#"{"a":"\u0000"}"#));
        assert!(has_escaped_nul(br#"{"a":"x\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"u0000"}"#));
    }
}
