//! WhatsApp webhooks: verified before anything is stored, applied once, statuses forward only.

use heydoc_testkit::{
    fixtures, json, on_both_backends, read, sign, Backend, TestApp, APP_SECRET, VERIFY_TOKEN,
};

async fn bad_signatures_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let payload = fixtures::inbound_text("1234567890", "Eve", "wamid.forged", "hi", 1_700_000_000);
    let body = serde_json::to_vec(&payload).unwrap();
    let tampered = serde_json::to_vec(&fixtures::inbound_text(
        "1234567890",
        "Eve",
        "wamid.forged",
        "HI",
        1_700_000_000,
    ))
    .unwrap();
    let cases: Vec<(Option<String>, Vec<u8>)> = vec![
        (None, body.clone()),
        (Some("sha256=".into()), body.clone()),
        (Some("sha256=nothex".into()), body.clone()),
        (Some(sign(b"wrong-secret", &body)), body.clone()),
        (
            Some(sign(APP_SECRET.as_bytes(), &body).replace("sha256=", "sha1=")),
            body.clone(),
        ),
        // A valid signature over a different body.
        (Some(sign(APP_SECRET.as_bytes(), &body)), tampered),
    ];
    for (signature, body) in cases {
        let mut req = app
            .bare_client()
            .post(app.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = &signature {
            req = req.header("x-hub-signature-256", sig);
        }
        let (status, reply) = read(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "signature {signature:?}: {reply}");
        assert_eq!(reply["error"]["code"], "unauthorized");
    }
    let (_, contacts) = api.get("/api/contacts").await;
    assert_eq!(contacts, json!([]), "nothing stored");

    // A correctly signed body that is not JSON is a 400.
    let junk = b"not json".to_vec();
    let res = app
        .bare_client()
        .post(app.url("/webhooks/whatsapp"))
        .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), &junk))
        .body(junk)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

async fn inbound_messages_are_recorded_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let payload = fixtures::inbound_text(
        "16505551234",
        "Ana",
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUY",
        "I need an appointment",
        1_749_416_383,
    );
    for _ in 0..3 {
        let res = app.post_webhook(&payload).await;
        assert_eq!(res.status(), 200);
    }
    let (_, contact) = api.get("/api/contacts/16505551234").await;
    assert_eq!(contact["name"], "Ana");
    assert_eq!(
        contact["message_count"], 1,
        "replays change nothing: {contact}"
    );
    assert_eq!(contact["unread_count"], 1);
    assert_eq!(contact["last_inbound_at"], "2025-06-08T20:59:43Z");
    let (_, chat) = api.get("/api/messages/16505551234").await;
    assert_eq!(chat.as_array().unwrap().len(), 1);
    assert_eq!(chat[0]["status"], "received");
    assert_eq!(chat[0]["receiver_phone"], fixtures::DISPLAY_NUMBER);

    // A profile name never overwrites the name a user gave the contact.
    api.put(
        "/api/contacts/16505551234",
        &json!({"name": "Ana Lima (patient)"}),
    )
    .await;
    app.post_webhook(&fixtures::inbound_text(
        "16505551234",
        "Ana",
        "wamid.second",
        "thanks",
        1_749_416_400,
    ))
    .await;
    let (_, contact) = api.get("/api/contacts/16505551234").await;
    assert_eq!(contact["name"], "Ana Lima (patient)");
    assert_eq!(contact["unread_count"], 2);
    assert_eq!(contact["last_message"], "thanks");

    // An older message arriving late does not replace the newer preview.
    app.post_webhook(&fixtures::inbound_text(
        "16505551234",
        "Ana",
        "wamid.late",
        "earlier",
        1_749_416_000,
    ))
    .await;
    let (_, contact) = api.get("/api/contacts/16505551234").await;
    assert_eq!(contact["last_message"], "thanks");
    assert_eq!(contact["message_count"], 3);
}

/// Sends one message through the API and returns its delivery id.
async fn queued_message(api: &heydoc_testkit::Api, phone: &str) -> i64 {
    let (status, sent) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": phone, "message": "Your appointment is at 10"}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    sent["data"]["id"].as_i64().unwrap()
}

async fn message_status(api: &heydoc_testkit::Api, phone: &str) -> serde_json::Value {
    let (_, chat) = api.get(&format!("/api/messages/{phone}")).await;
    chat[0].clone()
}

async fn statuses_only_move_forward(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let phone = "447700900123";
    let id = queued_message(&api, phone).await;
    let wamid = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQUJDMTIz";

    // Delivered arrives before sent; the delivery id ties it to the message.
    app.post_webhook(&fixtures::status(
        wamid,
        "delivered",
        phone,
        Some(id),
        1_700_000_010,
    ))
    .await;
    let m = message_status(&api, phone).await;
    assert_eq!(
        (m["status"].as_str(), m["message_id"].as_str()),
        (Some("delivered"), Some(wamid))
    );
    app.post_webhook(&fixtures::status(
        wamid,
        "sent",
        phone,
        Some(id),
        1_700_000_005,
    ))
    .await;
    assert_eq!(
        message_status(&api, phone).await["status"],
        "delivered",
        "late sent ignored"
    );

    app.post_webhook(&fixtures::status(
        wamid,
        "read",
        phone,
        Some(id),
        1_700_000_020,
    ))
    .await;
    app.post_webhook(&fixtures::status(
        wamid,
        "delivered",
        phone,
        Some(id),
        1_700_000_010,
    ))
    .await;
    app.post_webhook(&fixtures::status(
        wamid,
        "read",
        phone,
        Some(id),
        1_700_000_020,
    ))
    .await;
    assert_eq!(
        message_status(&api, phone).await["status"],
        "read",
        "read then delivered stays read"
    );
    app.post_webhook(&fixtures::status(
        wamid,
        "failed",
        phone,
        Some(id),
        1_700_000_030,
    ))
    .await;
    assert_eq!(
        message_status(&api, phone).await["status"],
        "read",
        "no failure after read"
    );
}

