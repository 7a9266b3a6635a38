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
                    .map_err(|e| ApiError::validation(format!("invalid form body: {e}")))
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
    // Two rules serde's derive does not keep: every body is a JSON object (a derived struct
    // would also take an array of its fields in order), and `3.0` is the integer 3 (JSON
    // Schema says so, and generated clients send it). Text that is not JSON is left to axum,
    // whose error says where it breaks.
    let mut normalized = None;
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if !value.is_object() {
            return Err(ApiError::validation("the body must be a JSON object"));
        }
        if integral_floats_to_integers(&mut value) {
            normalized = serde_json::to_vec(&value).ok();
        }
    }
    // The body as sent when it reads as it is (stored JSON keeps its numbers and key order);
    // with `3.0` read as 3 only when that is what it takes.
    let value = match (axum::Json::<T>::from_bytes(bytes), normalized) {
        (Ok(axum::Json(value)), _) => value,
        (Err(_), Some(normalized)) => axum::Json::<T>::from_bytes(&normalized)?.0,
        (Err(e), None) => return Err(e.into()),
    };
    Ok(value)
}

/// Turns numbers like `3.0` into `3` throughout; whether it changed any.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                *value = serde_json::Value::from(f as i64);
                true
            }
            _ => false,
        },
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        _ => false,
    }
}

fn nul_error() -> ApiError {
    ApiError::validation("text must not contain NUL characters (\\u0000)")
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

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Ids {
        tag_ids: Vec<i32>,
        name: Option<String>,
    }

    #[test]
    fn bodies_are_objects_and_integral_floats_are_integers() {
        let ids: Ids = parse_json(br#"{"tag_ids": [1.0, 2], "name": null}"#).unwrap();
        assert_eq!(ids.tag_ids, vec![1, 2]);
        assert!(matches!(
            parse_json::<Ids>(br#"[[1], null]"#),
            Err(ApiError::Validation(_))
        ));
        assert!(parse_json::<Ids>(br#"{"tag_ids": [1.5]}"#).is_err());
    }

    #[test]
    fn finds_only_real_nul_escapes() {
        assert!(has_escaped_nul(br#"{"a":"\u0000"}"#));
        assert!(has_escaped_nul(br#"{"a":"x\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"u0000"}"#));
    }
}
