//! Scheduling end to end: schedules fire once, on time, to every recipient, at any replica
//! count; pause, resume and cancel; runs missed while the scheduler was down are skipped.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use heydoc_e2e::paced::scalar;
use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_testkit::{json, Api, Backend};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

const LIMIT: Duration = Duration::from_secs(90);

async fn tagged_contacts(api: &Api, tag_name: &str, phones: impl Iterator<Item = String>) -> i64 {
    let (_, tag) = api.post("/api/tags", &json!({"name": tag_name})).await;
    let tag_id = tag["data"]["id"].as_i64().unwrap();
    for phone in phones {
        let (s, body) = api
            .post(
                "/api/contacts",
                &json!({"phone": phone, "tag_ids": [tag_id]}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
    tag_id
}

fn soon() -> String {
    (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()
}

async fn fires_once_to_its_audience(backend: Backend, kind: BusKind) {
    let mut stack = Stack::spawn(backend, kind, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let tag = tagged_contacts(&api, "Diabetes", (0..5).map(|i| format!("1555060{i:04}"))).await;
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "Time for your check-up", "tag_ids": [tag], "recipients": ["15550609999", "15550600000"],
                    "scheduled_time": soon(), "recurrence": "daily", "timezone": "Asia/Kolkata"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let detail = eventually(LIMIT, "the occurrence's six deliveries", || {
        let api = api.clone();
        async move {
            let (_, d) = api.get(&format!("/api/scheduled-messages/{id}")).await;
            let c = &d["occurrences"][0]["counts"];
            let done = c["sent"].as_i64().unwrap_or(0)
                + c["delivered"].as_i64().unwrap_or(0)
                + c["read"].as_i64().unwrap_or(0);
            (done == 6).then_some(d)
        }
    })
    .await;
    assert_eq!(detail["occurrences"].as_array().unwrap().len(), 1);
    assert_eq!(
        detail["occurrences"][0]["planned"], 6,
        "5 tagged + 1 new recipient (one was both)"
    );
    assert_eq!(detail["status"], "pending");
    assert_eq!(detail["occurrence_count"], 1);
    let next: chrono::DateTime<Utc> = detail["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next > Utc::now() + chrono::Duration::hours(23),
        "next run is tomorrow: {next}"
    );
    let stats = stack.sandbox.stats();
    assert_eq!(stats.accepted, 6);
    assert!(stats.by_recipient.values().all(|&n| n == 1));
    let (_, deliveries) = api
        .get(&format!("/api/scheduled-messages/{id}/deliveries"))
        .await;
    assert_eq!(deliveries.as_array().unwrap().len(), 6);
    // The chat log shows the campaign message.
    let (_, chat) = api.get("/api/messages/15550609999").await;
    assert_eq!(chat[0]["message_text"], "Time for your check-up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_to_its_audience_postgres_rabbitmq() {
    fires_once_to_its_audience(Backend::Postgres, BusKind::Rabbit).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_to_its_audience_embedded() {
    fires_once_to_its_audience(Backend::Sqlite, BusKind::Memory).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_fire_each_of_1000_schedules_once() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    stack
        .sandbox
        .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs {
            status_webhooks: false,
            ..Default::default()
        });
    let db = stack.app.db.conn.clone();
    // 1,000 one-off schedules, each to its own recipient, all due in the same second.
    db.execute_unprepared(
        "INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                         occurrence_count, status, next_run_at, created_by, created_at, updated_at)
         SELECT 'reminder ' || g, json_build_array((15550700000 + g)::text), '[]'::json,
                date_trunc('second', now()) + interval '2 seconds', NULL, 'UTC', 0, 'pending',
                date_trunc('second', now()) + interval '2 seconds', 'admin', now(), now()
         FROM generate_series(1, 1000) g",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        stack.start_scheduler().await;
    }
    eventually(LIMIT, "1,000 sends", || {
        let db = db.clone();
        async move {
            (scalar(&db, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await == 1000)
                .then_some(())
        }
    })
    .await;
    // Each one-off is marked sent by whichever scheduler's tick sees its deliveries done.
    eventually(LIMIT, "1,000 schedules completed", || {
        let db = db.clone();
        async move {
            (scalar(
                &db,
                "SELECT COUNT(*) FROM scheduled_messages WHERE status = 'sent'",
            )
            .await
                == 1000)
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM occurrences").await,
        1000,
        "exactly one occurrence each"
    );
    let stats = stack.sandbox.stats();
    assert_eq!(stats.accepted, 1000);
    assert_eq!(stats.by_recipient.len(), 1000);
    assert!(
        stats.by_recipient.values().all(|&n| n == 1),
        "a recipient got two messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_a_running_campaign_and_cancel_ends_it() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| s.sender.mps = 40).await;
    stack
        .sandbox
        .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs {
            status_webhooks: false,
            ..Default::default()
        });
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    // Ten seconds of sends at 40/s: a pause (or a cancel) lands well before the end even on a
    // loaded machine, so a pause that holds nothing is caught by the counts.
    let tag = tagged_contacts(&api, "Everyone", (0..400).map(|i| format!("1555080{i:04}"))).await;
    let (_, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "Clinic news", "tag_ids": [tag], "scheduled_time": soon()}),
        )
        .await;
    let id = created["data"]["id"].as_i64().unwrap();
    let sandbox = stack.sandbox.clone();
    eventually(LIMIT, "the campaign to start", || {
        let sandbox = sandbox.clone();
        async move { (sandbox.stats().accepted >= 20).then_some(()) }
    })
    .await;
    let (s, _) = api
        .put(
            &format!("/api/scheduled-messages/{id}/status"),
            &json!({"status": "paused"}),
        )
        .await;
    assert_eq!(s, 200);
    // What was already in flight finishes; then nothing more reaches the sandbox.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = sandbox.stats().accepted;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sandbox.stats().accepted,
        held,
        "sends went out while paused"
    );
    assert!(held < 200, "{held} sent: the pause came too late to tell");

    let (s, _) = api
        .put(
            &format!("/api/scheduled-messages/{id}/status"),
            &json!({"status": "pending"}),
        )
        .await;
    assert_eq!(s, 200);
    eventually(LIMIT, "more sends after resume", || {
        let sandbox = sandbox.clone();
        async move { (sandbox.stats().accepted >= held + 20).then_some(()) }
    })
    .await;
    let (s, _) = api
        .put(
            &format!("/api/scheduled-messages/{id}/status"),
            &json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let at_cancel = sandbox.stats().accepted;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sandbox.stats().accepted,
        at_cancel,
        "sends went out after cancel"
    );
    let (_, detail) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    let counts = &detail["occurrences"][0]["counts"];
    assert_eq!(counts["sent"].as_i64().unwrap() as u64, at_cancel);
    assert_eq!(
        counts["skipped"].as_i64().unwrap() as u64,
        400 - at_cancel,
        "the rest are skipped: {counts}"
    );
    assert!(stack.sandbox.stats().by_recipient.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_missed_beyond_the_catch_up_window_is_skipped_not_sent() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.scheduler.catch_up_secs = 60
    })
    .await;
    let db = stack.app.db.conn.clone();
    // A daily schedule whose run came due an hour ago, while no scheduler was running.
    db.execute_unprepared(
        "INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                         occurrence_count, status, next_run_at, created_by, created_at, updated_at)
         VALUES ('late', '[\"15550900001\"]', '[]', now() - interval '1 hour', 'daily', 'UTC', 0, 'pending',
                 now() - interval '1 hour', 'admin', now(), now())",
    )
    .await
    .unwrap();
    stack.start_scheduler().await;
    eventually(LIMIT, "the skipped occurrence", || {
        let db = db.clone();
        async move {
            (scalar(
                &db,
                "SELECT COUNT(*) FROM occurrences WHERE state = 'skipped'",
            )
            .await
                == 1)
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM messages").await,
        0,
        "nothing sent late"
    );
    assert_eq!(stack.sandbox.stats().accepted, 0);
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM scheduled_messages WHERE next_run_at > now() + interval '22 hours'").await,
        1,
        "the next run is tomorrow's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_campaigns_fill_parameters_from_each_contact() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let (_, tag) = api.post("/api/tags", &json!({"name": "Pune"})).await;
    let tag = tag["data"]["id"].as_i64().unwrap();
    for (phone, name, clinic) in [
        ("15551000001", "Ana", "Pune East"),
        ("15551000002", "Ravi", "Pune West"),
    ] {
        let (s, _) = api
            .post("/api/contacts", &json!({"phone": phone, "name": name, "attributes": {"clinic": clinic}, "tag_ids": [tag]}))
            .await;
        assert_eq!(s, 201);
    }
    let template = json!({"name": "visit_reminder", "language": "en_US", "components": [{"type": "body", "parameters": [
        {"type": "text", "text": "{{name}}"}, {"type": "text", "text": "{{attributes.clinic}}"}]}]});
    let (s, created) = api
        .post("/api/scheduled-messages", &json!({"template": template, "tag_ids": [tag], "scheduled_time": soon(), "recurrence": "weekly"}))
        .await;
    assert_eq!(s, 201, "{created}");
    let sandbox = stack.sandbox.clone();
    let params = eventually(LIMIT, "both templates", || {
        let sandbox = sandbox.clone();
        async move {
            let p = sandbox.stats().template_params;
            (p.len() == 2).then_some(p)
        }
    })
    .await;
    assert_eq!(
        params["15551000001"],
        vec!["Ana".to_string(), "Pune East".to_string()]
    );
    assert_eq!(
        params["15551000002"],
        vec!["Ravi".to_string(), "Pune West".to_string()]
    );
}

/// Recipients and tags together, fanned out two contacts per chunk: the audience is their
/// union once each, minus the opted-out, across every chunk boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_audience_fans_out_once_each_across_small_chunks() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.scheduler.fanout_chunk = 2
    })
    .await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let tagged: Vec<String> = (0..5).map(|i| format!("1555071{i:04}")).collect();
    let tag = tagged_contacts(&api, "Mixed", tagged.iter().cloned()).await;
    // Untagged: one listed recipient, one bystander.
    for phone in ["15550719000", "15550719001"] {
        assert_eq!(
            api.post("/api/contacts", &json!({"phone": phone})).await.0,
            201
        );
    }
    let (s, _) = api
        .put(
            &format!("/api/contacts/{}", tagged[4]),
            &json!({"opted_out": true}),
        )
        .await;
    assert_eq!(s, 200);
    // Two listed recipients are tagged too; one is not a contact yet.
    let recipients = [
        tagged[0].as_str(),
        tagged[3].as_str(),
        "15550719000",
        "15550719999",
    ];
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "mixed", "tag_ids": [tag], "recipients": recipients, "scheduled_time": soon()}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let expected: Vec<&str> = vec![
        &tagged[0],
        &tagged[1],
        &tagged[2],
        &tagged[3],
        "15550719000",
        "15550719999",
    ];
    eventually(LIMIT, "six sends", || {
        let stack = &stack;
        async move { (stack.sandbox.stats().accepted >= 6).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = stack.sandbox.stats();
    let mut got: Vec<&str> = stats.by_recipient.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = expected.clone();
    want.sort_unstable();
    assert_eq!(
        got, want,
        "the union of recipients and tag, minus the opted-out"
    );
    assert!(stats.by_recipient.values().all(|&n| n == 1), "{stats:?}");
    let (_, detail) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert_eq!(detail["occurrences"][0]["planned"], 7, "{detail}");
    assert_eq!(detail["occurrences"][0]["counts"]["skipped"], 1, "{detail}");
    let (_, deliveries) = api
        .get(&format!("/api/scheduled-messages/{id}/deliveries"))
        .await;
    let opted_out = deliveries
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["phone"] == tagged[4].as_str())
        .unwrap();
    assert_eq!(opted_out["status"], "skipped");
    assert!(opted_out["error_reason"]
        .as_str()
        .unwrap()
        .starts_with("opted out of campaigns"));
}

/// Moves a recurring schedule's next run to now, as if its next day had come.
async fn next_day_comes(db: &DatabaseConnection, id: i64) {
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE scheduled_messages SET next_run_at = $1 WHERE id = $2",
        [Utc::now().into(), id.into()],
    ))
    .await
    .unwrap();
}

/// The texts sent to `phone` so far, oldest first.
async fn sent_to(api: &Api, phone: &str) -> Vec<String> {
    let (_, chat) = api.get(&format!("/api/messages/{phone}?limit=200")).await;
    let mut texts: Vec<String> = chat
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outgoing" && m["status"] != "skipped")
        .map(|m| m["message_text"].as_str().unwrap().to_string())
        .collect();
    texts.reverse();
    texts
}

/// STOP in the middle of a daily campaign: a one-time confirmation, the next run skips the
/// contact and says why, a second STOP sends nothing; START brings them back (confirmed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_by_keyword_in_the_middle_of_a_recurring_campaign() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let phones: Vec<String> = (0..3).map(|i| format!("1555072{i:04}")).collect();
    let tag = tagged_contacts(&api, "Weekly tips", phones.iter().cloned()).await;
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "Tip of the day", "tag_ids": [tag], "scheduled_time": soon(), "recurrence": "daily"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let runs_done = |n: usize| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let (_, d) = api.get(&format!("/api/scheduled-messages/{id}")).await;
                let occ = d["occurrences"].as_array().cloned().unwrap_or_default();
                let settled = occ.len() == n
                    && occ.iter().all(|o| {
                        o["state"] == "done" && o["counts"]["queued"] == 0 && o["planned"] == 3
                    });
                settled.then_some(d)
            }
        }
    };
    eventually(LIMIT, "the first run", runs_done(1)).await;
    let stopper = phones[1].as_str();
    assert_eq!(sent_to(&api, stopper).await, vec!["Tip of the day"]);

    stack.patient_writes(stopper, "", " Stop! ").await;
    let confirmation = eventually(LIMIT, "the STOP confirmation", || {
        let api = api.clone();
        async move {
            let texts = sent_to(&api, stopper).await;
            (texts.len() == 2).then(|| texts[1].clone())
        }
    })
    .await;
    assert!(confirmation.contains("Reply START"), "{confirmation}");
    let (_, contact) = api.get(&format!("/api/contacts/{stopper}")).await;
    assert_eq!(contact["opted_out"], true);
    // Saying it again changes nothing and sends nothing.
    stack.patient_writes(stopper, "", "STOP").await;

    next_day_comes(&stack.app.db.conn, id).await;
    let detail = eventually(LIMIT, "the second run", runs_done(2)).await;
    let second = &detail["occurrences"][0];
    assert_eq!(second["counts"]["skipped"], 1, "{detail}");
    let (_, deliveries) = api
        .get(&format!(
            "/api/scheduled-messages/{id}/deliveries?occurrence_id={}",
            second["id"]
        ))
        .await;
    let skipped = deliveries
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["phone"] == stopper)
        .unwrap();
    assert_eq!(skipped["status"], "skipped");
    assert!(skipped["error_reason"]
        .as_str()
        .unwrap()
        .starts_with("opted out of campaigns on "));
    assert_eq!(
        sent_to(&api, stopper).await.len(),
        2,
        "no campaign message and no second confirmation after STOP"
    );
    assert_eq!(sent_to(&api, &phones[0]).await.len(), 2);

    stack.patient_writes(stopper, "", "start").await;
    eventually(LIMIT, "the START confirmation", || {
        let api = api.clone();
        async move {
            let texts = sent_to(&api, stopper).await;
            (texts.len() == 3 && texts[2].contains("Reply STOP")).then_some(())
        }
    })
    .await;
    next_day_comes(&stack.app.db.conn, id).await;
    eventually(LIMIT, "the third run", runs_done(3)).await;
    let texts = sent_to(&api, stopper).await;
    assert_eq!(texts.last().map(String::as_str), Some("Tip of the day"));
    assert_eq!(texts.len(), 4, "{texts:?}");
}

