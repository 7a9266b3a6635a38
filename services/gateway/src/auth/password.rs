//! Argon2id password hashes (PHC strings, salted per user), computed on blocking threads behind
//! a small semaphore: each costs ~19 MiB and tens of milliseconds, and anonymous visitors can
//! ask for them, so they must never crowd out the runtime that sends and schedules.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use crate::error::ApiError;

/// Hashing and checking passwords, a few at a time.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl Hasher {
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    /// A new hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash(&password)).await?
    }

    /// Whether `password` matches `stored`; without a stored hash (an unknown user) the same
    /// work is done against a decoy, so the answer takes as long either way.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        self.run(move || match stored {
            Some(hash) => verify(&password, &hash),
            None => {
                verify(&password, decoy());
                false
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::Unavailable("too many sign-ins at once; try again in a moment".into())
            })?
            .map_err(|_| ApiError::Internal("the password hasher is closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("password check: {e}")))
    }
}

pub fn hash(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
}

pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A valid hash of a random password, verified against when the username is unknown so that
/// an unknown user costs the same time as a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random = heydoc_config::generate_secret();
        hash(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_the_permitted_hashes_run_and_the_rest_wait_then_give_up() {
        let hasher = Hasher::new(1, Duration::from_millis(1));
        let slow = hasher.clone();
        let running = tokio::spawn(async move {
            slow.run(|| std::thread::sleep(Duration::from_millis(300)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            hasher.hash("password".into()).await,
            Err(ApiError::Unavailable(_))
        ));
        running.await.unwrap().unwrap();
        let waiting = Hasher::new(1, Duration::from_secs(30));
        assert!(waiting.verify("x".into(), None).await.is_ok_and(|ok| !ok));
    }

    #[test]
    fn verifies_only_the_right_password() {
        let h = hash("correct horse").unwrap();
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("anything", decoy()));
    }
}
