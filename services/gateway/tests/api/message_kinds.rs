//! Every kind of message as the patient sent it, from webhooks written as Meta documents them
//! (its OpenAPI file's examples and its webhook references): a system notice, an order, a
//! location, shared contacts, a flow's answers, and a reaction, an edit and a deletion that
//! change the message they name instead of adding chat lines.

use heydoc_testkit::fixtures::inbound_raw;
use heydoc_testkit::{json, on_both_backends, Backend, TestApp};

const FROM: &str = "16505551234";

async fn kinds_show_as_sent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let post = |message: serde_json::Value| {
        let app = &app;
        async move {
            let res = app
                .post_webhook(&inbound_raw(FROM, "Sheena Nelson", message))
                .await;
            assert!(res.status().is_success(), "{}", res.status());
        }
    };
    let ts = "1750269342";
    post(
        json!({"from": FROM, "id": "wamid.TEXT1", "timestamp": ts, "type": "text",
                "text": {"body": "Can I come at 4?"}}),
    )
    .await;
    post(
        json!({"from": FROM, "id": "wamid.TEXT2", "timestamp": ts, "type": "text",
                "text": {"body": "My old number is 16505551234"}}),
    )
    .await;
    post(
        json!({"from": FROM, "id": "wamid.SYSTEM", "timestamp": ts, "type": "system",
                "system": {"body": "User Sheena Nelson changed from 16505551234 to 12195555358",
                           "wa_id": "12195555358", "type": "user_changed_number"}}),
    )
    .await;
    post(json!({"from": FROM, "id": "wamid.ORDER", "timestamp": ts, "type": "order",
                "order": {"catalog_id": "194836987003835", "text": "",
                          "product_items": [{"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30, "currency": "USD"},
                                            {"product_retailer_id": "nqryix03ez", "quantity": 1, "item_price": 25, "currency": "USD"}]}})).await;
    post(
        json!({"from": FROM, "id": "wamid.LOCATION", "timestamp": ts, "type": "location",
                "location": {"address": "1 Hacker Way, Menlo Park, CA 94025", "latitude": 37.4847,
                             "longitude": -122.1486, "name": "Meta HQ"}}),
    )
    .await;
    post(json!({"from": FROM, "id": "wamid.CONTACTS", "timestamp": ts, "type": "contacts",
                "contacts": [{"name": {"first_name": "Lucía", "last_name": "Gómez", "formatted_name": "Lucía Gómez"},
                              "org": {"company": "Google"},
                              "phones": [{"phone": "+1 (983) 555-2319", "wa_id": "19835552319", "type": "MOBILE"}]}]})).await;
    post(json!({"from": FROM, "id": "wamid.FLOW", "timestamp": ts, "type": "interactive",
                "context": {"from": "15550783881", "id": "wamid.ASKED"},
                "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
                    "response_json": "{\"flow_token\":\"abc\",\"date\":\"2026-12-08\",\"doctor\":\"Dr. Rao\"}"}}})).await;
    // A reaction, its change and its removal; an edit; a deletion.
    post(
        json!({"from": FROM, "id": "wamid.REACT1", "timestamp": ts, "type": "reaction",
                "reaction": {"message_id": "wamid.TEXT1", "emoji": "😂"}}),
    )
    .await;
    post(
        json!({"from": FROM, "id": "wamid.REACT2", "timestamp": ts, "type": "reaction",
                "reaction": {"message_id": "wamid.TEXT1", "emoji": "👍"}}),
    )
    .await;
    post(json!({"from": FROM, "id": "wamid.EDIT", "timestamp": ts, "type": "edit",
                "edit": {"original_message_id": "wamid.TEXT1",
                         "message": {"context": {"id": "wamid.TEXT1"}, "type": "text", "text": {"body": "Can I come at 5?"}}}})).await;
    post(
        json!({"from": FROM, "id": "wamid.REVOKE", "timestamp": ts, "type": "revoke",
                "revoke": {"original_message_id": "wamid.TEXT2"}}),
    )
    .await;

    let (s, chat) = api.get(&format!("/api/messages/{FROM}")).await;
    assert_eq!(s, 200, "{chat}");
    let chat = chat.as_array().unwrap().clone();
    // Seven chat lines: the reactions, the edit and the deletion added none.
    assert_eq!(chat.len(), 7, "{chat:?}");
    let by = |wamid: &str| {
        chat.iter()
            .find(|m| m["message_id"] == wamid)
            .cloned()
            .unwrap_or_else(|| panic!("{wamid} missing"))
    };
    let first = by("wamid.TEXT1");
    assert_eq!(first["message_text"], "Can I come at 5?");
    assert_eq!(first["edits"][0]["text"], "Can I come at 4?");
    assert!(first["edited_at"].is_string());
    assert_eq!(
        first["reactions"],
        json!([{"emoji": "👍", "from": FROM, "at": first["reactions"][0]["at"]}])
    );
    let gone = by("wamid.TEXT2");
    assert_eq!(gone["message_text"], "");
    assert!(gone["deleted_at"].is_string());
    assert!(gone.get("edits").is_none());
    assert_eq!(
        by("wamid.SYSTEM")["message_text"],
        "User Sheena Nelson changed from 16505551234 to 12195555358"
    );
    let order = by("wamid.ORDER");
    assert_eq!(order["order"]["items"].as_array().unwrap().len(), 2);
    assert!(order["message_text"]
        .as_str()
        .unwrap()
        .contains("85.00 USD"));
    let place = by("wamid.LOCATION");
    assert_eq!(place["location"]["name"], "Meta HQ");
    assert!(place["location"]["map_url"]
        .as_str()
        .unwrap()
        .contains("37.4847"));
    let cards = by("wamid.CONTACTS");
    assert_eq!(cards["shared_contacts"][0]["name"], "Lucía Gómez");
    assert_eq!(
        cards["shared_contacts"][0]["phones"][0]["wa_id"],
        "19835552319"
    );
    let flow = by("wamid.FLOW");
    assert_eq!(flow["flow_reply"]["fields"]["doctor"], "Dr. Rao");
    assert!(flow["flow_reply"]["fields"].get("flow_token").is_none());

    // Removing the reaction leaves none.
    post(
        json!({"from": FROM, "id": "wamid.REACT3", "timestamp": ts, "type": "reaction",
                "reaction": {"message_id": "wamid.TEXT1", "emoji": ""}}),
    )
    .await;
    let (_, chat) = api.get(&format!("/api/messages/{FROM}")).await;
    let first = chat
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == "wamid.TEXT1")
        .unwrap()
        .clone();
    assert!(first.get("reactions").is_none(), "{first}");

    // The chat page shows each as sent.
    let page = api.page(&format!("/chat/{FROM}")).await;
    for shown in [
        "Meta HQ",
        "1 Hacker Way, Menlo Park, CA 94025",
        "openstreetmap.org",
        "Lucía Gómez",
        "+1 (983) 555-2319",
        "Add and chat",
        "di9ozbzfi4",
        "Dr. Rao",
        "changed from 16505551234 to 12195555358",
        "They deleted this message.",
        "Edited",
        "Can I come at 4?",
    ] {
        assert!(page.contains(shown), "the chat does not show {shown:?}");
    }
    assert!(
        !page.contains("[order]") && !page.contains("[location]") && !page.contains("[revoke]")
    );
}

on_both_backends!(kinds_show_as_sent);
