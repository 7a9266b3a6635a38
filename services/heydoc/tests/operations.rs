//! The real processes under real operations: `kill -9` of the sender, the scheduler and the
//! gateway in the middle of a paced campaign; a number held (its token refused) when the
//! sender is killed and its jobs lost; a scheduler whose host clock runs an hour ahead.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    admin_token, count, free_port, start_gateway, start_scheduler, start_scheduler_with,
    start_sender, wait_ok, APP_SECRET, ROUTE,
};
use heydoc_testkit::{Backend, TestDatabase};
use heydoc_whatsapp::sandbox::{Sandbox, SandboxConfig, SandboxKnobs};
use serde_json::json;

/// A sandbox that answers after `latency_ms` and posts its status webhooks to `webhooks`.
async fn sandbox_to(latency_ms: u64, webhooks: Option<String>) -> (Sandbox, String) {
    let sandbox = Sandbox::new(SandboxConfig {
        webhook_url: webhooks.clone(),
        app_secret: secrecy::SecretString::from(APP_SECRET),
        display_phone_number: ROUTE.into(),
        knobs: SandboxKnobs {
            latency_ms,
            status_webhooks: webhooks.is_some(),
            status_delay_ms: 50,
            ..SandboxKnobs::default()
        },
    });
    let url = format!(
        "http://{}",
        sandbox.clone().spawn("127.0.0.1:0").await.unwrap()
    );
    (sandbox, url)
}

/// `n` contacts from `first` on, all carrying tag 1.
async fn tagged_audience(db: &heydoc_store::Db, first: i64, n: i64) {
    heydoc_testkit::sql::execute(
        db,
        &format!(
            "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
             SELECT ({first} + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {n}) g;
             INSERT INTO tags (name, color, created_at) VALUES ('All', '#888888', now());
             INSERT INTO contact_tags (contact_id, tag_id) SELECT id, 1 FROM contacts;"
        ),
    )
    .await;
}

async fn wait_accepted(sandbox: &Sandbox, at_least: u64) {
    let started = Instant::now();
    while sandbox.stats().accepted < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{at_least} sends never came ({})",
            sandbox.stats().accepted
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn open_deliveries(db: &heydoc_store::Db) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM messages WHERE status IN ('queued','sending','retrying')",
    )
    .await
}