/// A text campaign is personalised for each recipient: `{{name|there}}` reaches a contact
/// without a name as "there"; `{{name}}` without a fallback skips that contact with the reason.
/// No recipient ever receives a raw placeholder, and each chat shows the text its patient got.
async fn text_campaigns_are_personalised(backend: Backend, kind: BusKind) {
    let mut stack = Stack::spawn(backend, kind, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    for (phone, name) in [("919800000031", "Anita"), ("919800000032", "Vikram")] {
        let (s, body) = api
            .post("/api/contacts", &json!({"phone": phone, "name": name}))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let audience = ["919800000031", "919800000032", "919800000033"];
    let schedule = |message: &'static str| {
        let api = api.clone();
        async move {
            let (s, created) = api
                .post(
                    "/api/scheduled-messages",
                    &json!({"message": message, "recipients": audience, "scheduled_time": soon()}),
                )
                .await;
            assert_eq!(s, 201, "{created}");
            created["data"]["id"].as_i64().unwrap()
        }
    };
    let finished = |id: i64, want: i64| {
        let api = api.clone();
        eventually(LIMIT, "every delivery finished", move || {
            let api = api.clone();
            async move {
                let (_, d) = api
                    .get(&format!("/api/scheduled-messages/{id}/deliveries"))
                    .await;
                let rows = d.as_array()?.clone();
                let done = rows
                    .iter()
                    .filter(|r| {
                        !["queued", "sending", "retrying"]
                            .contains(&r["status"].as_str().unwrap_or(""))
                    })
                    .count() as i64;
                (done == want && rows.len() as i64 == want).then_some(rows)
            }
        })
    };

    let id = schedule("Namaste {{name|there}}! Your reports are ready.").await;
    finished(id, 3).await;
    let texts = stack.sandbox.stats().texts;
    assert_eq!(
        texts["919800000031"],
        "Namaste Anita! Your reports are ready."
    );
    assert_eq!(
        texts["919800000032"],
        "Namaste Vikram! Your reports are ready."
    );
    assert_eq!(
        texts["919800000033"],
        "Namaste there! Your reports are ready."
    );
    let (_, chat) = api.get("/api/messages/919800000031").await;
    assert_eq!(
        chat[0]["message_text"],
        "Namaste Anita! Your reports are ready."
    );

    let id = schedule("Hi {{name}}, the clinic is closed on Friday.").await;
    let rows = finished(id, 3).await;
    let stats = stack.sandbox.stats();
    assert_eq!(
        stats.texts["919800000032"],
        "Hi Vikram, the clinic is closed on Friday."
    );
    assert_eq!(
        stats.by_recipient["919800000033"], 1,
        "only the first campaign"
    );
    let nameless = rows
        .iter()
        .find(|r| r["phone"] == "919800000033" || r["receiver_phone"] == "919800000033")
        .unwrap_or_else(|| panic!("no delivery to the nameless contact: {rows:?}"));
    assert_eq!(nameless["status"], "skipped", "{nameless}");
    assert!(
        nameless.to_string().contains("{{name}}"),
        "the reason names the placeholder: {nameless}"
    );
    assert!(
        stats.texts.values().all(|t| !t.contains("{{")),
        "no raw placeholder was sent: {:?}",
        stats.texts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_campaigns_are_personalised_embedded() {
    text_campaigns_are_personalised(Backend::Sqlite, BusKind::Memory).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_campaigns_are_personalised_postgres_rabbitmq() {
    text_campaigns_are_personalised(Backend::Postgres, BusKind::Rabbit).await
}

/// The seed's flow for its own daily example: the client marks it `sent` (it sent the message
/// itself); the schedule ends, leaves /pending, and no run of it is ever sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_schedule_marked_sent_by_the_client_sends_nothing_more() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let due = (Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "Good morning!", "recipients": ["1234567890"], "scheduled_time": due, "recurrence": "daily"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let (s, marked) = api
        .put(
            &format!("/api/scheduled-messages/{id}/status"),
            &json!({"status": "sent"}),
        )
        .await;
    assert_eq!(s, 200, "{marked}");
    let (_, pending) = api.get("/api/scheduled-messages/pending").await;
    assert_eq!(pending, json!([]));
    // Well past the time it was due: no run, nothing sent.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, detail) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert_eq!(detail["status"], "sent");
    assert_eq!(detail["occurrences"], json!([]), "{detail}");
    assert_eq!(stack.sandbox.stats().accepted, 0);
    let db = &stack.app.db.conn;
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM messages WHERE direction = 'outgoing'"
        )
        .await,
        0
    );
}