async fn failure_is_terminal_and_says_why(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let phone = "919876543210";
    let id = queued_message(&api, phone).await;
    let wamid = "wamid.failed1";
    app.post_webhook(&fixtures::status(
        wamid,
        "sent",
        phone,
        Some(id),
        1_700_000_000,
    ))
    .await;
    app.post_webhook(&fixtures::status(
        wamid,
        "failed",
        phone,
        Some(id),
        1_700_000_001,
    ))
    .await;
    app.post_webhook(&fixtures::status(
        wamid,
        "delivered",
        phone,
        Some(id),
        1_700_000_002,
    ))
    .await;
    let m = message_status(&api, phone).await;
    assert_eq!(m["status"], "failed");
    assert_eq!(m["error_code"], 131026);
    assert_eq!(m["error_reason"], "Message Undeliverable.");

    // A status for a wamid nobody sent, with no delivery id, changes nothing and is still a 200
    // (Meta would otherwise retry it for days).
    let res = app
        .post_webhook(&fixtures::status(
            "wamid.unknown",
            "read",
            phone,
            None,
            1_700_000_003,
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(message_status(&api, phone).await["status"], "failed");
}

/// A failure reported by a status webhook means what the same code means in the send call's
/// answer: 131050 (the user stopped marketing messages) suppresses the contact for campaigns.
async fn a_131050_status_suppresses_the_contact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let phone = "919876543211";
    let id = queued_message(&api, phone).await;
    let mut failed = fixtures::status("wamid.stopped1", "failed", phone, Some(id), 1_700_000_000);
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = json!([{
        "code": 131050,
        "title": "User has stopped marketing messages",
        "message": "User has stopped marketing messages",
        "error_data": { "details": "Unable to deliver the marketing message." }
    }]);
    let res = app.post_webhook(&failed).await;
    assert_eq!(res.status(), 200);
    let (_, contact) = api.get(&format!("/api/contacts/{phone}")).await;
    let reason = contact["data"]["suppressed_reason"]
        .as_str()
        .or_else(|| contact["suppressed_reason"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("131050"), "{contact}");
    assert_eq!(message_status(&api, phone).await["status"], "failed");
}

async fn subscription_handshake(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.bare_client();
    let url = |token: &str| {
        app.url(&format!("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"))
    };
    let res = client.get(url(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "1158201444");
    let res = client.get(url("wrong")).send().await.unwrap();
    assert_eq!(res.status(), 403);
}

/// The environment's number is known by its id until Meta names it: the first message's
/// webhook carries its display number, which the chat then shows (never the id), and which a
/// later webhook does not overwrite once known.
async fn the_default_number_is_learned_by_its_display_number(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let id = app.settings.whatsapp.phone_number_id.clone();
    let inbound = |display: &str, wamid: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": fixtures::WABA_ID, "changes": [{
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": display, "phone_number_id": id},
                      "contacts": [{"profile": {"name": "Kabir"}, "wa_id": "919800005001"}],
                      "messages": [{"from": "919800005001", "id": wamid, "timestamp": "1765100000",
                                    "type": "text", "text": {"body": "Hello"}}]},
            "field": "messages"}]}]})
    };
    let (_, numbers) = api.get("/api/numbers").await;
    assert_eq!(numbers[0]["display_number"], json!(id), "{numbers}");
    let res = app
        .post_webhook(&inbound("15550009999", "wamid.LEARN1"))
        .await;
    assert!(res.status().is_success());
    let (_, numbers) = api.get("/api/numbers").await;
    assert_eq!(numbers[0]["display_number"], "15550009999", "{numbers}");
    let page = api.page("/chat/919800005001").await;
    assert!(
        page.contains("15550009999"),
        "the chat does not show the display number"
    );
    assert!(
        !page.contains(&format!("number {id}")),
        "the chat shows the number's id"
    );
    // Known: another webhook's metadata does not replace it.
    let res = app
        .post_webhook(&inbound("15550008888", "wamid.LEARN2"))
        .await;
    assert!(res.status().is_success());
    let (_, numbers) = api.get("/api/numbers").await;
    assert_eq!(numbers[0]["display_number"], "15550009999", "{numbers}");
}

on_both_backends!(
    the_default_number_is_learned_by_its_display_number,
    bad_signatures_are_refused_and_store_nothing,
    inbound_messages_are_recorded_once,
    statuses_only_move_forward,
    failure_is_terminal_and_says_why,
    a_131050_status_suppresses_the_contact,
    subscription_handshake,
);
