//! Who is calling: password hashing, session tokens, the `/api` guard and the login limiter.

pub mod api_key;
pub mod client;
pub mod csrf;
pub mod limiter;
pub mod password;
pub mod policy;
pub mod session;
pub mod token;

pub use session::{require_session, AuthUser, SessionCache, HOST_SESSION_COOKIE, SESSION_COOKIE};
