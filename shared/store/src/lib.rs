//! The database side every service shares: connecting (PostgreSQL or the embedded SQLite),
//! migrating, and the writes more than one service makes to the chat log and contacts.

pub mod api_keys;
pub mod audience;
pub mod audit;
pub mod chat;
pub mod connect;
pub mod consent;
pub mod contact_import;
pub mod contacts;
pub mod conversations;
pub mod deliveries;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod failures;
pub mod fanout;
pub mod firing;
pub mod imports;
pub mod install;
pub mod live;
pub mod media;
pub mod messages;
pub mod numbers;
pub mod occurrences;
pub mod outbound;
pub mod schedules;
pub mod tags;
pub mod templates;
pub mod users;
mod vocabulary;

pub use connect::{connect, migrate, ping, record_pool_metrics};
pub use error::{Result, StoreError};
pub use heydoc_entity as entity;

/// A database handle: a pool (PostgreSQL, or the embedded SQLite file).
pub type Db = sea_orm::DatabaseConnection;
/// An open transaction: pass it to store functions to make their writes one; `commit()` it.
pub type Tx = sea_orm::DatabaseTransaction;

/// Anything store functions run on: a `Db` or a `Tx`. Services name it in signatures; only the
/// store can query through it.
pub trait Conn: sea_orm::ConnectionTrait {}
impl<T: sea_orm::ConnectionTrait> Conn for T {}

/// Starts a transaction.
pub async fn begin(db: &Db) -> Result<Tx> {
    Ok(sea_orm::TransactionTrait::begin(db).await?)
}

/// Commits a transaction.
pub async fn commit(tx: Tx) -> Result<()> {
    Ok(tx.commit().await?)
}

/// The database's name as OpenTelemetry spells it (`db.system.name`).
pub fn system_name(db: &impl Conn) -> &'static str {
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "postgresql",
        sea_orm::DatabaseBackend::Sqlite => "sqlite",
        sea_orm::DatabaseBackend::MySql => "mysql",
    }
}
