//! The JWT signing secret: `JWT_SECRET`, or one generated once and kept where every replica
//! finds it: the data directory in the embedded mode, the shared database otherwise (so a
//! deployment needs no secret written in a file that others read). A process reachable from
//! other machines refuses to start with a secret that is published (the values of HeyDoc's own
//! examples): anyone who read them could sign sessions or webhooks.

use std::io::Write;

use anyhow::{bail, Context};
use heydoc_config::Settings;
use secrecy::SecretString;

const FILE_NAME: &str = "jwt-secret";

/// Secrets written in HeyDoc's own files (examples, the old compose file): known to anyone.
const PUBLISHED: [&str; 8] = [
    "compose-only-jwt-secret-0123456789abcdef",
    "sandbox-app-secret",
    "sandbox-secret",
    "change-me",
    "CHANGE_ME",
    "CHANGE_ME_openssl_rand_hex_32",
    "schemathesis-secret-0123456789",
    "crash-test-secret",
];

/// Refuses to start beyond loopback with a published secret (`JWT_SECRET`,
/// `WHATSAPP_APP_SECRET`).
pub fn refuse_published(settings: &Settings) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let local = settings
        .http_addr
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if local {
        return Ok(());
    }
    let published = |s: &str| PUBLISHED.contains(&s.trim());
    if settings
        .jwt_secret()
        .is_some_and(|s| published(s.expose_secret()))
    {
        bail!("JWT_SECRET is a value published in HeyDoc's own files, and HEYDOC_HTTP_ADDR ({}) is reachable from other machines: anyone could sign sessions. Unset it (one is generated and kept in the database) or set your own (openssl rand -hex 32)", settings.http_addr);
    }
    if published(settings.whatsapp.app_secret.expose_secret()) {
        bail!("WHATSAPP_APP_SECRET is a value published in HeyDoc's own files, and HEYDOC_HTTP_ADDR ({}) is reachable from other machines: anyone could forge WhatsApp webhooks. Set your Meta app's secret", settings.http_addr);
    }
    Ok(())
}

pub async fn jwt_secret(
    settings: &Settings,
    db: &heydoc_store::Db,
) -> anyhow::Result<SecretString> {
    if let Some(secret) = settings.jwt_secret() {
        return Ok(secret.clone());
    }
    if !settings.is_embedded() {
        // Generated once by whichever replica starts first, and kept in the database that
        // every replica shares.
        let generated = heydoc_config::generate_secret();
        let (kept, ours) = heydoc_store::install::keep_first(
            db,
            heydoc_store::install::JWT_SECRET,
            &generated,
            chrono::Utc::now(),
        )
        .await
        .context("keeping the generated session-signing secret")?;
        if ours {
            tracing::warn!("JWT_SECRET is not set: generated one and kept it in the database (every replica uses it)");
        }
        return Ok(SecretString::from(kept));
    }
    let path = settings.data_dir.join(FILE_NAME);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            tracing::warn!(
                "JWT_SECRET is not set: using the generated secret in {}; set JWT_SECRET for anything but a trial",
                path.display()
            );
            return Ok(SecretString::from(existing));
        }
    }
    let generated = heydoc_config::generate_secret();
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(generated.as_bytes())?;
    tracing::warn!(
        "JWT_SECRET is not set: generated one and saved it to {}; set JWT_SECRET for anything but a trial",
        path.display()
    );
    Ok(SecretString::from(generated))
}

/// The files `heydoc secrets <dir>` keeps: the WhatsApp app secret and verify token a
/// deployment's gateway and sandbox share.
const SHARED_FILES: [&str; 2] = ["whatsapp-app-secret", "whatsapp-verify-token"];

/// Writes each shared secret into `dir` unless a file is there already (readable by its owner
/// only).
pub fn generate_files(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in SHARED_FILES {
        let path = dir.join(name);
        if path.exists() {
            println!("{}: kept", path.display());
            continue;
        }
        write_private(&path, &heydoc_config::generate_secret())?;
        println!("{}: generated", path.display());
    }
    Ok(())
}

fn write_private(path: &std::path::Path, value: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(value.as_bytes())?;
    Ok(())
}
