//! The first admin of an install. Whoever reaches a fresh HeyDoc from another machine must
//! prove they run it: the first registration needs the setup token, a random value generated
//! at the first start, printed once on that process's stderr and kept (as its SHA-256 only) in
//! the database, so that every replica accepts it and a restart keeps it. Only a browser on
//! the machine itself (a loopback peer, through no proxy) registers without it. A lost token
//! is replaced with `heydoc admin setup-token`; `heydoc admin create` needs none.

use chrono::Utc;
use heydoc_store::install::{self, SETUP_TOKEN_SHA256};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::client::Client;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (128 bits, hex).
fn generate() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// While nobody has an account: makes sure the install has a setup token and, if this
/// process made it, prints it once (on stderr, never in the log).
pub async fn announce(state: &AppState) {
    match heydoc_store::users::count(&state.db).await {
        Ok(0) => {}
        _ => return,
    }
    if !state
        .settings
        .auth
        .setup_token
        .expose_secret()
        .trim()
        .is_empty()
    {
        tracing::warn!("no admin yet: register the first one with the configured setup token (HEYDOC_AUTH__SETUP_TOKEN), or run `heydoc admin create`");
        return;
    }
    let token = generate();
    match install::keep_first(&state.db, SETUP_TOKEN_SHA256, &digest(&token), Utc::now()).await {
        Ok((_, true)) => {
            tracing::warn!("no admin yet: the first one registers with the setup token printed on stderr (needed unless registering from this machine directly), or run `heydoc admin create`");
            eprintln!("HeyDoc setup token (for the first admin's registration): {token}");
        }
        Ok((_, false)) => tracing::warn!(
            "no admin yet: register the first one with the setup token printed when this install first started; `heydoc admin setup-token` makes a new one"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot keep a setup token; the first admin needs `heydoc admin create`"),
    }
}

/// Replaces the setup token (the old one stops working); returns the new one to show.
pub async fn renew(db: &heydoc_store::Db) -> heydoc_store::Result<String> {
    let token = generate();
    install::replace(db, SETUP_TOKEN_SHA256, &digest(&token), Utc::now()).await?;
    Ok(token)
}

/// Whether the first registration from `client` must show the setup token: unless it comes
/// from the machine itself, through no proxy.
pub fn needed(client: &Client) -> bool {
    !client.direct_local
}

/// Checks the first registration's setup token.
pub async fn check(state: &AppState, client: &Client, given: Option<&str>) -> ApiResult<()> {
    if !needed(client) {
        return Ok(());
    }
    let given = given.map(str::trim).unwrap_or_default();
    let configured = state.settings.auth.setup_token.expose_secret().trim();
    let matches = if !configured.is_empty() {
        bool::from(given.as_bytes().ct_eq(configured.as_bytes()))
    } else {
        match install::get(&state.db, SETUP_TOKEN_SHA256).await? {
            Some(kept) => bool::from(digest(given).as_bytes().ct_eq(kept.as_bytes())),
            None => false,
        }
    };
    if !given.is_empty() && matches {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "this install has no admin yet: register the first one with the setup token printed \
         at its first start (setup_token), or run `heydoc admin create` (`heydoc admin \
         setup-token` makes a new token)"
            .into(),
    ))
}

/// The first admin exists: the token is no longer needed.
pub async fn done(state: &AppState) {
    if let Err(e) = install::forget(&state.db, SETUP_TOKEN_SHA256).await {
        tracing::debug!(error = %e, "cannot forget the setup token");
    }
}
