//! What crashes and odd answers leave to the store, against a real database: a fan-out whose
//! lease ran out while another scheduler took it over, and send results the database refuses.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use heydoc_store::deliveries::{self, Outcome, SendResult};
use heydoc_store::fanout::{self, Fanout};
use heydoc_testkit::{Backend, TestDatabase};
use sea_orm::ConnectionTrait;

async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    heydoc_testkit::sql::scalar(db, sql).await
}

/// Two schedulers expand one occurrence at once after the first one's lease ran out: the one
/// whose lease was taken over stops at its next chunk, so every recipient gets one delivery,
/// counted once (in the run's `planned` and in the contact's counters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_whose_lease_was_taken_over_stops_and_counts_nothing_twice() {
    const AUDIENCE: i64 = 5_000;
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = &db.conn;
    conn.execute_unprepared(&format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT (15551000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {AUDIENCE}) g;
         INSERT INTO tags (name, color, created_at) VALUES ('All', '#888888', now());
         INSERT INTO contact_tags (contact_id, tag_id) SELECT id, 1 FROM contacts;
         INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                         occurrence_count, status, next_run_at, created_by, created_at, updated_at)
         VALUES ('Flu shots are in', '[]', '[1]', now(), NULL, 'UTC', 1, 'pending', NULL, 'test', now(), now());
         INSERT INTO occurrences (schedule_id, fire_at, state, cursor, planned, created_at, updated_at)
         VALUES (1, now(), 'fanning_out', NULL, 0, now() - interval '1 minute', now() - interval '1 minute');"
    ))
    .await
    .unwrap();
    let ctx = |chunk| Fanout {
        db: conn.clone(),
        chunk,
        lease_secs: 1,
        business_number: "15550001111".into(),
        skip_us_marketing: false,
    };
    let (first, second) = (ctx(500), ctx(500));
    let slow = fanout::lease(&first).await.unwrap().unwrap();
    // Its lease runs out before it starts; another scheduler takes the occurrence over.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let taken = fanout::lease(&second).await.unwrap().unwrap();
    assert_eq!(slow.id, taken.id);
    let (a, b) = tokio::join!(fanout::expand(&first, slow), fanout::expand(&second, taken));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        scalar(conn, "SELECT COUNT(*) FROM messages").await,
        AUDIENCE,
        "one delivery each"
    );
    assert_eq!(
        scalar(conn, "SELECT CAST(planned AS BIGINT) FROM occurrences").await,
        AUDIENCE,
        "the run's planned count"
    );
    assert_eq!(
        scalar(
            conn,
            "SELECT CAST(SUM(message_count) AS BIGINT) FROM contacts"
        )
        .await,
        AUDIENCE,
        "each contact's counter moved once"
    );
}

fn result(id: i64, outcome: Outcome) -> SendResult {
    SendResult {
        id,
        contact_id: 1,
        outcome,
        suppress: None,
        pause_campaign: None,
    }
}

async fn sending_rows(db: &sea_orm::DatabaseConnection, n: i64) {
    db.execute_unprepared(&format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         VALUES ('15550000001', '', false, '{{}}', CURRENT_TIMESTAMP, 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
         WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {n})
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, origin, updated_at)
         SELECT 1, 'outgoing', 'b', '15550000001', 'text', 'hi', CURRENT_TIMESTAMP, true, 'sending', 1, 'api', CURRENT_TIMESTAMP
         FROM seq;"
    ))
    .await
    .unwrap();
}

/// Meta's error text is not ours: a NUL in it (which PostgreSQL's text refuses) is dropped,
/// and the batch is written.
async fn a_reason_with_a_nul_is_written(backend: Backend) {
    let db = TestDatabase::create(backend).await.unwrap();
    let conn = &db.conn;
    sending_rows(conn, 2).await;
    let results = [
        result(
            1,
            Outcome::Failed {
                code: Some(131026),
                reason: "(131026) Message\0 undeliverable".into(),
            },
        ),
        result(
            2,
            Outcome::Sent {
                wamid: "wamid.A".into(),
            },
        ),
    ];
    deliveries::record(conn, &results, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        scalar(
            conn,
            "SELECT COUNT(*) FROM messages WHERE status IN ('failed', 'sent')"
        )
        .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_with_a_nul_is_written_postgres() {
    a_reason_with_a_nul_is_written(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_with_a_nul_is_written_sqlite() {
    a_reason_with_a_nul_is_written(Backend::Sqlite).await
}

/// A result the database can never take (a message id longer than its column) is set aside,
/// `unknown` with the reason; the rest of its batch is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_database_refuses_is_set_aside_and_the_rest_written() {
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = &db.conn;
    sending_rows(conn, 3).await;
    let results = [
        result(
            1,
            Outcome::Sent {
                wamid: "wamid.good1".into(),
            },
        ),
        result(
            2,
            Outcome::Sent {
                wamid: format!("wamid.{}", "X".repeat(300)),
            },
        ),
        result(
            3,
            Outcome::Sent {
                wamid: "wamid.good3".into(),
            },
        ),
    ];
    assert!(
        deliveries::record(conn, &results, chrono::Utc::now())
            .await
            .is_err(),
        "the batch cannot be written whole"
    );
    let aside = deliveries::record_apart(conn, &results, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(aside.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        scalar(conn, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await,
        2
    );
    assert_eq!(
        scalar(
            conn,
            "SELECT COUNT(*) FROM messages WHERE id = 2 AND status = 'unknown'
               AND last_error_reason LIKE '%could not be recorded%'"
        )
        .await,
        1
    );
}

/// A claim whose answer was lost (the database committed it, the sender never heard): undone,
/// its rows wait again, due now, with the attempt given back, so the send happens once, later,
/// instead of the rows turning `unknown` though no call was made.
async fn a_claim_whose_answer_was_lost_is_undone(backend: Backend) {
    let db = TestDatabase::create(backend).await.unwrap();
    let conn = &db.conn;
    sending_rows(conn, 2).await;
    conn.execute_unprepared("UPDATE messages SET status = 'queued', attempts = 0")
        .await
        .unwrap();
    let at = chrono::Utc::now();
    let claimed = deliveries::claim(
        conn,
        &[
            deliveries::ClaimRequest {
                id: 1,
                traceparent: None,
            },
            deliveries::ClaimRequest {
                id: 2,
                traceparent: None,
            },
        ],
        at,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 2);
    // Row 2 was meanwhile recorded by someone else: it is not touched.
    conn.execute_unprepared("UPDATE messages SET status = 'sent' WHERE id = 2")
        .await
        .unwrap();
    let released = deliveries::release_claims(conn, &[1, 2], at, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(
        scalar(
            conn,
            "SELECT COUNT(*) FROM messages WHERE id = 1 AND status = 'retrying' AND attempts = 0
               AND enqueued_at IS NULL AND next_attempt_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            conn,
            "SELECT COUNT(*) FROM messages WHERE id = 2 AND status = 'sent'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_was_lost_is_undone_postgres() {
    a_claim_whose_answer_was_lost_is_undone(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_was_lost_is_undone_sqlite() {
    a_claim_whose_answer_was_lost_is_undone(Backend::Sqlite).await
}
