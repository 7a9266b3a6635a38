//! The HTTP handlers, one module per resource, and the response shapes they share.

pub mod api_keys;
pub mod auth;
pub mod contacts;
pub mod conversations;
pub mod event_endpoints;
pub mod health;
pub mod imports;
pub mod media;
pub mod messages;
pub mod numbers;
pub mod scheduled;
pub mod send;
pub mod tags;
pub mod templates;
pub mod uploads;
pub mod webhooks;

use serde::Serialize;
use utoipa::ToSchema;

/// The seed's success envelope: `{"success":true,"data":{...},"message":"..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
    pub message: String,
}

impl<T> Envelope<T> {
    pub fn ok(data: T, message: impl Into<String>) -> Self {
        Self {
            success: true,
            data,
            message: message.into(),
        }
    }
}

/// A success with nothing more to say than its message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ack {
    /// Always `true`.
    pub success: bool,
    pub message: String,
}

impl Ack {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            success: true,
            message: message.into(),
        }
    }
}

/// The page size a list may ask for: `default` when absent, otherwise brought within 1 to
/// `max`.
pub fn page_size(limit: Option<i64>, default: u64, max: u64) -> u64 {
    limit.map_or(default, |l| u64::try_from(l.max(1)).unwrap_or(1).min(max))
}
