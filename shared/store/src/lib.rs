//! The database side every service shares: connecting (PostgreSQL or the embedded SQLite),
//! migrating, and the writes more than one service makes to the chat log and contacts.

pub mod chat;
pub mod connect;
pub mod consent;
pub mod contact_import;
pub mod contacts;
pub mod deliveries;
pub mod events;
pub mod failures;
pub mod live;
pub mod numbers;

pub use connect::{connect, migrate, ping, record_pool_metrics};
pub use heydoc_entity as entity;

/// What went wrong in the store. Callers map these to their own errors (the gateway to HTTP).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
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

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
