//! Outbound events end to end: an endpoint that is down for a while receives every event once
//! it is back, in order per contact, each with a valid signature; one that keeps failing is
//! disabled with a visible reason, and its events go out when it is enabled again.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_testkit::{json, Api, Backend};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const LIMIT: Duration = Duration::from_secs(60);

/// A CRM's webhook receiver that can be taken down.
#[derive(Clone, Default)]
struct Receiver {
    up: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<(String, Bytes)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !r.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let sig = headers
        .get("x-heydoc-signature")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    r.got.lock().unwrap().push((sig, body));
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/events", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/events"))
}

/// Checks `t=<unix>,v1=<hex>` against HMAC-SHA256 of `"<t>.<body>"`, as a receiver would.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

async fn endpoint(api: &Api, id: i64) -> Value {
    let (_, all) = api.get("/api/event-endpoints").await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_was_down_gets_every_event_in_order_and_signed() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        down_then_up(backend).await;
    }
}

async fn down_then_up(backend: Backend) {
    let stack = Stack::spawn(backend, BusKind::Memory, |s| {
        s.sender.event_retry_base_ms = 100;
        s.sender.event_retry_max_secs = 1;
    })
    .await;
    let api = stack.app.admin().await;
    let (receiver, url) = start_receiver().await;
    let (s, created) = api.post("/api/event-endpoints", &json!({"url": url})).await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let secret = created["data"]["secret"].as_str().unwrap().to_string();

    // The CRM is down while two patients write, interleaved, and one gets an answer.
    for (from, text) in [
        ("14155550201", "a1"),
        ("14155550202", "b1"),
        ("14155550201", "a2"),
        ("14155550202", "b2"),
        ("14155550201", "a3"),
    ] {
        stack.patient_writes(from, "", text).await;
    }
    let (s, _) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "14155550201", "message": "Noted"}),
        )
        .await;
    assert_eq!(s, 200);
    eventually(LIMIT, "failed attempts while the CRM is down", || {
        let api = api.clone();
        async move {
            let (_, log) = api
                .get(&format!("/api/event-endpoints/{id}/deliveries"))
                .await;
            let log = log.as_array().cloned().unwrap_or_default();
            (log.len() >= 5 && log.iter().any(|d| d["attempts"].as_i64() >= Some(2))).then_some(())
        }
    })
    .await;
    let listed = endpoint(&api, id).await;
    assert!(listed["failing_since"].is_string(), "{listed}");
    assert!(listed["pending"].as_i64().unwrap() >= 5);
    let (_, log) = api
        .get(&format!("/api/event-endpoints/{id}/deliveries"))
        .await;
    let failed = log
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| d["last_error"].as_str())
        .unwrap_or_else(|| panic!("no failed attempt in {log}"));
    assert!(failed.contains("503"), "{failed}");

    // Back up: everything arrives.
    receiver.up.store(true, Ordering::SeqCst);
    // 5 received, plus sent, delivered and read for the answer.
    eventually(LIMIT, "every event delivered", || {
        let api = api.clone();
        async move {
            let e = endpoint(&api, id).await;
            let (_, log) = api
                .get(&format!("/api/event-endpoints/{id}/deliveries"))
                .await;
            (e["pending"] == 0 && log.as_array().unwrap().len() >= 8).then_some(())
        }
    })
    .await;
    let got = receiver.got.lock().unwrap().clone();
    let mut ids = std::collections::HashSet::new();
    let mut texts: HashMap<String, Vec<String>> = HashMap::new();
    let mut statuses = Vec::new();
    for (sig, body) in &got {
        assert!(verify(&secret, sig, body), "bad signature {sig}");
        assert!(!verify("not-the-secret", sig, body));
        let event: Value = serde_json::from_slice(body).unwrap();
        assert!(
            ids.insert(event["id"].as_str().unwrap().to_string()),
            "received twice"
        );
        let data = &event["data"];
        match event["type"].as_str().unwrap() {
            "message.received" => texts
                .entry(data["phone"].as_str().unwrap().to_string())
                .or_default()
                .push(data["text"].as_str().unwrap().to_string()),
            "message.status" => {
                let status = data["status"].as_str().unwrap().to_string();
                // What WhatsApp reports (delivered, read) carries what it charges: a reply
                // inside the window is a free service message.
                if status != "sent" {
                    assert_eq!(data["pricing"]["category"], "service", "{data}");
                    assert_eq!(data["pricing"]["billable"], false, "{data}");
                    assert_eq!(data["pricing"]["estimated_cost"], 0.0, "{data}");
                }
                statuses.push(status)
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(
        texts["14155550201"],
        vec!["a1", "a2", "a3"],
        "in order per contact"
    );
    assert_eq!(texts["14155550202"], vec!["b1", "b2"]);
    assert_eq!(statuses, vec!["sent", "delivered", "read"], "{statuses:?}");
    let e = endpoint(&api, id).await;
    assert!(
        e["failing_since"].is_null(),
        "a success clears the failure run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_keeps_failing_is_disabled_and_catches_up_when_enabled() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |s| {
        s.sender.event_retry_base_ms = 100;
        s.sender.event_retry_max_secs = 1;
        s.sender.event_disable_after_secs = 1;
    })
    .await;
    let api = stack.app.admin().await;
    let (receiver, url) = start_receiver().await;
    let (_, created) = api
        .post(
            "/api/event-endpoints",
            &json!({"url": url, "events": ["message.received"]}),
        )
        .await;
    let id = created["data"]["id"].as_i64().unwrap();
    stack.patient_writes("14155550203", "", "hello?").await;
    let disabled = eventually(LIMIT, "the endpoint disabled", || {
        let api = api.clone();
        async move {
            let e = endpoint(&api, id).await;
            (e["enabled"] == false).then_some(e)
        }
    })
    .await;
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("failing since"), "{reason}");
    assert!(reason.contains("503"), "{reason}");
    assert_eq!(disabled["pending"], 1, "its event waits");
    // A disabled endpoint still collects its events, for when it is back.
    stack.patient_writes("14155550203", "", "anyone?").await;
    eventually(LIMIT, "the second event kept", || {
        let api = api.clone();
        async move { (endpoint(&api, id).await["pending"] == 2).then_some(()) }
    })
    .await;

    receiver.up.store(true, Ordering::SeqCst);
    let (s, body) = api
        .put(
            &format!("/api/event-endpoints/{id}"),
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    eventually(LIMIT, "the waiting events delivered", || {
        let receiver = receiver.clone();
        async move { (receiver.got.lock().unwrap().len() == 2).then_some(()) }
    })
    .await;
    let texts: Vec<String> = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| {
            let e: Value = serde_json::from_slice(body).unwrap();
            e["data"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(texts, vec!["hello?", "anyone?"]);
    let e = endpoint(&api, id).await;
    assert_eq!(e["enabled"], true);
    assert!(e["disabled_reason"].is_null());
    assert_eq!(e["pending"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_for_admins_and_bad_input_is_refused() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let api = stack.app.admin().await;
    for (bad, says) in [
        (json!({"url": "ftp://x.example"}), "url"),
        (
            json!({"url": "https://x.example", "events": ["message.deleted"]}),
            "unknown event type",
        ),
        (json!({"events": []}), "url"),
    ] {
        let (s, body) = api.post("/api/event-endpoints", &bad).await;
        assert_eq!(s, 422, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    let (s, _) = api
        .put("/api/event-endpoints/99", &json!({"enabled": true}))
        .await;
    assert_eq!(s, 404);
    let (_, listed) = api.get("/api/event-endpoints").await;
    assert_eq!(listed, json!([]));
    let (_, user) = api
        .post(
            "/api/users",
            &json!({"username": "nurse", "password": "a-long-password"}),
        )
        .await;
    assert!(user["success"] == true);
    let nurse = stack
        .app
        .authed(&stack.app.login("nurse", "a-long-password").await);
    let (s, _) = nurse.get("/api/event-endpoints").await;
    assert_eq!(s, 403);
}

/// SSRF: with private targets off (the default), loopback and metadata addresses are refused
/// when registered, with a neutral reason; and an endpoint whose name points inside the network
/// when it is called (here `localhost`, standing for a name that was public when registered and
/// was re-pointed since: DNS rebinding) is never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_inside_the_network_are_refused_at_registration_and_at_the_call() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |s| {
        s.sender.event_private_targets = false;
        s.sender.event_retry_base_ms = 100;
        s.sender.event_retry_max_secs = 1;
    })
    .await;
    let api = stack.app.admin().await;
    let (receiver, url) = start_receiver().await;
    receiver.up.store(true, Ordering::SeqCst);
    for inside in [
        url.clone(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]:8080/hook".to_string(),
        "http://0x7f000001/hook".to_string(),
        url.replace("127.0.0.1", "localhost"),
    ] {
        let (s, body) = api
            .post("/api/event-endpoints", &json!({"url": inside}))
            .await;
        assert_eq!(s, 422, "{inside}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("public internet") && !message.contains("refused"),
            "{inside}: {message}"
        );
    }
    let (_, all) = api.get("/api/event-endpoints").await;
    assert_eq!(all.as_array().unwrap().len(), 0);

    // A name that resolves inside by the time it is called.
    let (_, me) = api.get("/api/me").await;
    heydoc_testkit::sql::execute(
        &stack.app.db.conn,
        &format!(
            "INSERT INTO event_endpoints (url, secret, events, enabled, created_by, created_at) \
             VALUES ('{}', 'whsec_test', '[]', TRUE, {}, CURRENT_TIMESTAMP)",
            url.replace("127.0.0.1", "localhost"),
            me["id"]
        ),
    )
    .await;
    let (_, all) = api.get("/api/event-endpoints").await;
    let id = all[0]["id"].as_i64().unwrap();
    stack.patient_writes("14155550204", "", "hello").await;
    let deliveries = eventually(LIMIT, "the call refused", || {
        let api = api.clone();
        async move {
            let (_, log) = api
                .get(&format!("/api/event-endpoints/{id}/deliveries"))
                .await;
            log.as_array()
                .filter(|l| l.iter().any(|d| d["attempts"].as_i64() >= Some(2)))
                .cloned()
        }
    })
    .await;
    assert_eq!(
        deliveries[0]["last_error"],
        "the endpoint's address is not on the public internet"
    );
    assert!(
        receiver.got.lock().unwrap().is_empty(),
        "it was never called"
    );
}
