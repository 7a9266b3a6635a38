//! Campaigns under real operations, at a real pace: a campaign spread over days that is paused
//! and resumed keeps each day's share to its day; a thousand held campaign runs do not keep a
//! new campaign waiting; an account error Meta reports by webhook stops the number; an answer
//! lost behind a bodyless 5xx is never sent again; duplicate jobs cost no pacing slot.
//! Timings are checked with generous bounds and counts.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use heydoc_e2e::paced::*;
use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_queue::Job;
use heydoc_testkit::{json, Backend};
use heydoc_whatsapp::sandbox::SandboxKnobs;

/// Resuming brings back only what the pause held, each row at its own time: the later days of
/// a campaign spread with `daily_limit` stay on their days, through two pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_80_per_second_a_campaign_spread_over_days_sends_each_days_share_once_through_pauses() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(80, |_| {}).await;
    let tag = audience(&stack, &api, "Spread", 919_710_000_000, 600).await;
    let id = campaign(
        &api,
        json!({"message": "Flu shots this week", "tag_ids": [tag], "scheduled_time": soon(),
               "daily_limit": 200}),
    )
    .await;
    wait_accepted(&stack, 40).await;
    set_status(&api, id, "paused").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_pause = stack.sandbox.stats().accepted;
    assert!(at_pause < 200, "paused after the day's share: {at_pause}");

    // Resumed: the rest of today's share goes out, and nothing of the next days.
    set_status(&api, id, "pending").await;
    wait_accepted(&stack, 200).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.sandbox.stats().accepted, 200, "only today's share");

    // Paused and resumed once more: still today's share only.
    set_status(&api, id, "paused").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    set_status(&api, id, "pending").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.sandbox.stats().accepted, 200, "a second resume");

    // Days two and three wait for their days (moved on only by the pauses, seconds long).
    let db = &stack.app.db.conn;
    let due_within = |from: i64, to: i64| {
        format!(
            "SELECT COUNT(*) FROM messages WHERE status = 'retrying'
               AND next_attempt_at BETWEEN now() + interval '{from} hours' AND now() + interval '{to} hours'"
        )
    };
    assert_eq!(scalar(db, &due_within(23, 25)).await, 200, "day two");
    assert_eq!(scalar(db, &due_within(47, 49)).await, 200, "day three");
    no_double_sends(&stack);
}

/// 1,050 campaign runs holding work for later (paused ones with queued deliveries, others with
/// a delivery due tomorrow) do not keep a new campaign due now from being chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_held_campaign_runs_do_not_delay_a_new_one() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(40, |_| {}).await;
    const HELD: i64 = 1_050;
    let route = &stack.route;
    heydoc_testkit::sql::execute(
        &stack.app.db.conn,
        &format!(
            "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
             SELECT (919720000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {HELD}) g;
             INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                             occurrence_count, status, next_run_at, created_by, created_at, updated_at, daily_limit)
             SELECT 'Held ' || g, '[]', '[]', now(), NULL, 'UTC', 1,
                    CASE WHEN g % 2 = 0 THEN 'paused' ELSE 'pending' END, NULL, 'test', now(), now(), 1
             FROM generate_series(1, {HELD}) g;
             INSERT INTO occurrences (schedule_id, fire_at, state, cursor, planned, created_at, updated_at)
             SELECT id, now(), 'done', NULL, 1, now(), now() FROM scheduled_messages;
             INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text,
                                   timestamp, is_read, status, attempts, origin, updated_at, occurrence_id, next_attempt_at)
             SELECT c.id, 'outgoing', '{route}', c.phone, 'text', 'held', now(), true,
                    CASE WHEN s.status = 'paused' THEN 'queued' ELSE 'retrying' END, 0, 'occurrence', now(), o.id,
                    CASE WHEN s.status = 'paused' THEN NULL ELSE now() + interval '1 day' END
             FROM occurrences o
             JOIN scheduled_messages s ON s.id = o.schedule_id
             JOIN contacts c ON c.phone = (919720000000 + s.id)::text;"
        ),
    )
    .await;
    let before = stack.sandbox.stats().accepted;
    let started = Instant::now();
    tagged_campaign(
        &stack,
        &api,
        "New",
        919_721_000_000,
        5,
        "Open day on Saturday",
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the new campaign's 5 sends",
        || async { (accepted_in(&stack, 919_721_000_000, 5) == 5).then_some(()) },
    )
    .await;
    println!("the new campaign went out in {:?}", started.elapsed());
    assert_eq!(
        stack.sandbox.stats().accepted - before,
        5,
        "nothing held was sent"
    );
}

