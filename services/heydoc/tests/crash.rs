//! Crash safety of the real `heydoc sender` process: SIGKILL it in the middle of 2,000 sends and
//! start it again. Every message is sent, none twice; the only exceptions are the sends that
//! were in flight at the kill, recorded as `unknown` (counted and printed).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{count, sandbox, seed_sends, start_scheduler, start_sender};
use heydoc_testkit::{Backend, TestDatabase};

const SENDS: i64 = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_loses_nothing_and_sends_nothing_twice() {
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = db.conn.clone();
    seed_sends(&conn, 16660000000, SENDS).await;
    let (sandbox, sandbox_url) = sandbox(20).await;
    let prefix = format!("heydoc-crash-{}", uuid::Uuid::new_v4().simple());

    let mut first = start_sender(&db.url, &sandbox_url, &prefix, &[]);
    // Let it get well into the run, then kill it without warning.
    let started = Instant::now();
    while sandbox.stats().accepted < 400 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = sandbox.stats().accepted;
    assert!(
        at_kill < SENDS as u64,
        "the sender finished before it could be killed"
    );

    let mut second = start_sender(&db.url, &sandbox_url, &prefix, &[]);
    let started = Instant::now();
    loop {
        let open = count(
            &conn,
            "SELECT COUNT(*) FROM messages WHERE status IN ('queued','sending','retrying')",
        )
        .await;
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{open} deliveries never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();

    let sent = count(&conn, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await;
    let unknown = count(
        &conn,
        "SELECT COUNT(*) FROM messages WHERE status = 'unknown'",
    )
    .await;
    let stats = sandbox.stats();
    println!("killed after {at_kill} accepted; finished with {sent} sent and {unknown} unknown");
    assert_eq!(
        sent + unknown,
        SENDS,
        "every delivery is sent or recorded as unknown"
    );
    let twice: Vec<_> = stats.by_callback.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    // Every delivery recorded as sent reached the sandbox exactly once.
    let rows =
        heydoc_testkit::sql::column(&conn, "SELECT id FROM messages WHERE status = 'sent'").await;
    for id in rows {
        assert_eq!(
            stats.by_callback.get(&id.to_string()),
            Some(&1),
            "delivery {id}"
        );
    }
    assert!(
        unknown <= 64 + 400,
        "unknown is bounded by what can be in flight: {unknown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_a_50k_fan_out_gives_everyone_exactly_one_delivery() {
    const AUDIENCE: i64 = 50_000;
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = db.conn.clone();
    heydoc_testkit::sql::execute(
        &conn,
        &format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT (17770000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {AUDIENCE}) g;
         INSERT INTO tags (name, color, created_at) VALUES ('All', '#888888', now());
         INSERT INTO contact_tags (contact_id, tag_id) SELECT id, 1 FROM contacts;
         INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                         occurrence_count, status, next_run_at, created_by, created_at, updated_at)
         VALUES ('Flu shots are in', '[]', '[1]', now(), NULL, 'UTC', 0, 'pending', now(), 'admin', now(), now());"
    ),
    )
    .await;
    let mut first = start_scheduler(&db.url);
    let started = Instant::now();
    loop {
        let made = count(&conn, "SELECT COUNT(*) FROM messages").await;
        if made >= 5_000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the fan-out did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL, mid fan-out
    first.wait().unwrap();
    let at_kill = count(&conn, "SELECT COUNT(*) FROM messages").await;
    assert!(
        at_kill < AUDIENCE,
        "the fan-out finished before it could be killed"
    );

    let mut second = start_scheduler(&db.url);
    let started = Instant::now();
    loop {
        let done = count(
            &conn,
            "SELECT COUNT(*) FROM occurrences WHERE state = 'done'",
        )
        .await;
        if done == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the fan-out never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    println!("killed at {at_kill} deliveries; resumed to the end");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM occurrences").await, 1);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM messages").await,
        AUDIENCE
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(DISTINCT contact_id) FROM messages").await,
        AUDIENCE
    );
    assert_eq!(
        count(&conn, "SELECT planned::bigint FROM occurrences").await,
        AUDIENCE
    );
}
