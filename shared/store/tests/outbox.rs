//! The outbox's stamps against a real database (PostgreSQL and SQLite).

#![allow(clippy::unwrap_used)]

use heydoc_store::deliveries;
use heydoc_testkit::{Backend, TestDatabase};
use sea_orm::{ConnectionTrait, Statement};

async fn enqueued(db: &sea_orm::DatabaseConnection, id: i64) -> bool {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT enqueued_at IS NOT NULL FROM messages WHERE id = {id}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<bool>(0).unwrap()
}

/// A publish confirmed late (the gateway's, after commit) stamps a row still queued, but not one
/// the sender has meanwhile sent and handed back as a retry: that one stays for the relay.
async fn a_late_confirm_does_not_hide_a_retry(backend: Backend) {
    let db = TestDatabase::create(backend).await.unwrap();
    let conn = &db.conn;
    conn.execute_unprepared(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         VALUES ('15550000001', '', false, '{}', CURRENT_TIMESTAMP, 2, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, next_attempt_at, origin, updated_at)
         VALUES (1, 'outgoing', 'b', '15550000001', 'text', 'queued one', CURRENT_TIMESTAMP, true, 'queued', 0, NULL, 'api', CURRENT_TIMESTAMP),
                (1, 'outgoing', 'b', '15550000001', 'text', 'retry', CURRENT_TIMESTAMP, true, 'retrying', 1, CURRENT_TIMESTAMP, 'api', CURRENT_TIMESTAMP);",
    )
    .await
    .unwrap();
    deliveries::mark_enqueued(conn, &[1, 2], chrono::Utc::now())
        .await
        .unwrap();
    assert!(enqueued(conn, 1).await, "the queued row is on the bus");
    assert!(!enqueued(conn, 2).await, "the retry stays in the outbox");
    let leased = deliveries::lease_unrelayed(
        conn,
        "b",
        10,
        chrono::Utc::now(),
        &mut deliveries::RetryWatch::default(),
    )
    .await
    .unwrap();
    assert_eq!(leased.iter().map(|l| l.id).collect::<Vec<_>>(), vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_confirm_does_not_hide_a_retry_postgres() {
    a_late_confirm_does_not_hide_a_retry(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_confirm_does_not_hide_a_retry_sqlite() {
    a_late_confirm_does_not_hide_a_retry(Backend::Sqlite).await
}
