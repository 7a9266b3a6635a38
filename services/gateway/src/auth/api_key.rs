//! API keys: `hdk_` and 48 hex digits of OS randomness. Only the key's SHA-256 is stored (a
//! 192-bit random secret needs no slow hash), so a key is shown once, at creation. A key acts
//! for the admin who made it, limited by its scope; it is looked up on every request, so a
//! revoked key is refused at once on every replica.

use chrono::Utc;
use heydoc_domain::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// What every key starts with: tells a key from a session token at a glance (and in secret
/// scanners).
pub const KEY_PREFIX: &str = "hdk_";
/// How many characters of a key lists show.
const SHOWN: usize = 12;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// `GET` and `HEAD` only.
    Read,
    /// Everything the admin who made it can do, except managing keys.
    Write,
}

impl KeyScope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// The key a request authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGrant {
    pub id: i32,
    pub scope: KeyScope,
}

/// A new key: the secret (shown once), the part lists show, and what is stored.
pub struct NewKey {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate() -> NewKey {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    NewKey {
        prefix: secret.chars().take(SHOWN).collect(),
        hash: hash(&secret),
        secret,
    }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn is_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// The caller a key stands for, or `None` when it is unknown or revoked.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<AuthUser>, ApiError> {
    let Some((key, owner)) = heydoc_store::api_keys::live_by_hash(&state.db, &hash(token)).await?
    else {
        return Ok(None);
    };
    let Some(scope) = KeyScope::parse(&key.scope) else {
        return Ok(None);
    };
    stamp_use(state, key.id);
    Ok(Some(AuthUser {
        user_id: owner.id,
        username: owner.username,
        role: Role::parse_lenient(&owner.role).unwrap_or(Role::Agent),
        session_id: String::new(),
        key: Some(KeyGrant { id: key.id, scope }),
        address: None,
    }))
}

/// Records that the key was used, in the background and at most once a minute per replica.
fn stamp_use(state: &AppState, id: i32) {
    if state.key_uses.get(&id).is_some() {
        return;
    }
    state.key_uses.insert(id, ());
    let db = state.db.clone();
    tokio::spawn(async move {
        let now = Utc::now();
        let stale =
            now - chrono::Duration::from_std(crate::state::USE_STAMP_EVERY).unwrap_or_default();
        let result = heydoc_store::api_keys::stamp_use(&db, id, now, stale).await;
        if let Err(e) = result {
            tracing::debug!(error = %e, key_id = id, "could not record an API key's use");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_stored_as_their_hash() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(KEY_PREFIX) && a.secret.len() == 4 + 48);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[4..]));
        assert!(is_key(&a.secret) && !is_key("eyJhbGciOi"));
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!(KeyScope::parse("read"), Some(KeyScope::Read));
        assert_eq!(KeyScope::parse("write"), Some(KeyScope::Write));
        assert_eq!(KeyScope::parse("admin"), None);
        assert_eq!(KeyScope::parse("READ"), None);
    }
}
