//! The JWT signing secret: `JWT_SECRET`, or in the embedded mode one generated once and kept
//! in the data directory so that logins survive a restart.

use std::io::Write;

use anyhow::{bail, Context};
use heydoc_config::Settings;
use secrecy::SecretString;

const FILE_NAME: &str = "jwt-secret";

pub fn jwt_secret(settings: &Settings) -> anyhow::Result<SecretString> {
    if let Some(secret) = settings.jwt_secret() {
        return Ok(secret.clone());
    }
    if !settings.is_embedded() {
        bail!("JWT_SECRET must be set when DATABASE_URL points at a shared database (it signs session tokens)");
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
