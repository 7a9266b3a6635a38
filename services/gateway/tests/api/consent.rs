//! Opt-out by keyword at the webhook: STOP once (one confirmation), a repeated STOP changes
//! nothing, queued campaign messages are skipped, START brings the contact back, and a replay
//! of an older webhook cannot undo a newer choice.

use heydoc_testkit::fixtures::inbound_text;
use heydoc_testkit::{on_both_backends, Api, Backend, TestApp};

const PHONE: &str = "14155550777";

async fn outgoing(api: &Api) -> Vec<(String, String)> {
    let (_, chat) = api.get(&format!("/api/messages/{PHONE}?limit=100")).await;
    let mut out: Vec<(String, String)> = chat
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outgoing")
        .map(|m| {
            (
                m["message_text"].as_str().unwrap().to_string(),
                m["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.reverse();
    out
}

async fn says(app: &TestApp, wamid: &str, text: &str, at: i64) {
    let res = app
        .post_webhook(&inbound_text(PHONE, "Pat", wamid, text, at))
        .await;
    assert_eq!(res.status(), 200);
}

async fn stop_and_start_by_keyword(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    says(&app, "wamid.C1", "hello", 1_800_000_000).await;
    let (_, contact) = api.get(&format!("/api/contacts/{PHONE}")).await;
    let contact_id = contact["id"].as_i64().unwrap() as i32;
    // A campaign message waiting to be sent.
    app.db
        .queue_campaign_message(contact_id, PHONE, "Campaign tip")
        .await;

    says(&app, "wamid.C2", "Stop.", 1_800_000_010).await;
    let (_, contact) = api.get(&format!("/api/contacts/{PHONE}")).await;
    assert_eq!(contact["opted_out"], true);
    let sent = outgoing(&api).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[0],
        ("Campaign tip".into(), "skipped".into()),
        "queued campaign messages are skipped"
    );
    assert!(sent[1].0.contains("Reply START"), "{sent:?}");
    // Again, and a replay of the same webhook: nothing more.
    says(&app, "wamid.C3", "STOP", 1_800_000_020).await;
    says(&app, "wamid.C3", "STOP", 1_800_000_020).await;
    assert_eq!(outgoing(&api).await.len(), 2);

    says(&app, "wamid.C4", "start", 1_800_000_030).await;
    let (_, contact) = api.get(&format!("/api/contacts/{PHONE}")).await;
    assert_eq!(contact["opted_out"], false);
    let sent = outgoing(&api).await;
    assert_eq!(sent.len(), 3);
    assert!(sent[2].0.contains("Reply STOP"), "{sent:?}");
    // WhatsApp redelivers the older STOP: the newer START stands.
    says(&app, "wamid.C2", "Stop.", 1_800_000_010).await;
    let (_, contact) = api.get(&format!("/api/contacts/{PHONE}")).await;
    assert_eq!(contact["opted_out"], false);
    assert_eq!(outgoing(&api).await.len(), 3);
    // A sentence with the word in it is a message, not a keyword.
    says(
        &app,
        "wamid.C5",
        "please don't stop the reminders",
        1_800_000_040,
    )
    .await;
    let (_, contact) = api.get(&format!("/api/contacts/{PHONE}")).await;
    assert_eq!(contact["opted_out"], false);
}

on_both_backends!(stop_and_start_by_keyword);