/// `kill -9` of the scheduler while it fans out, of the sender twice mid-send, and of the
/// gateway, during a campaign at 200 messages a second: every recipient is sent exactly once,
/// and `unknown` only marks calls that reached the Cloud API (a call in flight when its sender
/// died), never one that was claimed and not yet started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_any_service_during_a_paced_campaign_sends_everyone_exactly_once() {
    const AUDIENCE: i64 = 1_500;
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = db.conn.clone();
    tagged_audience(&conn, 16_610_000_000, AUDIENCE).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let (sandbox, sandbox_url) = sandbox_to(50, Some(format!("{base}/webhooks/whatsapp"))).await;
    let prefix = format!("heydoc-ops-{}", uuid::Uuid::new_v4().simple());
    let sender_env = [("WHATSAPP_MPS", "200")];

    let mut gateway = start_gateway(&db.url, &addr, &sandbox_url, &prefix);
    wait_ok(&format!("{base}/healthz"), Duration::from_secs(30)).await;
    let token = admin_token(&base).await;
    let mut scheduler = start_scheduler(&db.url);
    let mut sender = start_sender(&db.url, &sandbox_url, &prefix, &sender_env);

    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/scheduled-messages"))
        .bearer_auth(&token)
        .json(&json!({"message": "Flu shots are in", "tag_ids": [1],
                      "scheduled_time": chrono::Utc::now().to_rfc3339()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["success"], true, "{created}");

    // The scheduler dies as soon as its run is recorded (mid fan-out, or just after).
    let started = Instant::now();
    while count(&conn, "SELECT COUNT(*) FROM occurrences").await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "never fired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    scheduler.kill().unwrap();
    scheduler.wait().unwrap();
    let scheduler = start_scheduler(&db.url);

    let mut kills = 1;
    for (at, which) in [(300, "sender"), (700, "gateway"), (1_100, "sender")] {
        wait_accepted(&sandbox, at).await;
        match which {
            "sender" => {
                sender.kill().unwrap();
                sender.wait().unwrap();
                sender = start_sender(&db.url, &sandbox_url, &prefix, &sender_env);
            }
            _ => {
                gateway.kill().unwrap();
                gateway.wait().unwrap();
                gateway = start_gateway(&db.url, &addr, &sandbox_url, &prefix);
            }
        }
        kills += 1;
    }

    let started = Instant::now();
    loop {
        let open = open_deliveries(&conn).await;
        let made = count(&conn, "SELECT COUNT(*) FROM messages").await;
        if open == 0 && made == AUDIENCE {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{open} deliveries never finished ({made} made)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A send Meta took while its sender died is `unknown` until its status webhook arrives; one
    // that came while the gateway was restarting is posted again (as Meta does), a few seconds
    // later on a loaded machine.
    let sent_sql = "SELECT COUNT(*) FROM messages WHERE status IN ('sent','delivered','read')";
    let settled = Instant::now();
    while count(&conn, sent_sql).await < sandbox.stats().accepted as i64
        && settled.elapsed() < Duration::from_secs(90)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = sandbox.stats();
    let sent = count(&conn, sent_sql).await;
    let unknown =
        heydoc_testkit::sql::column(&conn, "SELECT id FROM messages WHERE status = 'unknown'")
            .await;
    let never_called: Vec<i64> = unknown
        .iter()
        .copied()
        .filter(|id| !stats.arrived.contains_key(&id.to_string()))
        .collect();
    println!(
        "{kills} kills: {sent} sent, {} unknown ({} of them never reached the API)",
        unknown.len(),
        never_called.len()
    );
    assert_eq!(
        sent + unknown.len() as i64,
        AUDIENCE,
        "every delivery is sent or unknown"
    );
    let twice: Vec<_> = stats.by_callback.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(
        stats.accepted as i64, sent,
        "what the API took is what is recorded sent"
    );
    // A claim commits before its call leaves (it must be durable first), so the sends whose
    // claim committed in the last moments before a sender died never reach the API: 1-3 per
    // kill alone, up to 6 with three of these tests sharing two cores (a debug build's claim
    // waits up to 80 ms for its runtime, though PostgreSQL answers it in under 20). The bound
    // is one pacing batch (a tenth of a second, 20 sends) per sender kill: claims that outlive
    // their sends (an error after the claim, a whole prefetch claimed ahead) are more. The
    // calls on the wire are read and answered by the sandbox, and their status webhooks make
    // them `sent`.
    assert!(
        never_called.len() <= 2 * 20,
        "unknown deliveries that never reached the API: {never_called:?}"
    );
    drop((gateway, scheduler, sender));
}

/// The number's token is refused (190) for 6 s, and meanwhile its sender is killed and the
/// jobs it had on the bus are lost. A new sender, started while the number is still held,
/// waits for the hold and then sends every delivery once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_held_when_its_sender_is_killed_sends_again_after_a_restart() {
    const SENDS: i64 = 400;
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = db.conn.clone();
    common::seed_sends(&conn, 16_620_000_000, SENDS).await;
    let (sandbox, sandbox_url) = sandbox_to(0, None).await;
    let prefix = format!("heydoc-hold-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("WHATSAPP_MPS", "20"),
        ("HEYDOC_SENDER__BREAKER_PROBE_SECS", "3"),
        ("HEYDOC_SENDER__STALE_ENQUEUE_SECS", "2"),
    ];
    let mut sender = start_sender(&db.url, &sandbox_url, &prefix, &env);
    wait_accepted(&sandbox, 40).await;
    sandbox.set_knobs(SandboxKnobs {
        error_rates: [("190".to_string(), 1.0)].into_iter().collect(),
        status_webhooks: false,
        ..SandboxKnobs::default()
    });
    let outage = Instant::now();
    let started = Instant::now();
    while count(
        &conn,
        "SELECT COUNT(*) FROM business_numbers WHERE state = 'paused' AND held_until IS NOT NULL",
    )
    .await
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the number was never held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sender.kill().unwrap();
    sender.wait().unwrap();
    // Whatever jobs it had on the bus are lost with it.
    common::purge_queues(&prefix).await;
    sender = start_sender(&db.url, &sandbox_url, &prefix, &env);
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(outage.elapsed())).await;
    sandbox.set_knobs(SandboxKnobs {
        status_webhooks: false,
        ..SandboxKnobs::default()
    });
    let started = Instant::now();
    loop {
        let sent = count(&conn, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await;
        if sent == SENDS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{} of {SENDS} missing after the outage; number: {:?}; not sent: {:?}",
            SENDS - sent,
            heydoc_testkit::sql::column(
                &conn,
                "SELECT COALESCE(CAST(EXTRACT(EPOCH FROM held_until) AS BIGINT), 0) FROM business_numbers"
            )
            .await,
            heydoc_testkit::sql::strings(
                &conn,
                "SELECT id || ' ' || status || ' ' || attempts || ' ' || COALESCE(last_error_reason, '')
                 FROM messages WHERE status <> 'sent' LIMIT 5"
            )
            .await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = sandbox.stats();
    assert!(stats.by_callback.values().all(|&n| n == 1), "sent twice");
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM business_numbers WHERE state = 'active' AND held_until IS NULL"
        )
        .await,
        1,
        "the number is active again"
    );
    drop(sender);
}

/// A scheduler on a host whose clock runs an hour ahead: a schedule due in half an hour is
/// not fired (what is due is the database's clock's call); one due now is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_whose_clock_runs_an_hour_ahead_fires_nothing_early() {
    let Some(faketime) = common::libfaketime() else {
        panic!("libfaketime is not installed (make test installs the faketime package)");
    };
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let conn = db.conn.clone();
    heydoc_testkit::sql::execute(
        &conn,
        "INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                         occurrence_count, status, next_run_at, created_by, created_at, updated_at)
         VALUES ('later', '[]', '[]', now() + interval '30 minutes', NULL, 'UTC', 0, 'pending',
                 now() + interval '30 minutes', 'test', now(), now()),
                ('now', '[]', '[]', now(), NULL, 'UTC', 0, 'pending', now(), 'test', now(), now());",
    )
    .await;
    let preload = faketime.display().to_string();
    let scheduler = start_scheduler_with(
        &db.url,
        &[
            ("LD_PRELOAD", preload.as_str()),
            ("FAKETIME", "+1h"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let started = Instant::now();
    while count(&conn, "SELECT COUNT(*) FROM occurrences").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the due schedule never fired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few more ticks for the early one to fire, were the host's clock in charge.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fired = heydoc_testkit::sql::column(
        &conn,
        "SELECT CAST(s.id AS BIGINT) FROM occurrences o JOIN scheduled_messages s ON s.id = o.schedule_id",
    )
    .await;
    assert_eq!(fired.len(), 1, "only the schedule due now fired: {fired:?}");
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM occurrences o JOIN scheduled_messages s ON s.id = o.schedule_id WHERE s.message = 'now'"
        )
        .await,
        1
    );
    drop(scheduler);
}