/// Meta accepts every send and reports it failed for the account's payment (131042) by
/// webhook: the number stops within a few sends, shows why, and nobody's message fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_error_reported_by_webhook_stops_the_number_within_a_few_sends() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(20, |s| s.sender.breaker_probe_secs = 30).await;
    stack.sandbox.set_knobs(SandboxKnobs {
        status_failure_rates: [("131042".to_string(), 1.0)].into_iter().collect(),
        status_delay_ms: 100,
        ..SandboxKnobs::default()
    });
    tagged_campaign(
        &stack,
        &api,
        "All",
        919_730_000_000,
        200,
        "Clinic closed Friday",
    )
    .await;
    let numbers = eventually(LIMIT, "the number held", || async {
        let (_, n) = api.get("/api/numbers").await;
        (n[0]["state"] == "paused").then_some(n)
    })
    .await;
    assert!(
        numbers[0]["state_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("131042"),
        "{numbers}"
    );
    let at_hold = stack.sandbox.stats().accepted;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = stack.sandbox.stats().accepted;
    // Before: 197 more went out into the same error.
    assert!(
        sent <= 12,
        "{sent} sends went out ({at_hold} when the number showed held)"
    );
    assert!(
        sent <= at_hold + 2,
        "only what was in flight when it showed held: {at_hold} then {sent}"
    );
    let db = &stack.app.db.conn;
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM messages WHERE status = 'failed'").await,
        0,
        "the refused messages wait for the number"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM messages WHERE status = 'retrying' AND message_id IS NOT NULL
               AND last_error_reason LIKE '%131042%'"
        )
        .await as u64,
        sent,
        "each one Meta took and then refused waits again, saying why"
    );
}

/// A 502 without a body after WhatsApp took the message: the send may have happened, so it is
/// `unknown`, never sent again blind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_behind_a_bodyless_5xx_is_unknown_and_never_sent_again() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    stack.sandbox.set_knobs(SandboxKnobs {
        lost_answer_rates: [("502".to_string(), 0.5), ("500".to_string(), 0.5)]
            .into_iter()
            .collect(),
        status_webhooks: false,
        ..SandboxKnobs::default()
    });
    let api = stack.app.admin().await;
    for i in 0..20 {
        let (s, body) = api
            .post(
                "/api/send_message",
                &json!({"phone_number": format!("9197400000{i:02}"), "message": "Your results are ready"}),
            )
            .await;
        assert_eq!(s, 200, "{body}");
    }
    let db = stack.app.db.conn.clone();
    eventually(LIMIT, "20 unknown", || async {
        (scalar(
            &db,
            "SELECT COUNT(*) FROM messages WHERE status = 'unknown'",
        )
        .await
            == 20)
            .then_some(())
    })
    .await;
    // A retry would come within 50 ms (the stack's back-off): give it forty times that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = stack.sandbox.stats();
    assert_eq!(stats.accepted, 20, "each was sent once");
    assert!(stats.by_callback.values().all(|&n| n == 1));
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM messages WHERE status = 'unknown' AND attempts = 1"
        )
        .await,
        20
    );
}

/// Jobs for rows that are already sent, or already in this sender's hands, are refused before
/// the pacer: 320 duplicate jobs beside 40 real sends at 20/s take the 40 sends' two seconds,
/// not the 18 that 360 pacing slots would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_jobs_take_no_pacing_slot() {
    let _pace = one_at_a_time().await;
    let (stack, api) = paced(20, |_| {}).await;
    let db = &stack.app.db.conn;
    let route = &stack.route;
    // 40 deliveries the relay believes are on the bus already (so it publishes none itself).
    heydoc_testkit::sql::execute(
        db,
        &format!(
            "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
             SELECT (919750000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, 40) g;
             INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text,
                                   timestamp, is_read, status, attempts, origin, updated_at, enqueued_at)
             SELECT id, 'outgoing', '{route}', phone, 'text', 'Lab results', now(), true, 'queued', 0, 'api', now(), now()
             FROM contacts WHERE phone LIKE '91975%';"
        ),
    )
    .await;
    let ids = heydoc_testkit::sql::column(
        db,
        "SELECT id FROM messages WHERE message_text = 'Lab results'",
    )
    .await;
    assert_eq!(ids.len(), 40);
    // Each job nine times in a row, as a reconciler republishing what a throttled sender holds
    // would leave them.
    let jobs: Vec<Job> = ids
        .iter()
        .flat_map(|id| (0..9).map(|_| Job::new(*id)))
        .collect();
    let started = Instant::now();
    stack.bus.publish(route, &jobs).await.unwrap();
    eventually(LIMIT, "the 40 sends", || async {
        (accepted_in(&stack, 919_750_000_000, 40) == 40).then_some(())
    })
    .await;
    let took = started.elapsed();
    println!("40 sends among 360 jobs took {took:?}");
    assert!(
        took < Duration::from_secs(9),
        "duplicates spent pacing slots: {took:?}"
    );
    no_double_sends(&stack);
    drop(api);
}
