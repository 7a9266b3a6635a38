//! Conversations as the team's work: views and their order (campaign sends and imports are not
//! conversation), status and assignment with the outbound event, notes, canned replies,
//! phone and message-text search, template sends recorded as the template, and bad input.

use heydoc_store::chat::{bump_many, Preview};
use heydoc_testkit::fixtures::{inbound_text, status};
use heydoc_testkit::{json, on_both_backends, sql, Backend, TestApp};

async fn writes(app: &TestApp, phone: &str, name: &str, text: &str, at: i64) {
    let wamid = format!("wamid.{phone}.{at}");
    let res = app
        .post_webhook(&inbound_text(phone, name, &wamid, text, at))
        .await;
    assert!(res.status().is_success());
}

fn phones(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["phone"].as_str().unwrap().to_string())
        .collect()
}

async fn views_order_and_assignment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (_, me) = api.get("/api/me").await;
    let my_id = me["id"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    // Three patients write, oldest first; an imported contact never wrote.
    writes(
        &app,
        "919800000001",
        "Asha",
        "Is the clinic open?",
        now - 300,
    )
    .await;
    writes(
        &app,
        "919800000002",
        "Ravi",
        "Hello?? Anyone there? It's urgent",
        now - 200,
    )
    .await;
    writes(
        &app,
        "919800000003",
        "Meera",
        "Thanks for the reminder",
        now - 100,
    )
    .await;
    api.post(
        "/api/contacts",
        &json!({"phone": "919800000009", "name": "Imported"}),
    )
    .await;
    // Asha's chat is read; the others stay unread.
    api.post("/api/messages/919800000001/read", &json!({}))
        .await;

    // Unread first, then the newest; the imported contact is no conversation.
    let (s, all) = api.get("/api/conversations?view=all").await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(
        phones(&all),
        ["919800000003", "919800000002", "919800000001"]
    );
    assert_eq!(all[0]["conversation"]["status"], "open");
    assert_eq!(all[0]["conversation"]["needs_reply"], true);

    // A campaign reaches Asha: her contact's activity moves, her conversation does not.
    let asha_id = all[2]["id"].as_i64().unwrap() as i32;
    bump_many(
        &app.state.db,
        &[asha_id],
        Preview::Same("Campaign tip"),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let (_, contacts) = api.get("/api/contacts").await;
    assert_eq!(
        phones(&contacts)[0],
        "919800000001",
        "contacts: newest activity"
    );
    let (_, all) = api.get("/api/conversations").await;
    assert_eq!(
        phones(&all)[2],
        "919800000001",
        "a campaign is not conversation"
    );

    // A reply answers: Ravi leaves "needs reply".
    let (s, sent) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919800000002", "message": "We are here, calling you now."}),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    let (_, waiting) = api.get("/api/conversations?view=needs_reply").await;
    assert_eq!(phones(&waiting), ["919800000003", "919800000001"]);

    // Assignment: Meera to me; "mine" and "unassigned" follow, and so do the counts.
    let (s, changed) = api
        .patch(
            "/api/conversations/919800000003",
            &json!({"assignee_id": my_id, "status": "pending"}),
        )
        .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(changed["data"]["conversation"]["assignee_id"], my_id);
    assert_eq!(changed["data"]["conversation"]["status"], "pending");
    let (_, mine) = api.get("/api/conversations?view=mine").await;
    assert_eq!(phones(&mine), ["919800000003"]);
    let (_, unassigned) = api.get("/api/conversations?view=unassigned").await;
    assert_eq!(phones(&unassigned), ["919800000002", "919800000001"]);
    let (_, counts) = api.get("/api/conversations/counts").await;
    assert_eq!(
        counts,
        json!({"needs_reply": 2, "mine": 1, "unassigned": 2, "unread": 2})
    );
    let (_, pending) = api.get("/api/conversations?status=pending").await;
    assert_eq!(phones(&pending), ["919800000003"]);

    // Resolved leaves the views; a new message reopens it.
    api.patch(
        "/api/conversations/919800000003",
        &json!({"status": "resolved"}),
    )
    .await;
    let (_, resolved) = api.get("/api/conversations?view=resolved").await;
    assert_eq!(phones(&resolved), ["919800000003"]);
    let (_, mine) = api.get("/api/conversations?view=mine").await;
    assert!(phones(&mine).is_empty());
    writes(&app, "919800000003", "Meera", "One more question", now).await;
    let (_, meera) = api.get("/api/contacts/919800000003").await;
    assert_eq!(meera["conversation"]["status"], "open");
    assert_eq!(meera["conversation"]["assignee_id"], my_id, "it stays hers");
    assert_eq!(meera["conversation"]["needs_reply"], true);

    // Unassigning takes null; leaving both out, an unknown status or user, bad views: refused.
    let (s, out) = api
        .patch(
            "/api/conversations/919800000003",
            &json!({"assignee_id": null}),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    assert!(out["data"]["conversation"]["assignee_id"].is_null());
    let (s, e) = api
        .patch("/api/conversations/919800000003", &json!({}))
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, e) = api
        .patch(
            "/api/conversations/919800000003",
            &json!({"status": "closed"}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("open, pending, resolved"),
        "{e}"
    );
    let (s, _) = api
        .patch(
            "/api/conversations/919800000003",
            &json!({"assignee_id": 99999}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .patch(
            "/api/conversations/919800000077",
            &json!({"status": "open"}),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(api.get("/api/conversations?view=everything").await.0, 400);
    assert_eq!(api.get("/api/conversations?cursor=zzz").await.0, 400);
    let (_, after) = api.get("/api/contacts/919800000003").await;
    assert_eq!(
        after["conversation"]["status"], "open",
        "a refused change changed nothing"
    );

    // The assignees: everyone active.
    let (_, team) = api.get("/api/conversations/assignees").await;
    assert_eq!(team, json!([{"id": my_id, "username": "admin"}]));

    // The reply to Ravi fails at WhatsApp: his conversation waits for a reply again.
    let reply_id = sent["data"]["id"].as_i64().unwrap();
    let res = app
        .post_webhook(&status(
            "wamid.reply.ravi",
            "failed",
            "919800000002",
            Some(reply_id),
            now,
        ))
        .await;
    assert!(res.status().is_success());
    let (_, ravi) = api.get("/api/contacts/919800000002").await;
    assert_eq!(ravi["conversation"]["needs_reply"], true, "{ravi}");

    // A colleague who leaves: their conversations become unassigned, not lost.
    let (s, bea) = api
        .post(
            "/api/users",
            &json!({"username": "bea", "password": "a-long-password", "role": "agent"}),
        )
        .await;
    assert_eq!(s, 201, "{bea}");
    let bea_id = bea["data"]["id"].as_i64().unwrap();
    api.patch(
        "/api/conversations/919800000001",
        &json!({"assignee_id": bea_id}),
    )
    .await;
    let (s, _) = api
        .patch(&format!("/api/users/{bea_id}"), &json!({"disabled": true}))
        .await;
    assert_eq!(s, 200);
    let (_, asha) = api.get("/api/contacts/919800000001").await;
    assert!(asha["conversation"]["assignee_id"].is_null(), "{asha}");
    let (_, unassigned) = api.get("/api/conversations?view=unassigned").await;
    assert!(phones(&unassigned).contains(&"919800000001".to_string()));
    app.stop().await;
}

async fn pages_search_notes_and_canned_replies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let now = chrono::Utc::now().timestamp();
    for i in 0..7 {
        writes(
            &app,
            &format!("91980000010{i}"),
            &format!("Patient {i}"),
            &format!("message number {i}"),
            now - 100 + i,
        )
        .await;
    }
    // Two unread-free ones in the middle: they sort after the unread.
    api.post("/api/messages/919800000105/read", &json!({}))
        .await;
    api.post("/api/messages/919800000102/read", &json!({}))
        .await;
    let mut seen = Vec::new();
    let mut url = "/api/conversations?limit=3".to_string();
    loop {
        let res = api.client.get(api.url(&url)).send().await.unwrap();
        let next = res
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let page: serde_json::Value = res.json().await.unwrap();
        seen.extend(phones(&page));
        match next {
            Some(cursor) => url = format!("/api/conversations?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "919800000106",
            "919800000104",
            "919800000103",
            "919800000101",
            "919800000100",
            "919800000105",
            "919800000102"
        ],
        "every conversation once, unread first"
    );

    // A phone as people write it, and message text.
    let (_, found) = api.get("/api/conversations?q=%2B91%2098000-00103").await;
    assert_eq!(phones(&found), ["919800000103"]);
    let (_, found) = api.get("/api/contacts?q=%2B91%2098000%2000104").await;
    assert_eq!(phones(&found), ["919800000104"]);
    let (_, found) = api.get("/api/conversations?q=NUMBER%205").await;
    assert_eq!(phones(&found), ["919800000105"]);

    // Private notes.
    let (s, note) = api
        .post(
            "/api/contacts/919800000101/notes",
            &json!({"body": "Prefers calls after 5 pm"}),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(note["data"]["author"], "admin");
    let (_, notes) = api.get("/api/contacts/919800000101/notes").await;
    assert_eq!(notes[0]["body"], "Prefers calls after 5 pm");
    assert_eq!(
        api.post("/api/contacts/919800000101/notes", &json!({"body": "  "}))
            .await
            .0,
        422
    );
    assert_eq!(
        api.post("/api/contacts/919800000999/notes", &json!({"body": "x"}))
            .await
            .0,
        404
    );
    let notes_now = sql::scalar(&app.state.db, "SELECT COUNT(*) FROM conversation_notes").await;
    assert_eq!(notes_now, 1, "refused notes wrote nothing");

    // Canned replies.
    let (s, hours) = api
        .post(
            "/api/canned-replies",
            &json!({"shortcut": "/Hours", "body": "We are open 9:00-18:00."}),
        )
        .await;
    assert_eq!(s, 201, "{hours}");
    assert_eq!(hours["data"]["shortcut"], "hours");
    assert_eq!(
        api.post(
            "/api/canned-replies",
            &json!({"shortcut": "hours", "body": "again"})
        )
        .await
        .0,
        409
    );
    let (s, e) = api
        .post(
            "/api/canned-replies",
            &json!({"shortcut": "two words", "body": "x"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (_, all) = api.get("/api/canned-replies").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let id = hours["data"]["id"].as_i64().unwrap();
    assert_eq!(
        api.delete(&format!("/api/canned-replies/{id}")).await.0,
        200
    );
    assert_eq!(
        api.delete(&format!("/api/canned-replies/{id}")).await.0,
        404
    );
    // The audit log keeps who deleted which reply, and what it said.
    let (_, log) = api.get("/api/audit").await;
    let deleted: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "canned_reply.delete")
        .collect();
    assert_eq!(deleted.len(), 1, "{log}");
    assert_eq!(deleted[0]["target"], "/hours");
    assert_eq!(deleted[0]["detail"]["body"], "We are open 9:00-18:00.");
    app.stop().await;
}

async fn a_template_send_needs_no_text_and_is_recorded_as_the_template(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (s, sent) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919800000201", "template": {
                "name": "appointment_reminder", "language": "en_US",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Monday 9:00"}]}]}}),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    assert_eq!(sent["data"]["message_type"], "template");
    assert_eq!(sent["data"]["template"]["name"], "appointment_reminder");
    assert_eq!(
        sent["data"]["template"]["components"][0]["parameters"][0]["text"],
        "Monday 9:00"
    );
    // Neither text nor template: a clear 422, nothing queued.
    let before = sql::scalar(&app.state.db, "SELECT COUNT(*) FROM messages").await;
    let (s, e) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919800000201"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e["message"].as_str().unwrap().contains("template"), "{e}");
    assert_eq!(
        sql::scalar(&app.state.db, "SELECT COUNT(*) FROM messages").await,
        before
    );
    app.stop().await;
}

on_both_backends!(
    views_order_and_assignment,
    pages_search_notes_and_canned_replies,
    a_template_send_needs_no_text_and_is_recorded_as_the_template
);
