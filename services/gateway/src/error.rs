//! The gateway's one error type and its HTTP mapping. Every error leaves as
//! `{"success":false,"message":"...","error":{"code":"..."}}`; unexpected ones are logged here
//! and reach the client as a bare 500 that leaks nothing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Validation(String),
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A person's allowance is used up (uploads in a day); the message says until when.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the service is not ready: {0}")]
    Unavailable(String),
    /// The request was not complete in time (`http.request_timeout_secs`).
    #[error("{0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The error body every endpoint returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// What went wrong, in words a person can act on.
    pub message: String,
    pub error: ErrorCode,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorCode {
    /// A stable machine-readable code such as `validation_failed` or `not_found`.
    pub code: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Gone(_) => "gone",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "request_timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(message.into())
    }

    pub fn unauthorized() -> Self {
        ApiError::Unauthorized(
            "authentication required: log in, or send Authorization: Bearer <token>".into(),
        )
    }
}

impl ApiError {
    /// What the caller is told: internal details are logged, never shown.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "internal server error".to_string()
            }
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "not ready");
                self.to_string()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.public_message();
        let body = ErrorBody {
            success: false,
            message,
            error: ErrorCode {
                code: self.code().to_string(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<heydoc_store::StoreError> for ApiError {
    /// The store's classification decides the status: a missing row is a 404, a collision a
    /// 409, anything else a 500 whose log line keeps the source and where it was raised.
    fn from(e: heydoc_store::StoreError) -> Self {
        use heydoc_store::StoreError as S;
        match e {
            S::NotFound(what) => ApiError::NotFound(what),
            S::Conflict(what) => ApiError::Conflict(what),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<heydoc_domain::Invalid> for ApiError {
    fn from(e: heydoc_domain::Invalid) -> Self {
        ApiError::Validation(e.0)
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match r {
            J::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "the body must be JSON with Content-Type: application/json".into(),
            ),
            J::JsonDataError(e) => {
                ApiError::Validation(format!("invalid request body: {}", e.body_text()))
            }
            J::JsonSyntaxError(e) => {
                ApiError::BadRequest(format!("malformed JSON: {}", e.body_text()))
            }
            other => rejection_by_status(other.status(), other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::FormRejection> for ApiError {
    fn from(r: axum::extract::rejection::FormRejection) -> Self {
        rejection_by_status(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query string: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        rejection_by_status(r.status(), r.body_text())
    }
}

fn rejection_by_status(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Validation(text),
        s if s.is_client_error() => ApiError::BadRequest(text),
        _ => ApiError::Internal(text),
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
