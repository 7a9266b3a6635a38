//! Who is calling: password hashing, session tokens, the `/api` guard and the login limiter.

pub mod api_key;
pub mod limiter;
pub mod password;
pub mod session;
pub mod token;

pub use session::{require_session, AuthUser, SessionCache, SESSION_COOKIE};
