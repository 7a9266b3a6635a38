//! Sending end to end: gateway -> bus -> sender -> sandbox -> signed webhooks -> gateway, on
//! PostgreSQL with real RabbitMQ queues (and the embedded SQLite + in-process path), with the
//! failure paths: 130429 storms, permanent errors, poison jobs, pacing.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_testkit::{json, Api, Backend};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

const LIMIT: Duration = Duration::from_secs(90);

async fn outgoing_by_status(db: &DatabaseConnection) -> HashMap<String, i64> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all(Statement::from_string(
            backend,
            "SELECT status, COUNT(*) AS n FROM messages WHERE direction = 'outgoing' GROUP BY status",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String>("", "status").unwrap(),
                r.try_get::<i64>("", "n").unwrap(),
            )
        })
        .collect()
}

fn done(counts: &HashMap<String, i64>) -> i64 {
    ["sent", "delivered", "read", "failed", "skipped", "unknown"]
        .iter()
        .map(|s| counts.get(*s).copied().unwrap_or(0))
        .sum()
}

async fn send(api: &Api, phone: &str, text: &str) -> i64 {
    let (status, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": phone, "message": text}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["id"].as_i64().unwrap()
}

async fn a_send_reaches_read(backend: Backend, kind: BusKind) {
    let stack = Stack::spawn(backend, kind, |_| {}).await;
    let api = stack.app.admin().await;
    let id = send(&api, "14155550123", "Your appointment is tomorrow at 10").await;
    let seen = eventually(LIMIT, "the message to be read", || {
        let api = api.clone();
        async move {
            let (_, chat) = api.get("/api/messages/14155550123").await;
            let m = chat[0].clone();
            (m["status"] == "read").then_some(m)
        }
    })
    .await;
    assert!(seen["message_id"].as_str().unwrap().starts_with("wamid."));
    let stats = stack.sandbox.stats();
    assert_eq!(
        stats.by_callback.get(&id.to_string()),
        Some(&1),
        "sent exactly once: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_reaches_read_through_rabbitmq() {
    a_send_reaches_read(Backend::Postgres, BusKind::Rabbit).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_reaches_read_embedded() {
    a_send_reaches_read(Backend::Sqlite, BusKind::Memory).await
}

/// 200 concurrent sends, and for each a duplicate job (as a relay and a gateway both
/// publishing, or a broker redelivering, would make): each is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sends_go_out_once_each() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    let api = stack.app.admin().await;
    let mut handles = Vec::new();
    for i in 0..200 {
        let api = api.clone();
        handles.push(tokio::spawn(async move {
            send(&api, &format!("1555010{i:04}"), "hello").await
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    let duplicates: Vec<heydoc_queue::Job> =
        ids.iter().map(|id| heydoc_queue::Job::new(*id)).collect();
    heydoc_queue::publish_lanes(stack.bus.as_ref(), &stack.route, &duplicates, &[])
        .await
        .unwrap();
    let db = stack.app.db.conn.clone();
    eventually(LIMIT, "200 sends to finish", || {
        let db = db.clone();
        async move { (done(&outgoing_by_status(&db).await) == 200).then_some(()) }
    })
    .await;
    let stats = stack.sandbox.stats();
    assert_eq!(stats.accepted, 200);
    assert!(
        stats.by_callback.values().all(|&n| n == 1),
        "a delivery was sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_130429_slows_down_and_everything_goes_out() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.sender.max_attempts = 50
    })
    .await;
    stack
        .sandbox
        .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs {
            error_rates: [("130429".to_string(), 0.35)].into_iter().collect(),
            status_webhooks: false,
            ..Default::default()
        });
    let api = stack.app.admin().await;
    for i in 0..40 {
        send(&api, &format!("1555020{i:04}"), "storm").await;
    }
    let db = stack.app.db.conn.clone();
    // A hand-rolled wait so that a timeout says where the sends were stuck.
    let started = std::time::Instant::now();
    let counts = loop {
        let c = outgoing_by_status(&db).await;
        if done(&c) == 40 {
            break c;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the storm's sends did not all go out: {c:?}, sandbox {:?}",
            stack.sandbox.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(counts.get("sent"), Some(&40), "{counts:?}");
    let stats = stack.sandbox.stats();
    assert!(
        stats.errors.get("130429").copied().unwrap_or(0) > 0,
        "the storm happened: {stats:?}"
    );
    assert_eq!(stats.accepted, 40);
    assert!(stats.by_callback.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_never_retried_and_say_why() {
    for (code, suppressed) in [(131047, false), (131050, true), (131026, true)] {
        let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
        stack
            .sandbox
            .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs {
                error_rates: [(code.to_string(), 1.0)].into_iter().collect(),
                ..Default::default()
            });
        let api = stack.app.admin().await;
        let first = send(&api, "14155550199", "hello").await;
        let m = eventually(LIMIT, "the failure", || {
            let api = api.clone();
            async move {
                let (_, chat) = api.get("/api/messages/14155550199").await;
                (chat[0]["status"] == "failed").then(|| chat[0].clone())
            }
        })
        .await;
        assert_eq!(m["error_code"], code);
        assert!(
            m["error_reason"]
                .as_str()
                .unwrap()
                .contains(&code.to_string()),
            "{m}"
        );
        // Final: one attempt, nothing scheduled. Then a later send to the same person goes
        // through the same lane and is answered, and a retry (due 50 ms later with this
        // stack's back-off) would have had forty times that to happen.
        let db = stack.app.db.conn.clone();
        let pending = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) FROM messages WHERE status = 'failed' AND attempts = 1 AND next_attempt_at IS NULL",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        assert_eq!(pending, 1, "{code} left a retry scheduled");
        stack
            .sandbox
            .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs::default());
        let after = send(&api, "14155550199", "second").await;
        eventually(LIMIT, "the send after it", || async {
            stack
                .sandbox
                .stats()
                .by_callback
                .contains_key(&after.to_string())
                .then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !stack
                .sandbox
                .stats()
                .by_callback
                .contains_key(&first.to_string()),
            "{code} was sent again"
        );
        assert_eq!(
            stack.sandbox.stats().errors.get(&code.to_string()),
            Some(&1),
            "{code} was retried"
        );
        let (_, contact) = api.get("/api/contacts/14155550199").await;
        assert_eq!(
            contact["suppressed_reason"].is_string(),
            suppressed,
            "{code}: {contact}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_lands_in_the_dead_letter_queue() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    let rabbit = stack.rabbit.clone().unwrap();
    rabbit
        .publish_bytes(&stack.route, b"{\"not\":\"a job\"}")
        .await
        .unwrap();
    eventually(LIMIT, "the poison in the dead-letter queue", || {
        let rabbit = rabbit.clone();
        async move {
            (heydoc_queue::JobBus::dead_letters(&*rabbit)
                .await
                .unwrap_or(0)
                >= 1)
                .then_some(())
        }
    })
    .await;
    // The sender carries on.
    let api = stack.app.admin().await;
    send(&api, "14155550123", "still working").await;
    let db = stack.app.db.conn.clone();
    eventually(LIMIT, "the next send", || {
        let db = db.clone();
        async move { (done(&outgoing_by_status(&db).await) == 1).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_never_exceeds_the_limit_in_any_second() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| s.sender.mps = 50).await;
    stack
        .sandbox
        .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs {
            status_webhooks: false,
            ..Default::default()
        });
    let api = stack.app.admin().await;
    for i in 0..150 {
        send(&api, &format!("1555030{i:04}"), "paced").await;
    }
    let db = stack.app.db.conn.clone();
    eventually(LIMIT, "150 paced sends", || {
        let db = db.clone();
        async move { (done(&outgoing_by_status(&db).await) == 150).then_some(()) }
    })
    .await;
    let stats = stack.sandbox.stats();
    assert_eq!(stats.accepted, 150);
    assert!(
        stats.max_per_second <= 50,
        "the sandbox saw {} in one second",
        stats.max_per_second
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_24_hour_window_decides_text_or_template() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    stack
        .sandbox
        .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs {
            enforce_window: true,
            status_webhooks: false,
            ..Default::default()
        });
    let api = stack.app.admin().await;
    let last_status = |phone: &'static str, wanted: &'static str| {
        let api = api.clone();
        async move {
            eventually(LIMIT, wanted, || {
                let api = api.clone();
                async move {
                    let (_, chat) = api.get(&format!("/api/messages/{phone}")).await;
                    (chat[0]["status"] == wanted).then(|| chat[0].clone())
                }
            })
            .await
        }
    };
    // Free text to someone who never wrote: Meta refuses it, and it is not retried.
    send(&api, "14155550001", "hello?").await;
    let m = last_status("14155550001", "failed").await;
    assert_eq!(m["error_code"], 131047);

    // The same with a template to fall back on: the template goes out.
    let (s, _) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "14155550002", "message": "hello?",
                    "template": {"name": "appointment_reminder", "language": "en_US"}}),
        )
        .await;
    assert_eq!(s, 200);
    last_status("14155550002", "sent").await;

    // After the contact writes in, free text goes through.
    let res = stack
        .app
        .bare_client()
        .post(format!("{}/sandbox/inbound", stack.sandbox_url))
        .json(&json!({"from": "14155550003", "name": "Ana", "text": "Hi, can I book?"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    eventually(LIMIT, "the inbound message", || {
        let api = api.clone();
        async move {
            (api.get("/api/contacts/14155550003").await.1["last_inbound_at"].is_string())
                .then_some(())
        }
    })
    .await;
    send(&api, "14155550003", "Yes, tomorrow at 10").await;
    last_status("14155550003", "sent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_policy_skip_records_a_skip_without_a_call() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |s| {
        s.sender.window_policy = heydoc_config::WindowPolicy::Skip;
    })
    .await;
    let api = stack.app.admin().await;
    send(&api, "14155550004", "outside the window").await;
    let m = eventually(LIMIT, "the skip", || {
        let api = api.clone();
        async move {
            let (_, chat) = api.get("/api/messages/14155550004").await;
            (chat[0]["status"] == "skipped").then(|| chat[0].clone())
        }
    })
    .await;
    assert!(
        m["error_reason"]
            .as_str()
            .unwrap()
            .contains("24-hour window"),
        "{m}"
    );
    assert_eq!(stack.sandbox.stats().accepted, 0, "no call was made");
}
