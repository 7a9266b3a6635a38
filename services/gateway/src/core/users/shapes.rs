//! What the users API takes and returns.

use chrono::{DateTime, Utc};
use heydoc_domain::Role;
use heydoc_store::users;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(
        example = "admin",
        pattern = r"^[A-Za-z0-9_.@-]{3,64}$",
        min_length = 3,
        max_length = 64
    )]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Registration {
    #[schema(
        example = "admin",
        pattern = r"^[A-Za-z0-9_.@-]{3,64}$",
        min_length = 3,
        max_length = 64
    )]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
    /// Only for the first account of an install that listens beyond 127.0.0.1: the setup token
    /// printed at start (or configured as `HEYDOC_AUTH__SETUP_TOKEN`).
    #[serde(default)]
    pub setup_token: Option<String>,
}

/// A role, as asked for. `user` is the old name of `manager`, still understood.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Admin,
    Manager,
    Agent,
    User,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Admin => Role::Admin,
            RoleName::Manager | RoleName::User => Role::Manager,
            RoleName::Agent => Role::Agent,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(
        example = "nurse",
        pattern = r"^[A-Za-z0-9_.@-]{3,64}$",
        min_length = 3,
        max_length = 64
    )]
    pub username: String,
    #[schema(example = "a-long-password", min_length = 8, max_length = 128)]
    pub password: String,
    /// `agent` (the default: inbox and chats), `manager` (also campaigns, imports, exports,
    /// tags) or `admin` (also people, keys, endpoints, numbers, the audit log).
    #[serde(default)]
    pub role: Option<RoleName>,
}

/// What an admin changes about an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    #[serde(default)]
    pub role: Option<RoleName>,
    /// `true` disables the account at once (its sessions end, its API keys stop working);
    /// `false` enables it again.
    #[serde(default)]
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(min_length = 1, max_length = 128)]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The new password, to be given to its owner (all their sessions end).
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i32,
    pub username: String,
    /// `admin`, `manager` or `agent`.
    #[schema(value_type = String, example = "agent")]
    pub role: String,
    pub created_at: DateTime<Utc>,
    /// Disabled or deleted: cannot sign in, sessions and keys refused.
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<users::User> for UserOut {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id,
            disabled: !users::is_active(&u),
            role: Role::parse_lenient(&u.role)
                .unwrap_or(Role::Agent)
                .as_str()
                .into(),
            username: u.username,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
            deleted_at: u.deleted_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOut {
    /// The session token: send it as `Authorization: Bearer <token>` (browsers use the cookie).
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The address the login came from.
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// The session this request is made with.
    pub current: bool,
}

/// A login: the token and its lifetime, for the cookie and the body.
pub struct Login {
    pub out: LoginOut,
    pub ttl_secs: i64,
}
