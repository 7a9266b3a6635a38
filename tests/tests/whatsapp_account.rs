//! The WhatsApp account as Meta runs it: a template catalog synced through every page and
//! checked before anything is queued, a template Meta pauses pausing its campaign (and its
//! re-approval resuming it) at a real pace, what a run costs from the pricing Meta reports,
//! the account's messaging limit before a campaign starts, inbound media downloaded at once,
//! checked against its sha256 and shown to signed-in staff only, and read receipts.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_testkit::{json, Api, Backend};
use heydoc_whatsapp::sandbox::SandboxKnobs;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

fn soon() -> String {
    (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()
}

async fn sandbox_post(stack: &Stack, path: &str, body: &Value) {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", stack.sandbox_url))
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
}

fn enforce(stack: &Stack, knobs: SandboxKnobs) {
    stack.sandbox.set_knobs(SandboxKnobs {
        enforce_templates: true,
        status_delay_ms: 20,
        ..knobs
    });
}

/// `n` contacts `first+1 ..= first+n` with a new tag; returns the tag id.
async fn tagged(api: &Api, tag: &str, first: u64, n: u64) -> i64 {
    let (s, body) = api.post("/api/tags", &json!({"name": tag})).await;
    assert_eq!(s, 201, "{body}");
    let tag_id = body["data"]["id"].as_i64().unwrap();
    for i in 1..=n {
        let (s, body) = api
            .post(
                "/api/contacts",
                &json!({"phone": (first + i).to_string(), "name": format!("P{i}"), "tag_ids": [tag_id]}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
    tag_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_syncs_every_page_and_a_wrong_send_queues_nothing() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    enforce(&stack, SandboxKnobs::default());
    let api = stack.app.admin().await;
    // 250 templates at Meta: 3 pages of 100.
    let templates: Vec<Value> = (0..250)
        .map(|i| {
            json!({"id": format!("{}", 9000 + i), "name": format!("reminder_{i:03}"), "language": if i % 2 == 0 { "en_US" } else { "hi" },
                   "category": "UTILITY", "status": "APPROVED", "quality_score": {"score": "GREEN"},
                   "components": [{"type": "BODY", "text": "Dear {{1}}, see you on {{2}}."}]})
        })
        .collect();
    let res = reqwest::Client::new()
        .put(format!("{}/sandbox/templates", stack.sandbox_url))
        .json(&templates)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Before a sync nothing is checked: the catalog is empty and says so.
    let (s, catalog) = api.get("/api/templates").await;
    assert_eq!(s, 200, "{catalog}");
    assert!(catalog["synced_at"].is_null(), "{catalog}");

    let (s, synced) = api.post("/api/templates/sync", &json!({})).await;
    assert_eq!(s, 200, "{synced}");
    assert_eq!(synced["templates"], 250, "{synced}");
    let (_, catalog) = api.get("/api/templates").await;
    let listed = catalog["templates"].as_array().unwrap();
    assert_eq!(listed.len(), 250);
    let first = listed.iter().find(|t| t["name"] == "reminder_000").unwrap();
    assert_eq!(
        (
            first["body_params"].as_i64(),
            first["status"].as_str(),
            first["quality"].as_str()
        ),
        (Some(2), Some("APPROVED"), Some("GREEN"))
    );
    assert!(first["body_text"].as_str().unwrap().contains("{{2}}"));

    let body = |name: &str, language: &str, params: &[&str]| {
        let parameters: Vec<Value> = params
            .iter()
            .map(|p| json!({"type": "text", "text": p}))
            .collect();
        json!({"phone_number": "15557770001", "message": "hello",
               "template": {"name": name, "language": language, "components": [{"type": "body", "parameters": parameters}]}})
    };
    let cases = [
        (
            body("reminder_000", "en_US", &["Ana"]),
            "takes 2 body parameters; 1 given",
        ),
        (
            body("reminder_000", "hi", &["Ana", "Monday"]),
            "has no \"hi\" version; it has en_US",
        ),
        (
            body("no_such_template", "en_US", &["Ana", "Monday"]),
            "is not a template of this WhatsApp Business Account",
        ),
    ];
    for (request, expected) in &cases {
        let (s, answer) = api.post("/api/send_message", request).await;
        assert_eq!(s, 422, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
    // A schedule naming a wrong template is refused the same way.
    let (s, answer) = api
        .post("/api/scheduled-messages", &json!({"template": {"name": "reminder_001", "language": "hi"}, "recipients": ["15557770001"], "scheduled_time": soon()}))
        .await;
    assert_eq!(s, 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("takes 2 body parameters; 0 given"),
        "{answer}"
    );
    // Nothing was queued or created.
    let (s, _) = api.get("/api/contacts/15557770001").await;
    assert_eq!(s, 404);
    assert_eq!(stack.sandbox.stats().accepted, 0);

    // The right one goes out.
    let (s, answer) = api
        .post(
            "/api/send_message",
            &body("reminder_000", "en_US", &["Ana", "Monday"]),
        )
        .await;
    assert_eq!(s, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_meta_pauses_pauses_its_campaign_and_reapproval_resumes_it() {
    // A real pace: 20 messages a second, so the pause lands mid-campaign.
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| s.sender.mps = 20).await;
    let mut stack = stack;
    stack.start_scheduler().await;
    enforce(&stack, SandboxKnobs::default());
    let api = stack.app.admin().await;
    let (s, _) = api.post("/api/templates/sync", &json!({})).await;
    assert_eq!(s, 200);
    let tag = tagged(&api, "Checkups", 15552000000, 120).await;
    let template = json!({"name": "visit_reminder", "language": "en_US", "components": [{"type": "body", "parameters": [
        {"type": "text", "text": "{{name}}"}, {"type": "text", "text": "the clinic"}]}]});
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"template": template, "tag_ids": [tag], "scheduled_time": soon()}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    eventually(LIMIT, "the campaign under way", || async {
        (stack.sandbox.stats().accepted >= 20).then_some(())
    })
    .await;

    // Meta pauses the template: its webhook pauses the campaign, with the reason.
    sandbox_post(&stack, "/sandbox/templates/status", &json!({"name": "visit_reminder", "language": "en_US", "status": "PAUSED", "reason": "Low quality: patients blocked it"})).await;
    let paused = eventually(LIMIT, "the campaign paused by the template", || async {
        let (_, d) = api.get(&format!("/api/scheduled-messages/{id}")).await;
        (d["status"] == "paused").then_some(d)
    })
    .await;
    let reason = paused["status_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("visit_reminder"), "{reason}");
    // The catalog says so, and a new send naming it is refused before anything is queued.
    let (_, catalog) = api.get("/api/templates?status=PAUSED").await;
    assert_eq!(
        catalog["templates"][0]["name"], "visit_reminder",
        "{catalog}"
    );
    let (s, _) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "15552000001", "message": "hi", "template": template}),
        )
        .await;
    assert_eq!(s, 422);
    // Nothing more goes out while it is paused (a send already in flight may finish).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = stack.sandbox.stats().accepted;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.sandbox.stats().accepted,
        held,
        "sends went on while the template was paused"
    );
    assert!(held < 120, "the pause came after the campaign ended");
    let (_, deliveries) = api
        .get(&format!(
            "/api/scheduled-messages/{id}/deliveries?limit=500"
        ))
        .await;
    let failed = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "failed")
        .count();
    assert_eq!(failed, 0, "nobody fails because of a paused template");

    // Meta approves it again: the campaign resumes and everyone gets it once.
    sandbox_post(
        &stack,
        "/sandbox/templates/status",
        &json!({"name": "visit_reminder", "language": "en_US", "status": "APPROVED"}),
    )
    .await;
    eventually(LIMIT, "everyone reached after re-approval", || async {
        (stack.sandbox.stats().accepted >= 120).then_some(())
    })
    .await;
    let (_, detail) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert_ne!(detail["status"], "paused", "{detail}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = stack.sandbox.stats();
    assert_eq!(stats.accepted, 120);
    assert!(stats.by_callback.values().all(|n| *n == 1), "a double send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_costs_what_meta_priced_and_the_estimate_says_so_first_postgres() {
    run_cost(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_costs_what_meta_priced_and_the_estimate_says_so_first_sqlite() {
    run_cost(Backend::Sqlite).await;
}

async fn run_cost(backend: Backend) {
    let mut stack = Stack::spawn(backend, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    enforce(&stack, SandboxKnobs::default());
    let api = stack.app.admin().await;
    let (s, _) = api.post("/api/templates/sync", &json!({})).await;
    assert_eq!(s, 200);
    // Three patients in India, two in the US.
    let (s, body) = api.post("/api/tags", &json!({"name": "Offer"})).await;
    assert_eq!(s, 201);
    let tag = body["data"]["id"].as_i64().unwrap();
    for phone in [
        "919800000001",
        "919800000002",
        "919800000003",
        "14155550101",
        "14155550102",
    ] {
        let (s, b) = api
            .post(
                "/api/contacts",
                &json!({"phone": phone, "name": "Pat", "tag_ids": [tag]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    // One of them opted out earlier: skipped, and the estimate says so.
    let (s, b) = api
        .post(
            "/api/contacts",
            &json!({"phone": "919800000009", "name": "Out", "tag_ids": [tag]}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = api
        .put("/api/contacts/919800000009", &json!({"opted_out": true}))
        .await;
    assert_eq!(s, 200, "{b}");

    let template = json!({"name": "health_checkup_offer", "language": "en_US", "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "Offer"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "{{name}}"}, {"type": "text", "text": "20%"}]}]});
    let (s, estimate) = api
        .post(
            "/api/scheduled-messages/estimate",
            &json!({"template": template, "tag_ids": [tag]}),
        )
        .await;
    assert_eq!(s, 200, "{estimate}");
    // US (+1) numbers get no marketing templates (Meta refuses them): skipped, and said so.
    let settings = &stack.settings.pricing;
    let expected = 3.0 * settings.rate("91", "marketing");
    assert_eq!(estimate["audience"], 3, "{estimate}");
    assert_eq!(estimate["us_marketing_skipped"], 2, "{estimate}");
    assert_eq!(estimate["opted_out"], 1, "{estimate}");
    assert_eq!(estimate["category"], "marketing", "{estimate}");
    assert!(
        (estimate["estimated_cost"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{estimate}"
    );

    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"template": template, "tag_ids": [tag], "scheduled_time": soon()}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let run = eventually(LIMIT, "the run priced", || async {
        let (_, d) = api.get(&format!("/api/scheduled-messages/{id}")).await;
        let cost = d["occurrences"][0]["cost"].clone();
        let priced = cost["by_category"].as_array().map_or(0, |c| {
            c.iter()
                .map(|x| x["messages"].as_i64().unwrap_or(0))
                .sum::<i64>()
        });
        (priced == 3).then_some(cost)
    })
    .await;
    let marketing = &run["by_category"][0];
    assert_eq!(marketing["category"], "marketing", "{run}");
    assert_eq!(marketing["billable"], 3, "{run}");
    assert!(
        (run["estimated_total"].as_f64().unwrap() - expected).abs() < 1e-3,
        "{run}"
    );
    assert_eq!(run["currency"], "USD");
    let (_, deliveries) = api
        .get(&format!("/api/scheduled-messages/{id}/deliveries"))
        .await;
    let us: Vec<&Value> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["phone"].as_str().unwrap().starts_with('1'))
        .collect();
    assert_eq!(us.len(), 2);
    for d in us {
        assert_eq!(d["status"], "skipped", "{d}");
        assert!(
            d["error_reason"].as_str().unwrap().contains("US (+1)"),
            "{d}"
        );
    }
    assert_eq!(stack.sandbox.stats().accepted, 3);

    // The account's limit: Meta lowers it to 250 a day, and a bigger audience is flagged.
    sandbox_post(
        &stack,
        "/sandbox/number/quality",
        &json!({"event": "FLAGGED", "messaging_limit": "TIER_250"}),
    )
    .await;
    let number = eventually(LIMIT, "the limit recorded", || async {
        let (_, numbers) = api.get("/api/numbers").await;
        let n = numbers[0].clone();
        (n["messaging_limit"] == "TIER_250").then_some(n)
    })
    .await;
    assert_eq!(number["quality"], "YELLOW");
    let many: Vec<String> = (0..300).map(|i| format!("9198000{i:05}")).collect();
    let (s, estimate) = api
        .post(
            "/api/scheduled-messages/estimate",
            &json!({"template": template, "recipients": many}),
        )
        .await;
    assert_eq!(s, 200, "{estimate}");
    assert_eq!(estimate["exceeds_limit"], true, "{estimate}");
    assert!(
        estimate["warnings"][0]
            .as_str()
            .unwrap()
            .contains("messaging limit of 250"),
        "{estimate}"
    );
}

/// The S3-compatible server `make test` starts (moto).
fn s3_url() -> String {
    std::env::var("TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_photo_is_kept_checked_and_shown_to_staff_only() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    let message_id = inbound_photo(&stack).await;
    deleting_the_contact_removes_the_file(&stack, message_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_photo_is_kept_in_an_s3_bucket() {
    let bucket = format!("heydoc-test-{}", uuid::Uuid::new_v4().simple());
    let res = reqwest::Client::new()
        .put(format!("{}/{bucket}", s3_url()))
        .send()
        .await
        .expect("the S3-compatible server (moto) answers: run `make services`");
    assert!(res.status().is_success(), "bucket: {}", res.status());
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |s| {
        s.media.backend = heydoc_config::MediaBackend::S3;
        s.media.s3_bucket.clone_from(&bucket);
        s.media.s3_endpoint = s3_url();
        s.media.s3_access_key_id = "test".into();
        s.media.s3_secret_access_key = "test".to_string().into();
    })
    .await;
    let message_id = inbound_photo(&stack).await;
    // The file is in the bucket, under HeyDoc's own key, until its contact is deleted.
    let key = format!("/{message_id}</Key>");
    let listing = bucket_listing(&bucket).await;
    assert!(listing.contains(&key), "not in the bucket: {listing}");
    deleting_the_contact_removes_the_file(&stack, message_id).await;
    let listing = bucket_listing(&bucket).await;
    assert!(!listing.contains(&key), "still in the bucket: {listing}");
}

/// The bucket's keys, as the S3 API lists them (XML).
async fn bucket_listing(bucket: &str) -> String {
    reqwest::get(format!("{}/{bucket}?list-type=2", s3_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Deleting the patient takes their file out of the media store too, at the next media sweep
/// (run here at once).
async fn deleting_the_contact_removes_the_file(stack: &Stack, message_id: i64) {
    let state = &stack.app.state;
    let media = state.media.clone().expect("a media store");
    let row = heydoc_store::media::of_message(&state.db, message_id)
        .await
        .unwrap()
        .expect("the media row");
    let key = row.storage_key.expect("kept");
    assert!(media.get(&key).await.is_ok());
    let api = stack
        .app
        .authed(&stack.app.login("admin", "correct-horse-battery").await);
    let (s, body) = api.delete("/api/contacts/15553330001").await;
    assert_eq!(s, 200, "{body}");
    // Listed by the deletion, unless the gateway's own sweep (every 30 s) took it already.
    let listed =
        heydoc_testkit::sql::scalar(&state.db, "SELECT COUNT(*) FROM media_removals").await;
    assert!(
        listed == 1 || media.get(&key).await.is_err(),
        "the deletion listed the file"
    );
    heydoc_gateway::media::remove_deleted(state).await;
    assert!(
        matches!(
            media.get(&key).await,
            Err(heydoc_gateway::media::StoreError::Missing(_))
        ),
        "the file left the store"
    );
    assert_eq!(
        heydoc_testkit::sql::scalar(&state.db, "SELECT COUNT(*) FROM media_removals").await,
        0,
        "and its removal is done"
    );
    // The other patient's chat and media row are untouched.
    let (s, _) = api.get("/api/contacts/15553330002").await;
    assert_eq!(s, 200);
    assert_eq!(
        heydoc_testkit::sql::scalar(&state.db, "SELECT COUNT(*) FROM media_files").await,
        1
    );
}

/// A contact deleted while their photo downloads (Meta answering slowly) leaves no file behind:
/// the download that finishes afterwards finds its row gone and removes what it kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_deleted_mid_download_leaves_no_file() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    let api = stack.app.admin().await;
    stack.sandbox.set_knobs(SandboxKnobs {
        latency_ms: 1_500,
        ..SandboxKnobs::default()
    });
    let photo: Vec<u8> = (0..5_000u32).map(|i| (i % 251) as u8).collect();
    sandbox_post(
        &stack,
        "/sandbox/inbound",
        &json!({"from": "15553330009", "name": "Ana", "text": "x-ray",
        "media": {"kind": "image", "mime_type": "image/jpeg",
                  "data_base64": base64::engine::general_purpose::STANDARD.encode(&photo)}}),
    )
    .await;
    eventually(LIMIT, "the photo's row, pending", || async {
        (heydoc_testkit::sql::scalar(
            &stack.app.state.db,
            "SELECT COUNT(*) FROM media_files WHERE state = 'pending'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    let (s, body) = api.delete("/api/contacts/15553330009").await;
    assert_eq!(s, 200, "{body}");
    // Meta's two slow answers (the file's URL, then the file) take 3 s; twice that is ample.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let dir = stack.settings.media_dir();
    let files = count_files(&dir);
    assert_eq!(files, 0, "a deleted contact's file is in {}", dir.display());
    assert_eq!(
        heydoc_testkit::sql::scalar(&stack.app.state.db, "SELECT COUNT(*) FROM media_files").await,
        0
    );
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        count_files(&path)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A patient sends a photo, then a tampered one; answers the first message's id.
async fn inbound_photo(stack: &Stack) -> i64 {
    let api = stack.app.admin().await;
    let photo: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let send_photo = |from: &'static str| {
        let photo = photo.clone();
        async move {
            sandbox_post(stack, "/sandbox/inbound", &json!({"from": from, "name": "Ana", "text": "my prescription",
                "media": {"kind": "image", "mime_type": "image/jpeg",
                          "data_base64": base64::engine::general_purpose::STANDARD.encode(&photo)}})).await;
        }
    };
    send_photo("15553330001").await;
    let message: Value = eventually(LIMIT, "the photo in the chat", || async {
        let (_, chat) = api.get("/api/messages/15553330001").await;
        let m = chat[0].clone();
        (m["message_type"] == "image").then_some(m)
    })
    .await;
    assert_eq!(message["message_text"], "my prescription");
    let url = message["media_url"].as_str().unwrap().to_string();
    let file = eventually(LIMIT, "the file downloaded", || async {
        let res = api.client.get(api.url(&url)).send().await.unwrap();
        (res.status() == 200).then_some(res)
    })
    .await;
    assert_eq!(file.headers()["content-type"], "image/jpeg");
    assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    assert_eq!(file.bytes().await.unwrap().to_vec(), photo);
    // Nobody signed in gets it.
    let res = reqwest::get(api.url(&url)).await.unwrap();
    assert_eq!(res.status(), 401);
    // The chat page shows it inline.
    let page = api.page("/chat/15553330001").await;
    assert!(
        page.contains(&format!("src=\"{url}\"")),
        "the chat page does not show the photo"
    );

    // A download that does not match the sha256 Meta announced is refused, never shown.
    stack.sandbox.set_knobs(SandboxKnobs {
        tamper_media: true,
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    send_photo("15553330002").await;
    let (status, answer) = eventually(LIMIT, "the tampered file refused", || async {
        let (_, chat) = api.get("/api/messages/15553330002").await;
        let url = chat[0]["media_url"].as_str()?.to_string();
        let (s, body) = api.get(&url).await;
        (s != 409).then_some((s, body))
    })
    .await;
    assert_eq!(status, 410, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("does not match the sha256"),
        "{answer}"
    );
    message["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_chat_sends_the_read_receipt_and_replying_shows_typing() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let api = stack.app.admin().await;
    stack
        .patient_writes("15554440001", "Ravi", "Is the clinic open?")
        .await;
    eventually(LIMIT, "the message in", || async {
        let (_, chat) = api.get("/api/messages/15554440001").await;
        (chat.as_array().is_some_and(|c| !c.is_empty())).then_some(())
    })
    .await;
    let (s, body) = api.post("/api/messages/15554440001/read", &json!({})).await;
    assert_eq!(s, 200, "{body}");
    eventually(LIMIT, "the read receipt at Meta", || async {
        (stack.sandbox.stats().read_receipts == 1).then_some(())
    })
    .await;
    let (s, body) = api
        .post("/api/messages/15554440001/typing", &json!({}))
        .await;
    assert_eq!(s, 202, "{body}");
    eventually(LIMIT, "the typing indicator at Meta", || async {
        (stack.sandbox.stats().typing_indicators == 1).then_some(())
    })
    .await;
    // Reading again with nothing unread sends nothing more.
    let (s, _) = api.post("/api/messages/15554440001/read", &json!({})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.sandbox.stats().read_receipts, 2);
}

/// A user who adopted a username writes without a phone number: they are a contact keyed by
/// their business-scoped user id, get a reply (sent to `recipient`), STOP works, and the next
/// campaign skips them; when they later show their phone too, the two become one contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_only_user_writes_gets_a_reply_stops_and_is_skipped() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    const ZOE: &str = "US.13491208655302741918";
    let writes = |text: &'static str, from: &'static str| {
        let stack = &stack;
        async move {
            sandbox_post(
                stack,
                "/sandbox/inbound",
                &json!({"from": from, "user_id": ZOE, "username": "@zoe.k", "name": "Zoe", "text": text}),
            )
            .await;
        }
    };
    writes("Hello, is there a slot today?", "").await;
    let contact = eventually(LIMIT, "the contact", || async {
        let (s, c) = api.get(&format!("/api/contacts/{ZOE}")).await;
        (s == 200).then_some(c)
    })
    .await;
    assert_eq!(
        (
            contact["name"].as_str(),
            contact["user_id"].as_str(),
            contact["username"].as_str()
        ),
        (Some("Zoe"), Some(ZOE), Some("@zoe.k")),
        "{contact}"
    );

    // The reply goes to the user id.
    let (s, sent) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": ZOE, "message": "Yes, at 4 pm."}),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    let reply = eventually(LIMIT, "the reply delivered", || async {
        let (_, chat) = api.get(&format!("/api/messages/{ZOE}")).await;
        (chat[0]["direction"] == "outgoing" && chat[0]["status"] == "read").then(|| chat[0].clone())
    })
    .await;
    // Meta's answer names the user id, not a wa_id: read as a success, never `unknown`.
    assert!(reply["error_reason"].is_null(), "{reply}");
    assert_eq!(stack.sandbox.stats().texts[ZOE], "Yes, at 4 pm.");

    // STOP from the user id opts them out, with the confirmation.
    writes("STOP", "").await;
    eventually(LIMIT, "the opt-out", || async {
        let (_, c) = api.get(&format!("/api/contacts/{ZOE}")).await;
        (c["opted_out"] == true).then_some(())
    })
    .await;
    let stop_reply = stack.settings.optout.stop_reply.clone();
    eventually(LIMIT, "the confirmation", || async {
        (stack.sandbox.stats().texts.get(ZOE) == Some(&stop_reply)).then_some(())
    })
    .await;

    // The next campaign to their tag skips them, with the reason.
    let (_, tag) = api.post("/api/tags", &json!({"name": "Walk-ins"})).await;
    let tag = tag["data"]["id"].as_i64().unwrap();
    let (s, b) = api
        .post(&format!("/api/contacts/{ZOE}/tags/{tag}"), &json!({}))
        .await;
    assert!(s == 200 || s == 201, "{b}");
    // Their phone is already a contact with the same tag (the clinic typed it in): the run
    // reaches both, and the merge below must keep one delivery per person.
    let (s, b) = api
        .post(
            "/api/contacts",
            &json!({"phone": "14155559999", "name": "Zoe K.", "tag_ids": [tag]}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, created) = api
        .post("/api/scheduled-messages", &json!({"message": "We are open on Sunday.", "tag_ids": [tag], "scheduled_time": soon()}))
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let delivery = eventually(LIMIT, "the deliveries", || async {
        let (_, d) = api
            .get(&format!("/api/scheduled-messages/{id}/deliveries"))
            .await;
        let d = d.as_array()?.clone();
        if d.len() < 2 {
            return None;
        }
        d.into_iter().find(|x| x["phone"] == ZOE)
    })
    .await;
    assert_eq!(delivery["status"], "skipped", "{delivery}");
    assert!(
        delivery["error_reason"]
            .as_str()
            .unwrap()
            .contains("opted out"),
        "{delivery}"
    );
    eventually(LIMIT, "the phone's delivery sent", || async {
        let texts = stack.sandbox.stats().texts;
        (texts.get("14155559999").map(String::as_str) == Some("We are open on Sunday."))
            .then_some(())
    })
    .await;
    assert_ne!(stack.sandbox.stats().texts[ZOE], "We are open on Sunday.");

    // Later they write with their phone too: one contact, with the whole conversation.
    writes("My number, for the record", "14155559999").await;
    let merged = eventually(LIMIT, "the contacts merged", || async {
        let (s, c) = api.get("/api/contacts/14155559999").await;
        (s == 200 && c["user_id"] == ZOE).then_some(c)
    })
    .await;
    assert_eq!(merged["opted_out"], true, "the opt-out stays: {merged}");
    assert_eq!(
        merged["name"], "Zoe K.",
        "the phone's contact keeps its name"
    );
    let (_, deliveries) = api
        .get(&format!("/api/scheduled-messages/{id}/deliveries"))
        .await;
    let in_run = deliveries.as_array().unwrap();
    assert_eq!(
        in_run.len(),
        1,
        "one delivery per person in the run: {deliveries}"
    );
    assert!(
        ["sent", "delivered", "read"].contains(&in_run[0]["status"].as_str().unwrap_or_default()),
        "{deliveries}"
    );
    let (s, _) = api.get(&format!("/api/contacts/{ZOE}")).await;
    assert_eq!(s, 404, "the user-id contact was folded into the phone's");
    let (_, chat) = api.get("/api/messages/14155559999?limit=50").await;
    assert!(chat.as_array().unwrap().len() >= 5, "{chat}");
}

/// A file staff attach is uploaded to WhatsApp once, for the number it goes from, and every
/// send names it by Meta's id; what WhatsApp cannot send is refused before anything is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_uploaded_once_and_sent_by_its_id() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let api = stack.app.admin().await;
    for (phone, name) in [("15556660001", "Ana"), ("15556660002", "Ravi")] {
        stack
            .patient_writes(phone, name, "Can you send the leaflet?")
            .await;
    }
    let pdf = b"%PDF-1.4\n% a leaflet\n".repeat(200);
    let upload = |content_type: &'static str, bytes: Vec<u8>| {
        let api = &api;
        async move {
            let res = api
                .client
                .post(api.url("/api/media?filename=leaflet.pdf"))
                .header("content-type", content_type)
                .body(bytes)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (s, refused) = upload("text/html", b"<script>".to_vec()).await;
    assert_eq!(s, 415, "{refused}");
    let (s, uploaded) = upload("application/pdf", pdf.clone()).await;
    assert_eq!(s, 201, "{uploaded}");
    let file = &uploaded["data"];
    assert_eq!(
        (file["kind"].as_str(), file["size"].as_u64()),
        (Some("document"), Some(pdf.len() as u64))
    );
    let upload_id = file["id"].as_i64().unwrap();

    for phone in ["15556660001", "15556660002"] {
        let (s, sent) = api
            .post("/api/send_message", &json!({"phone_number": phone, "message": "Our leaflet", "media": {"upload_id": upload_id}}))
            .await;
        assert_eq!(s, 200, "{sent}");
        assert_eq!(sent["data"]["message_type"], "document", "{sent}");
    }
    let stats = eventually(LIMIT, "both files sent", || async {
        let stats = stack.sandbox.stats();
        (stats.media_sent.len() == 2).then_some(stats)
    })
    .await;
    assert_eq!(stats.uploads, 1, "uploaded once");
    assert_eq!(
        stats.media_sent["15556660001"],
        file["media_id"].as_str().unwrap()
    );
    assert_eq!(
        stats.media_sent["15556660002"],
        file["media_id"].as_str().unwrap()
    );

    // A campaign carries the same file to a tag: every recipient gets it by id, no new upload.
    let mut stack = stack;
    stack.start_scheduler().await;
    let (_, tag) = api.post("/api/tags", &json!({"name": "Leaflet"})).await;
    let tag = tag["data"]["id"].as_i64().unwrap();
    for phone in ["15556660001", "15556660002"] {
        let (s, b) = api
            .post(&format!("/api/contacts/{phone}/tags/{tag}"), &json!({}))
            .await;
        assert!(s == 200 || s == 201, "{b}");
    }
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "This month's leaflet", "tag_ids": [tag],
               "scheduled_time": soon(), "media": {"upload_id": upload_id}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["data"]["media"]["kind"], "document", "{created}");
    let campaign = created["data"]["id"].as_i64().unwrap();
    eventually(LIMIT, "the campaign's files sent", || async {
        let (_, d) = api
            .get(&format!("/api/scheduled-messages/{campaign}/deliveries"))
            .await;
        let d = d.as_array()?.clone();
        (d.len() == 2
            && d.iter().all(|x| {
                ["sent", "delivered", "read"].contains(&x["status"].as_str().unwrap_or_default())
            }))
        .then_some(())
    })
    .await;
    let stats = stack.sandbox.stats();
    assert_eq!(stats.uploads, 1, "still uploaded once");
    assert_eq!(stats.accepted, 4);

    // Naming an upload that does not exist, or a file and a template at once, is refused.
    let (s, _) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "15556660001", "message": "x", "media": {"upload_id": 999}}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .post("/api/send_message", &json!({"phone_number": "15556660001", "message": "x", "media": {"upload_id": upload_id},
               "template": {"name": "hello_world", "language": "en_US"}}))
        .await;
    assert_eq!(s, 422);
}

/// A campaign larger than the account's limit is spread over days: each run sends its daily
/// share at once, and the rest wait (as retries that spent nothing) for the days after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_spread_over_days_sends_its_daily_share_and_the_rest_waits() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let tag = tagged(&api, "Spread", 15557000000, 5).await;
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "Flu shots this week.", "tag_ids": [tag], "scheduled_time": soon(), "daily_limit": 2}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["data"]["daily_limit"], 2);
    let id = created["data"]["id"].as_i64().unwrap();
    let deliveries = eventually(LIMIT, "today's share sent", || async {
        let (_, d) = api
            .get(&format!("/api/scheduled-messages/{id}/deliveries"))
            .await;
        let d = d.as_array()?.clone();
        let sent = d
            .iter()
            .filter(|x| {
                ["sent", "delivered", "read"].contains(&x["status"].as_str().unwrap_or_default())
            })
            .count();
        (d.len() == 5 && sent == 2).then_some(d)
    })
    .await;
    let waiting: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["status"] == "retrying")
        .collect();
    assert_eq!(waiting.len(), 3, "{deliveries:?}");
    let reasons: Vec<&str> = waiting
        .iter()
        .map(|d| d["error_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| r.contains("on day 2")).count(),
        2,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| r.contains("on day 3")).count(),
        1,
        "{reasons:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.sandbox.stats().accepted,
        2,
        "only today's share went out"
    );
    // Bad input: a limit below one.
    let (s, answer) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "x", "tag_ids": [tag], "scheduled_time": soon(), "daily_limit": 0}),
        )
        .await;
    assert_eq!(s, 422, "{answer}");
}

/// A number as Meta describes it: read when it is added (display number as Meta writes it,
/// verified name, quality, limit, throughput), and Meta's quality webhooks, which name it by its
/// digits alone, reach it whatever punctuation its display number has. A campaign larger than
/// the limit says so when it is created, unless it is spread over days within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_is_described_by_meta_and_its_quality_webhooks_find_it() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    let api = stack.app.admin().await;
    const SECOND: &str = "106540352242999";
    let (s, body) = api
        .post(
            "/api/numbers",
            &json!({"phone_number_id": SECOND, "display_number": "Clinic B",
                    "waba_id": heydoc_whatsapp::sandbox::SANDBOX_WABA, "access_token": "second-token", "mps": 10}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let described = eventually(LIMIT, "Meta's description of the number", || async {
        let (_, numbers) = api.get("/api/numbers").await;
        numbers
            .as_array()?
            .iter()
            .find(|n| n["phone_number_id"] == SECOND && n["verified_name"].is_string())
            .cloned()
    })
    .await;
    assert_eq!(
        described["display_number"], "+1 555-000-1111",
        "{described}"
    );
    assert_eq!(described["verified_name"], "HeyDoc Sandbox Clinic");
    assert_eq!(described["throughput"], "STANDARD");
    assert_eq!(described["messaging_limit"], "TIER_1K");

    // Meta flags the number: its webhook names it "15550001111".
    sandbox_post(
        &stack,
        "/sandbox/number/quality",
        &json!({"event": "FLAGGED", "messaging_limit": "TIER_250"}),
    )
    .await;
    let flagged = eventually(LIMIT, "the second number's new limit", || async {
        let (_, numbers) = api.get("/api/numbers").await;
        numbers
            .as_array()?
            .iter()
            .find(|n| n["phone_number_id"] == SECOND && n["messaging_limit"] == "TIER_250")
            .cloned()
    })
    .await;
    assert_eq!(flagged["quality"], "YELLOW", "{flagged}");

    // 300 people on a 250 limit: created, with the warning; spread at 200 a day: no warning.
    let many: Vec<String> = (0..300).map(|i| format!("9198100{i:05}")).collect();
    let template = json!({"name": "visit_reminder", "language": "en_US", "components": [{"type": "body", "parameters": [
        {"type": "text", "text": "{{name}}"}, {"type": "text", "text": "the clinic"}]}]});
    let body = json!({"template": template, "recipients": many, "from": SECOND,
                      "scheduled_time": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()});
    let (s, created) = api.post("/api/scheduled-messages", &body).await;
    assert_eq!(s, 201, "{created}");
    assert!(
        created["data"]["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("messaging limit of 250"),
        "{created}"
    );
    let mut spread = body.clone();
    spread["daily_limit"] = json!(200);
    let (s, created) = api.post("/api/scheduled-messages", &spread).await;
    assert_eq!(s, 201, "{created}");
    assert!(created["data"].get("warnings").is_none(), "{created}");
}

/// A burst of inbound files is downloaded a few at a time (`media.downloads_at_once`), each
/// streamed to the store and kept whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_inbound_files_downloads_a_few_at_a_time() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |s| {
        s.media.downloads_at_once = 2;
    })
    .await;
    let api = stack.app.admin().await;
    stack.sandbox.set_knobs(SandboxKnobs {
        latency_ms: 300,
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    let file: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&file);
    for i in 0..8 {
        sandbox_post(
            &stack,
            "/sandbox/inbound",
            &json!({"from": format!("1555444000{i}"), "name": "Ana", "text": "scan",
                    "media": {"kind": "document", "mime_type": "application/pdf", "filename": "scan.pdf",
                              "data_base64": encoded}}),
        )
        .await;
    }
    let db = stack.app.state.db.clone();
    eventually(LIMIT, "the 8 files kept", || async {
        (heydoc_testkit::sql::scalar(
            &db,
            "SELECT COUNT(*) FROM media_files WHERE state = 'stored'",
        )
        .await
            == 8)
            .then_some(())
    })
    .await;
    let stats = stack.sandbox.stats();
    assert_eq!(stats.media_downloads, 8);
    assert!(
        stats.max_downloads_at_once <= 2,
        "{} downloads at once",
        stats.max_downloads_at_once
    );
    let (_, chat) = api.get("/api/messages/15554440003").await;
    let url = chat[0]["media_url"].as_str().unwrap().to_string();
    let res = api.client.get(api.url(&url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().to_vec(), file);
}
