//! Sending at WhatsApp's real pace (20-500 msg/s, not flat out): campaign control that holds
//! at every step, conversational sends ahead of campaigns, campaigns sharing a number, a limit
//! that adapts to throttling, a number that stops on a bad token without failing anyone, a
//! template problem that pauses its campaign, lost jobs recovered exactly, and schedules that
//! fire on time during a long fan-out. Timings are checked with generous bounds and counts.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_testkit::{json, Backend};
use heydoc_whatsapp::sandbox::SandboxKnobs;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use heydoc_e2e::paced::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_40_per_second_a_pause_holds_resume_drains_at_full_rate_and_cancel_ends_it() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(40, |_| {}).await;
    let id = tagged_campaign(
        &stack,
        &api,
        "Check-up",
        919_700_000_000,
        2_000,
        "Your yearly check-up is due",
    )
    .await;
    wait_accepted(&stack, 150).await;

    // Paused: what was in flight lands, then nothing for 20 s, and the bus does not grow.
    set_status(&api, id, "paused").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_at = stack.sandbox.stats().accepted;
    let depth_at = stack.bus.ready(&stack.route).await.unwrap().unwrap();
    let mut deepest = depth_at;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        deepest = deepest.max(stack.bus.ready(&stack.route).await.unwrap().unwrap());
    }
    assert_eq!(
        stack.sandbox.stats().accepted,
        held_at,
        "nothing is sent while paused"
    );
    assert!(
        deepest <= depth_at,
        "the queue grew while paused: {depth_at} -> {deepest}"
    );

    // Resumed: it drains at the number's full rate, not a trickle: 40/s less the pacer's 4%
    // headroom is at most 38.4/s. On a loaded two-core CI machine a 10 s window once measured
    // 35.6/s, so the bound is generous (32/s): a resume that came back at half rate, or one
    // batch per refill, still fails it.
    set_status(&api, id, "pending").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rate = rate_over(&stack, Duration::from_secs(15)).await;
    assert!(rate >= 0.8 * 40.0, "resumed at {rate:.1}/s");
    assert!(
        stack.sandbox.stats().max_per_second <= 40,
        "a second above the limit: {}",
        stack.sandbox.stats().max_per_second
    );

    // Cancelled while running: nothing more goes out, the rest is skipped with the reason.
    set_status(&api, id, "cancelled").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cancelled_at = stack.sandbox.stats().accepted;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.sandbox.stats().accepted, cancelled_at);
    assert!(cancelled_at < 2_000);
    let db = &stack.app.db.conn;
    let skipped = scalar(
        db,
        "SELECT COUNT(*) FROM messages WHERE status = 'skipped' AND last_error_reason = 'the campaign was cancelled'",
    )
    .await;
    assert_eq!(skipped as u64 + cancelled_at, 2_000);
    no_double_sends(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_campaign_an_api_opt_out_a_stop_and_a_deleted_paused_campaign_send_nothing_more() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(40, |_| {}).await;
    const FIRST: i64 = 919_710_000_000;
    let _ = tagged_campaign(&stack, &api, "Flu", FIRST, 400, "Flu shots are in").await;
    wait_accepted(&stack, 40).await;
    // The last two recipients (sent last, in id order) opt out while it runs: one by the API,
    // one by writing STOP.
    let by_api = (FIRST + 400).to_string();
    let by_stop = (FIRST + 399).to_string();
    let (s, body) = api
        .put(
            &format!("/api/contacts/{by_api}"),
            &json!({"opted_out": true}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    stack.patient_writes(&by_stop, "Patient", "STOP").await;
    eventually(LIMIT, "the flu campaign finished", || async {
        let stats = stack.sandbox.stats();
        (stats.by_recipient.contains_key(&(FIRST + 398).to_string())).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = stack.sandbox.stats();
    assert!(
        !stats.by_recipient.contains_key(&by_api),
        "the API opt-out got the campaign"
    );
    assert_ne!(
        stats.texts.get(&by_stop).map(String::as_str),
        Some("Flu shots are in"),
        "STOP got the campaign"
    );
    let db = &stack.app.db.conn;
    let opted = scalar(
        db,
        &format!("SELECT COUNT(*) FROM messages WHERE receiver_phone IN ('{by_api}', '{by_stop}') AND origin = 'occurrence' AND status = 'skipped'"),
    )
    .await;
    assert_eq!(opted, 2, "both deliveries skipped with the reason");

    // A campaign paused and then deleted sends none of what it held.
    const SECOND: i64 = 919_720_000_000;
    let id = tagged_campaign(&stack, &api, "Diet", SECOND, 300, "Diet plan inside").await;
    eventually(LIMIT, "the diet campaign started", || async {
        (accepted_in(&stack, SECOND, 300) >= 20).then_some(())
    })
    .await;
    set_status(&api, id, "paused").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, body) = api.delete(&format!("/api/scheduled-messages/{id}")).await;
    assert_eq!(s, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_delete = accepted_in(&stack, SECOND, 300);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        accepted_in(&stack, SECOND, 300),
        at_delete,
        "a deleted campaign sent more"
    );
    assert!(at_delete < 300);
    let skipped = scalar(
        db,
        "SELECT COUNT(*) FROM messages WHERE status = 'skipped' AND last_error_reason = 'the campaign was deleted'",
    )
    .await;
    assert_eq!(skipped as u64 + at_delete, 300);
    no_double_sends(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_send_overtakes_a_5000_campaign_and_a_small_campaign_is_not_stuck_behind_it() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(50, |_| {}).await;
    const BIG: i64 = 919_730_000_000;
    const SMALL: i64 = 919_740_000_000;
    let big = audience(&stack, &api, "Everyone", BIG, 5_000).await;
    let small = audience(&stack, &api, "Pregnancy", SMALL, 100).await;
    let _ = campaign(
        &api,
        json!({"message": "Clinic news", "tag_ids": [big], "scheduled_time": soon()}),
    )
    .await;
    wait_accepted(&stack, 100).await;
    let _ = campaign(
        &api,
        json!({"message": "Antenatal class on Friday", "tag_ids": [small], "scheduled_time": soon()}),
    )
    .await;

    // A receptionist's send during the backlog reaches WhatsApp within 2 s.
    let sent_at = Instant::now();
    let (s, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919750000001", "message": "Your report is ready"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    eventually(Duration::from_secs(10), "the API send", || async {
        stack
            .sandbox
            .stats()
            .by_recipient
            .contains_key("919750000001")
            .then_some(())
    })
    .await;
    let took = sent_at.elapsed();
    assert!(took < Duration::from_secs(2), "the API send took {took:?}");

    // The small campaign shares the number and finishes long before the big one.
    eventually(
        Duration::from_secs(30),
        "the small campaign finished",
        || async { (accepted_in(&stack, SMALL, 100) == 100).then_some(()) },
    )
    .await;
    let big_done = accepted_in(&stack, BIG, 5_000);
    assert!(big_done < 3_000, "the big one had sent {big_done}");
    assert!(big_done > 100, "the big one progressed too: {big_done}");
    no_double_sends(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occasional_130429_costs_little_and_a_lower_real_limit_is_found() {
    let _pace = one_at_a_time().await;
    // 1 send in 40 refused as over the throughput, at 100/s: still at least 80% of it. (A
    // debug build on 2 shared cores measured 383/s at 500/s and once 153/s at 200/s, right
    // after the rest of the suite, with nothing refused-related wrong; the property is the
    // same at any pace the machine sustains.)
    const MPS: f64 = 100.0;
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.sender.mps = MPS as u32;
    })
    .await;
    stack.sandbox.set_knobs(SandboxKnobs {
        error_rates: [("130429".to_string(), 0.025)].into_iter().collect(),
        status_webhooks: false,
        ..SandboxKnobs::default()
    });
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let _ = tagged_campaign(
        &stack,
        &api,
        "All",
        919_760_000_000,
        4_000,
        "Open on Sunday",
    )
    .await;
    wait_accepted(&stack, 200).await;
    let rate = rate_over(&stack, Duration::from_secs(5)).await;
    assert!(rate >= 0.8 * MPS, "{rate:.0}/s with 1 in 40 refused");
    no_double_sends(&stack);
    drop(stack);

    // Configured at 1,000/s on a number whose real limit is 200/s: it settles near 200/s.
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.sender.mps = 1_000;
    })
    .await;
    stack.sandbox.set_knobs(SandboxKnobs {
        max_mps: 200,
        status_webhooks: false,
        ..SandboxKnobs::default()
    });
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let _ = tagged_campaign(
        &stack,
        &api,
        "All",
        919_770_000_000,
        8_000,
        "Open on Sunday",
    )
    .await;
    wait_accepted(&stack, 200).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refused_before = stack
        .sandbox
        .stats()
        .errors
        .get("130429")
        .copied()
        .unwrap_or(0);
    let rate = rate_over(&stack, Duration::from_secs(5)).await;
    let refused = stack
        .sandbox
        .stats()
        .errors
        .get("130429")
        .copied()
        .unwrap_or(0)
        - refused_before;
    assert!(
        (130.0..=201.0).contains(&rate),
        "settled at {rate:.0}/s against a real limit of 200/s"
    );
    assert!(
        (refused as f64) < rate * 5.0 * 0.5,
        "{refused} refusals in 5 s at {rate:.0}/s: the limit did not settle"
    );
    no_double_sends(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_for_45_s_pauses_the_number_and_nobody_fails() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(50, |s| s.sender.breaker_probe_secs = 5).await;
    let id = tagged_campaign(
        &stack,
        &api,
        "All",
        919_780_000_000,
        600,
        "Vaccination camp on Monday",
    )
    .await;
    wait_accepted(&stack, 100).await;
    stack.sandbox.set_knobs(SandboxKnobs {
        error_rates: [("190".to_string(), 1.0)].into_iter().collect(),
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    // The number shows as paused, with Meta's reason, while it cannot send.
    let numbers = eventually(Duration::from_secs(20), "the number paused", || async {
        let (_, n) = api.get("/api/numbers").await;
        (n[0]["state"] == "paused").then_some(n)
    })
    .await;
    assert!(
        numbers[0]["state_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("190"),
        "{numbers}"
    );
    tokio::time::sleep(Duration::from_secs(40)).await;
    let refused = stack
        .sandbox
        .stats()
        .errors
        .get("190")
        .copied()
        .unwrap_or(0);
    stack.sandbox.set_knobs(SandboxKnobs {
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    // The number stopped: a probe every 5 s, not 50 refusals a second.
    assert!(refused < 200, "{refused} sends refused during the outage");
    eventually(LIMIT, "everyone sent after the outage", || async {
        (accepted_in(&stack, 919_780_000_000, 600) == 600).then_some(())
    })
    .await;
    let (_, numbers) = api.get("/api/numbers").await;
    assert_eq!(numbers[0]["state"], "active", "{numbers}");
    let db = &stack.app.db.conn;
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM messages WHERE status IN ('failed', 'unknown', 'skipped')"
        )
        .await,
        0,
        "nothing failed"
    );
    assert!(
        scalar(
            db,
            "SELECT CAST(COALESCE(MAX(attempts), 0) AS BIGINT) FROM messages"
        )
        .await
            <= 2,
        "waiting for the number spent no attempts"
    );
    let (_, detail) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert_ne!(detail["status"], "paused");
    no_double_sends(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_template_pauses_its_campaign_with_the_reason() {
    let _pace = one_at_a_time().await;
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.sender.mps = 50;
    })
    .await;
    stack.start_scheduler().await;
    stack.sandbox.set_knobs(SandboxKnobs {
        error_rates: [("132015".to_string(), 1.0)].into_iter().collect(),
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    let api = stack.app.admin().await;
    let tag = audience(&stack, &api, "All", 919_790_000_000, 30).await;
    let id = campaign(
        &api,
        json!({"template": {"name": "checkup_reminder", "language": "en"}, "tag_ids": [tag], "scheduled_time": soon()}),
    )
    .await;
    let detail = eventually(LIMIT, "the campaign paused by the template", || async {
        let (_, d) = api.get(&format!("/api/scheduled-messages/{id}")).await;
        (d["status"] == "paused").then_some(d)
    })
    .await;
    let reason = detail["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("132015"), "{detail}");
    // The campaign page says why, too.
    let page = api.page(&format!("/campaigns/{id}")).await;
    assert!(
        page.contains("Paused by HeyDoc") && page.contains("132015"),
        "the campaign page does not say why"
    );
    let db = &stack.app.db.conn;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = stack
        .sandbox
        .stats()
        .errors
        .get("132015")
        .copied()
        .unwrap_or(0);
    assert!(refused < 30, "every recipient was tried: {refused}");
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM messages WHERE status = 'failed'").await,
        0
    );
    // Meta approves it again; a person resumes the campaign: everyone gets it, once.
    stack.sandbox.set_knobs(SandboxKnobs {
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    set_status(&api, id, "pending").await;
    eventually(LIMIT, "everyone sent after the resume", || async {
        (accepted_in(&stack, 919_790_000_000, 30) == 30).then_some(())
    })
    .await;
    let (_, detail) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert!(detail.get("status_reason").is_none(), "{detail}");
    no_double_sends(&stack);
}

/// Rows the bus was said to hold but does not (a relay killed between lease and confirm, a
/// dead-lettered job, a purged queue) are found once the bus holds nothing ready, and sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_jobs_are_recovered_and_sent_once() {
    let _pace = one_at_a_time().await;
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.sender.mps = 40;
        s.sender.stale_enqueue_secs = 2;
    })
    .await;
    let db = stack.app.db.conn.clone();
    // Queued and retrying rows marked as published, with no job anywhere.
    db.execute_unprepared(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT (919800100000 + g)::text, '', false, '{}'::json, now(), 1, 0, now(), now() FROM generate_series(1, 40) g;
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, origin, updated_at, enqueued_at, next_attempt_at)
         SELECT id, 'outgoing', '15550001111', phone, 'text', 'lost job', now(), true,
                CASE WHEN id % 2 = 0 THEN 'queued' ELSE 'retrying' END, 1, 'api', now(), now() - interval '1 minute',
                now() - interval '1 second'
         FROM contacts WHERE phone LIKE '9198001%';",
    )
    .await
    .unwrap();
    eventually(LIMIT, "the 40 lost rows sent", || async {
        (accepted_in(&stack, 919_800_100_000, 40) == 40).then_some(())
    })
    .await;

    // A job that comes early for a retry (a consumer whose clock is behind, a duplicate): the
    // row goes back to the outbox and is sent once when due, not lost.
    db.execute_unprepared(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         VALUES ('919800200001', '', false, '{}'::json, now(), 1, 0, now(), now());
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, origin, updated_at, enqueued_at, next_attempt_at)
         SELECT id, 'outgoing', '15550001111', phone, 'text', 'early job', now(), true, 'retrying', 1, 'api', now(),
                now(), now() + interval '4 seconds'
         FROM contacts WHERE phone = '919800200001';",
    )
    .await
    .unwrap();
    let id = scalar(
        &db,
        "SELECT id FROM messages WHERE message_text = 'early job'",
    )
    .await;
    let due = Instant::now() + Duration::from_secs(4);
    stack
        .bus
        .publish(&stack.route, &[heydoc_queue::Job::new(id)])
        .await
        .unwrap();
    eventually(LIMIT, "the early retry sent when due", || async {
        stack
            .sandbox
            .stats()
            .by_recipient
            .contains_key("919800200001")
            .then_some(())
    })
    .await;
    assert!(
        Instant::now() + Duration::from_millis(500) >= due,
        "a retry was sent before it was due"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    no_double_sends(&stack);
    stack.stop_sender().await;
}

/// The embedded default restarted: the in-process bus starts empty, and what it held is sent at
/// once (not after the stale time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_restart_sends_queued_work_at_once() {
    let _pace = one_at_a_time().await;
    let mut stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |s| {
        s.sender.mps = 50;
        s.sender.stale_enqueue_secs = 3_600;
    })
    .await;
    stack.stop_sender().await;
    let db = stack.app.db.conn.clone();
    db.execute_unprepared(
        "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < 20)
         INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT CAST(919800300000 + g AS TEXT), '', 0, '{}', strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), 1, 0,
                strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now') FROM seq;
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, origin, updated_at, enqueued_at)
         SELECT id, 'outgoing', '15550001111', phone, 'text', 'before the restart',
                strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), 1, 'queued', 0, 'api',
                strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
         FROM contacts WHERE phone LIKE '9198003%';",
    )
    .await
    .unwrap();
    let restarted = Instant::now();
    stack.start_sender();
    eventually(Duration::from_secs(30), "the 20 rows sent", || async {
        (accepted_in(&stack, 919_800_300_000, 20) == 20).then_some(())
    })
    .await;
    assert!(restarted.elapsed() < Duration::from_secs(15));
    no_double_sends(&stack);
}

