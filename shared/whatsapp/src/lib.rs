//! WhatsApp Cloud API: the client the sender calls Meta with, the classification of Meta's
//! error codes into what to do next, and the sandbox: a local server speaking the same request,
//! response and webhook formats, for trials without a Meta account, tests and benchmarks.

pub mod client;
pub mod error;
pub mod graph;
pub mod message_kinds;
pub mod payload;
pub mod sandbox;
pub mod templates;
pub mod webhook;

pub use client::{Accepted, CloudApi, CloudApiConfig};
pub use error::{ErrorClass, SendError};
pub use graph::{Download, GraphApi, MediaInfo};
pub use payload::{Content, MediaSource, Outgoing};

/// `sha256=<hex HMAC-SHA256>` of `body`: the `X-Hub-Signature-256` header Meta sends.
pub fn sign_webhook(app_secret: &[u8], body: &[u8]) -> String {
    webhook::sign(app_secret, body)
}
