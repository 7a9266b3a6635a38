//! Axum's extractors with their rejections turned into [`ApiError`] JSON, and a body extractor
//! that takes JSON or an HTML form.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A body sent either as JSON or as `application/x-www-form-urlencoded` (HTML forms).
pub struct JsonOrForm<T>(pub T);

impl<S, T> FromRequest<S> for JsonOrForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let axum::Form(value) = axum::Form::<T>::from_request(req, state).await?;
            Ok(Self(value))
        } else if content_type.starts_with("application/json") {
            let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
            Ok(Self(value))
        } else {
            Err(ApiError::UnsupportedMediaType(
                "send the body as application/json or application/x-www-form-urlencoded".into(),
            ))
        }
    }
}