/// A one-recipient schedule due while a 100,000-recipient campaign fans out and sends fires on
/// time, and its message overtakes the big campaign's backlog.
async fn a_schedule_fires_on_time_during_a_big_fan_out(backend: Backend, kind: BusKind) {
    let mut stack = Stack::spawn(backend, kind, |_| {}).await;
    stack.sandbox.set_knobs(SandboxKnobs {
        status_webhooks: false,
        ..SandboxKnobs::default()
    });
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    const BIG: i64 = 919_810_000_000;
    let _ = tagged_campaign(&stack, &api, "Everyone", BIG, 100_000, "Annual report").await;
    wait_accepted(&stack, 1).await;
    let due = Utc::now() + chrono::Duration::seconds(3);
    let small = campaign(
        &api,
        json!({"message": "Your appointment is in an hour", "recipients": ["919820000001"], "scheduled_time": due.to_rfc3339()}),
    )
    .await;
    eventually(LIMIT, "the small schedule's message sent", || async {
        stack
            .sandbox
            .stats()
            .by_recipient
            .contains_key("919820000001")
            .then_some(())
    })
    .await;
    let sent_at = Utc::now();
    let big_sent = accepted_in(&stack, BIG, 100_000);
    let db = &stack.app.db.conn;
    let runs = scalar(
        db,
        &format!("SELECT COUNT(*) FROM occurrences WHERE schedule_id = {small}"),
    )
    .await;
    assert_eq!(runs, 1);
    // Generous: before, it came 80 s late, after the whole big campaign.
    let late = (sent_at - due).num_milliseconds();
    assert!(late < 20_000, "sent {late} ms after it was due");
    assert!(
        big_sent < 100_000,
        "it waited for the whole big campaign ({big_sent} sent)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_on_time_during_a_100k_fan_out_split() {
    let _pace = one_at_a_time().await;
    a_schedule_fires_on_time_during_a_big_fan_out(Backend::Postgres, BusKind::Rabbit).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_on_time_during_a_100k_fan_out_embedded() {
    let _pace = one_at_a_time().await;
    a_schedule_fires_on_time_during_a_big_fan_out(Backend::Sqlite, BusKind::Memory).await
}

/// Several business numbers: admins register one (its token is never shown again); a send may
/// name the number to go from; a reply goes from the number the patient wrote to; a campaign
/// sends from its own number; each number is paced by itself; a disabled number is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_number_sends_replies_and_campaigns_of_its_own() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(50, |_| {}).await;
    let (_, numbers) = api.get("/api/numbers").await;
    assert_eq!(numbers[0]["phone_number_id"], stack.route.as_str());
    assert_eq!(numbers[0]["is_default"], true);

    const SECOND: &str = "15550002222";
    let (s, body) = api
        .post(
            "/api/numbers",
            &json!({"phone_number_id": SECOND, "display_number": "+1 555 000 2222",
                    "waba_id": "102290129340398", "access_token": "second-number-token", "mps": 20}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["has_token"], true);
    let (_, listed) = api.get("/api/numbers").await;
    assert!(
        !listed.to_string().contains("second-number-token"),
        "{listed}"
    );
    let (s, _) = api
        .post(
            "/api/numbers",
            &json!({"phone_number_id": SECOND, "display_number": "x", "access_token": "t"}),
        )
        .await;
    assert_eq!(s, 409);
    let (s, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919830000001", "message": "hi", "from": "999"}),
        )
        .await;
    assert_eq!(s, 404, "an unregistered number: {body}");

    // A send from the second number (its sender starts within the registry's poll).
    let (s, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919830000001", "message": "From the branch", "from": SECOND}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["sender_phone"], SECOND);
    eventually(LIMIT, "a send from the second number", || async {
        (stack
            .sandbox
            .stats()
            .by_number
            .get(SECOND)
            .copied()
            .unwrap_or(0)
            == 1)
            .then_some(())
    })
    .await;

    // A patient writes to the second number: the reply goes from it without naming it.
    let res = reqwest::Client::new()
        .post(format!("{}/sandbox/inbound", stack.sandbox_url))
        .json(&json!({"from": "919830000002", "name": "Ravi", "text": "Is the branch open?", "to": SECOND}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    eventually(LIMIT, "the inbound message recorded", || async {
        let (_, chat) = api.get("/api/messages/919830000002").await;
        (chat.as_array().is_some_and(|c| !c.is_empty())).then_some(())
    })
    .await;
    let (_, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919830000002", "message": "Yes, until 6"}),
        )
        .await;
    assert_eq!(body["data"]["sender_phone"], SECOND, "{body}");

    // A campaign from the second number, paced at its own 20/s.
    let tag = audience(&stack, &api, "Branch", 919_830_100_000, 60).await;
    let id = campaign(
        &api,
        json!({"message": "Branch news", "tag_ids": [tag], "scheduled_time": soon(), "from": SECOND}),
    )
    .await;
    let (_, detail) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert_eq!(detail["from"], SECOND);
    eventually(
        LIMIT,
        "the campaign sent from the second number",
        || async {
            (stack
                .sandbox
                .stats()
                .by_number
                .get(SECOND)
                .copied()
                .unwrap_or(0)
                == 62)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        stack
            .sandbox
            .stats()
            .by_number
            .get(stack.route.as_str())
            .copied(),
        None,
        "nothing went from the default number"
    );

    // Disabled: sends naming it are refused.
    let (s, body) = api
        .put(
            &format!("/api/numbers/{SECOND}"),
            &json!({"state": "disabled"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919830000001", "message": "hi", "from": SECOND}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    no_double_sends(&stack);
}

/// The database drops every connection, again and again for 8 s, while a campaign sends at
/// 100/s (what a PostgreSQL restart does to the services): results the sender knew are
/// written when it returns, none becomes `unknown`, nobody gets a message twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_database_connections_lose_no_result() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(100, |_| {}).await;
    const FIRST: i64 = 919_840_000_000;
    let _ = tagged_campaign(&stack, &api, "All", FIRST, 1_500, "Clinic closed on Monday").await;
    wait_accepted(&stack, 200).await;
    // From outside the services' pools: end every other connection to this database.
    let admin = sea_orm::Database::connect(&stack.app.db.url).await.unwrap();
    let until = Instant::now() + Duration::from_secs(8);
    let mut dropped = 0;
    while Instant::now() < until {
        let row = admin
            .query_one(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            ))
            .await
            .unwrap()
            .unwrap();
        dropped += row.try_get_by_index::<i64>(0).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(dropped > 0, "no connection was dropped");
    eventually(LIMIT, "everyone sent", || async {
        (accepted_in(&stack, FIRST, 1_500) == 1_500).then_some(())
    })
    .await;
    eventually(LIMIT, "every result written", || async {
        let n = scalar(
            &admin,
            "SELECT COUNT(*) FROM messages WHERE origin = 'occurrence' AND status IN ('sent', 'delivered', 'read')",
        )
        .await;
        (n == 1_500).then_some(())
    })
    .await;
    assert_eq!(
        scalar(
            &admin,
            "SELECT COUNT(*) FROM messages WHERE status IN ('unknown', 'failed')"
        )
        .await,
        0,
        "a result the sender knew was lost"
    );
    no_double_sends(&stack);
}
