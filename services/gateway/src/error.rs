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
    /// A field of the request names something that does not exist (a tag id): a 404 whose body
    /// says which field and why, with its code.
    #[error("{}", .0.message)]
    UnknownReference(heydoc_domain::Invalid),
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
    /// A rule the request broke, with its code and, when one field broke it, the field.
    #[error("{0}")]
    Validation(heydoc_domain::Invalid),
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
    /// A stable machine-readable code: the status's (`bad_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `conflict`, `validation_failed`, `rate_limited` ...) or, for a
    /// rule one field broke, the rule's.
    pub code: String,
    /// The request field the error is about, as the request names it (`recipients[3]`,
    /// `scheduled_time`), when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The same words as the top-level `message`.
    pub message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::UnknownReference(_) => StatusCode::NOT_FOUND,
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
            ApiError::UnknownReference(invalid) => invalid.code,
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Gone(_) => "gone",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation(invalid) => invalid.code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "request_timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation(heydoc_domain::Invalid::new(message))
    }

    /// A rule one field broke: a 422 naming the field and the rule's code
    /// (`heydoc_domain::codes`).
    pub fn field(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation(heydoc_domain::Invalid::at(field, code, message))
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
        let field = match &self {
            ApiError::Validation(invalid) | ApiError::UnknownReference(invalid) => {
                invalid.field.clone()
            }
            _ => None,
        };
        let body = ErrorBody {
            success: false,
            error: ErrorCode {
                code: self.code().to_string(),
                field,
                message: message.clone(),
            },
            message,
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
        ApiError::Validation(e)
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
                ApiError::validation(format!("invalid request body: {}", e.body_text()))
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
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::validation(text),
        s if s.is_client_error() => ApiError::BadRequest(text),
        _ => ApiError::Internal(text),
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
