//! The real `heydoc sender` process as an orchestrator sees it: health, readiness and metrics
//! on its admin address, and SIGTERM in the middle of a load of sends: it stops taking jobs,
//! lets the sends in flight finish within the grace period, records them and exits cleanly;
//! the next sender sends the rest, each once.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{count, free_port, sandbox, seed_sends, start_sender};
use heydoc_testkit::{Backend, TestDatabase};

const SENDS: i64 = 3000;
const GRACE_SECS: u64 = 5;

async fn get(url: &str) -> Option<(u16, String)> {
    let res = reqwest::get(url).await.ok()?;
    let status = res.status().as_u16();
    Some((status, res.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_finishes_in_flight_sends_within_the_grace_period_and_loses_nothing() {
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = db.conn.clone();
    seed_sends(&conn, 18880000000, SENDS).await;
    let (sandbox, sandbox_url) = sandbox(100).await;
    let prefix = format!("heydoc-lifecycle-{}", uuid::Uuid::new_v4().simple());
    let admin = format!("127.0.0.1:{}", free_port());
    let grace = GRACE_SECS.to_string();
    let mut first = start_sender(
        &db.url,
        &sandbox_url,
        &prefix,
        &[
            ("HEYDOC_ADMIN_ADDR", admin.as_str()),
            ("HEYDOC_SENDER__SHUTDOWN_GRACE_SECS", grace.as_str()),
        ],
    );

    // Ready once the database answers and the broker is connected.
    let started = Instant::now();
    loop {
        if let Some((200, body)) = get(&format!("http://{admin}/readyz")).await {
            assert!(body.contains("ready"), "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = get(&format!("http://{admin}/healthz")).await.unwrap();
    assert_eq!(status, 200);

    while sandbox.stats().accepted < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sends never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The sender's metrics moved with its sends. A publish is counted once the broker has
    // confirmed its whole batch, which on a loaded machine can come after the first sends.
    let needles = [
        "heydoc_sends_total{outcome=\"sent\"",
        "heydoc_pacing_wait_seconds_bucket",
        "heydoc_whatsapp_request_duration_seconds_count",
        "heydoc_queue_published_total",
        "heydoc_db_pool_connections{state=\"idle\"}",
        "heydoc_db_pool_max_connections",
    ];
    let asked = Instant::now();
    loop {
        let (status, metrics) = get(&format!("http://{admin}/metrics")).await.unwrap();
        assert_eq!(status, 200);
        let missing: Vec<_> = needles.iter().filter(|n| !metrics.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "{missing:?} missing from:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The grace period, and some slack for a loaded machine to write the last results.
    let exit = first.terminate(Duration::from_secs(GRACE_SECS + 10)).await;
    assert!(exit.success(), "a clean exit: {exit}");
    let at_stop = sandbox.stats().accepted;
    assert!(at_stop < SENDS as u64, "the sender finished before SIGTERM");
    // What was in flight finished and was recorded: nothing is left claimed or unknown.
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM messages WHERE status IN ('sending', 'unknown')"
        )
        .await,
        0
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await,
        at_stop as i64,
        "every accepted send was recorded before the exit"
    );

    let mut second = start_sender(&db.url, &sandbox_url, &prefix, &[]);
    let started = Instant::now();
    while count(&conn, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await < SENDS {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the rest never went out"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let stats = sandbox.stats();
    assert_eq!(stats.accepted, SENDS as u64);
    assert!(
        stats.by_callback.values().all(|&n| n == 1),
        "a delivery went out twice"
    );
}
