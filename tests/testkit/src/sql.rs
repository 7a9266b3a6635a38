//! Raw SQL for tests that look into (or seed) the database directly; services never do.

use heydoc_store::Db;
use sea_orm::{ConnectionTrait, Statement};

/// Runs statements (`;`-separated), panicking on failure.
pub async fn execute(db: &Db, sql: &str) {
    db.execute_unprepared(sql).await.expect("test SQL");
}

/// The first column of the first row, as an integer.
pub async fn scalar(db: &Db, sql: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("test SQL")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

/// The first column of every row, as integers.
pub async fn column(db: &Db, sql: &str) -> Vec<i64> {
    first_column(db, sql).await
}

/// The first column of every row, as text.
pub async fn strings(db: &Db, sql: &str) -> Vec<String> {
    first_column(db, sql).await
}

async fn first_column<T: sea_orm::TryGetable>(db: &Db, sql: &str) -> Vec<T> {
    db.query_all(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("test SQL")
        .into_iter()
        .map(|r| {
            r.try_get_by_index::<T>(0)
                .expect("a value of the asked type")
        })
        .collect()
}
