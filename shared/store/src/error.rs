//! What can go wrong in the store, classified once: a row that is not there, a write that
//! collides with another (a unique name, a row changed meanwhile), or the database itself.
//! Callers map these to their own errors (the gateway: 404, 409, 500).

use std::panic::Location;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the caller named does not exist; the text names it ("tag 7 not found").
    #[error("{0}")]
    NotFound(String),
    /// The write collides with another row or a concurrent change; the text says with what.
    #[error("{0}")]
    Conflict(String),
    /// The database failed; `at` is where the store raised it (for the log, never a client).
    #[error("database: {source} (at {at})")]
    Db {
        source: sea_orm::DbErr,
        at: &'static Location<'static>,
    },
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("live events: {0}")]
    Listen(#[from] sqlx::Error),
    #[error("live events: cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<sea_orm::DbErr> for StoreError {
    /// `?` on a database call records where it happened.
    #[track_caller]
    fn from(source: sea_orm::DbErr) -> Self {
        StoreError::Db {
            source,
            at: Location::caller(),
        }
    }
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound(what.into())
    }

    /// A unique-key violation becomes `Conflict(message)`; anything else stays a database
    /// error.
    #[track_caller]
    pub fn unique_or_db(e: sea_orm::DbErr, message: impl Into<String>) -> Self {
        if is_unique_violation(&e) {
            StoreError::Conflict(message.into())
        } else {
            StoreError::from(e)
        }
    }
}

/// The write broke a unique index.
pub fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn fails() -> Result<()> {
        Err(sea_orm::DbErr::Custom("boom".into()))?;
        Ok(())
    }

    #[test]
    fn a_database_error_says_where_it_was_raised() {
        let text = fails().unwrap_err().to_string();
        assert!(text.contains("boom"), "{text}");
        assert!(text.contains("error.rs:"), "{text}");
    }
}
