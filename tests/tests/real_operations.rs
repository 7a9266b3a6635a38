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
use sea_orm::ConnectionTrait;

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
            "{contacts}
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
             JOIN contacts c ON c.phone = (919720000000 + s.id)::text;",
            contacts = contacts_sql(919_720_000_000, HELD)
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
            "{contacts}
             INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text,
                                   timestamp, is_read, status, attempts, origin, updated_at, enqueued_at)
             SELECT id, 'outgoing', '{route}', phone, 'text', 'Lab results', now(), true, 'queued', 0, 'api', now(), now()
             FROM contacts WHERE phone LIKE '91975%';",
            contacts = contacts_sql(919_750_000_000, 40)
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

/// 200 small campaigns due in the same second, two schedulers and two senders at 1,000
/// messages a second: every campaign starts within seconds of its time and every send goes.
/// The release build's figures (`make bench`, bench-paced) are what the issue's "a second plus
/// the pacing floor" is measured on; this debug build on two shared cores gets four seconds,
/// where the relay that walked every run one query at a time took fifteen and lost some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_campaigns_due_together_all_start_within_a_second() {
    let _pace = one_at_a_time().await;
    let (mut stack, _api) = paced(1_000, |_| {}).await;
    stack.start_scheduler().await;
    stack.start_sender();
    stack.sandbox.set_knobs(SandboxKnobs {
        status_webhooks: false,
        ..SandboxKnobs::default()
    });
    let db = stack.app.db.conn.clone();
    let due_ms = heydoc_testkit::sql::scalar(
        &db,
        "SELECT CAST(EXTRACT(EPOCH FROM date_trunc('second', now()) + interval '4 seconds') * 1000 AS BIGINT)",
    )
    .await;
    heydoc_testkit::sql::execute(
        &db,
        &format!(
            "{contacts}
             INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                             occurrence_count, status, next_run_at, created_by, created_at, updated_at)
             SELECT 'Reminder ' || g,
                    (SELECT json_agg((919760000000 + (g - 1) * 5 + k)::text) FROM generate_series(1, 5) k),
                    '[]', to_timestamp({due_ms} / 1000.0), NULL, 'UTC', 0, 'pending', to_timestamp({due_ms} / 1000.0),
                    'test', now(), now()
             FROM generate_series(1, 200) g;",
            contacts = contacts_sql(919_760_000_000, 1000)
        ),
    )
    .await;
    wait_accepted(&stack, 1_000).await;
    let stats = stack.sandbox.stats();
    let rows = db
        .query_all(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT m.id, o.schedule_id FROM messages m JOIN occurrences o ON o.id = m.occurrence_id",
        ))
        .await
        .unwrap();
    let mut first_by_campaign: std::collections::HashMap<i32, i64> = Default::default();
    let mut lateness: Vec<i64> = Vec::new();
    for r in rows {
        let id: i64 = r.try_get_by_index(0).unwrap();
        let schedule: i32 = r.try_get_by_index(1).unwrap();
        let at = stats.first_accepted_ms[&id.to_string()];
        lateness.push(at - due_ms);
        let first = first_by_campaign.entry(schedule).or_insert(at);
        *first = (*first).min(at);
    }
    lateness.sort_unstable();
    let mut starts: Vec<i64> = first_by_campaign.values().map(|at| at - due_ms).collect();
    starts.sort_unstable();
    let pct = |v: &[i64], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    println!(
        "send lateness ms: p50 {} p99 {} max {}; campaign start: p50 {} p99 {} max {} ({} campaigns)",
        pct(&lateness, 0.5),
        pct(&lateness, 0.99),
        lateness[lateness.len() - 1],
        pct(&starts, 0.5),
        pct(&starts, 0.99),
        starts[starts.len() - 1],
        starts.len()
    );
    // Where the time went: fired, fanned out, published (by the relay), taken.
    for (what, sql) in [
        (
            "fired",
            "SELECT CAST(EXTRACT(EPOCH FROM created_at) * 1000 AS BIGINT) FROM occurrences",
        ),
        (
            "fanned out",
            "SELECT CAST(EXTRACT(EPOCH FROM timestamp) * 1000 AS BIGINT) FROM messages",
        ),
        (
            "published",
            "SELECT CAST(EXTRACT(EPOCH FROM enqueued_at) * 1000 AS BIGINT) FROM messages",
        ),
    ] {
        let mut v: Vec<i64> = heydoc_testkit::sql::column(&db, sql)
            .await
            .into_iter()
            .map(|t| t - due_ms)
            .collect();
        v.sort_unstable();
        println!(
            "{what}: p50 {} p99 {} max {}",
            pct(&v, 0.5),
            pct(&v, 0.99),
            v[v.len() - 1]
        );
    }
    assert_eq!(starts.len(), 200);
    assert!(
        pct(&lateness, 0.99) < 4_000,
        "p99 send lateness {} ms",
        pct(&lateness, 0.99)
    );
    assert!(
        starts[starts.len() - 1] < 4_000,
        "a campaign started {} ms late",
        starts[starts.len() - 1]
    );
    no_double_sends(&stack);
}
