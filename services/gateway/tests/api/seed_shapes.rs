//! Every endpoint of the seed API summary answers with exactly the seed's field names and types
//! (HeyDoc's additions are listed too, so a renamed or dropped field fails here).

use heydoc_testkit::shape::{assert_fields, assert_has_fields};
use heydoc_testkit::{fixtures, json, on_both_backends, Backend, TestApp};

const SEED_CONTACT: &[(&str, &str)] = &[
    ("phone", "string"),
    ("name", "string"),
    ("last_message", "string"),
    ("message_count", "integer"),
    ("unread_count", "integer"),
    ("is_group", "boolean"),
    ("tags", "array"),
];

const CONTACT: &[(&str, &str)] = &[
    ("phone", "string"),
    ("name", "string"),
    ("last_message", "string"),
    ("message_count", "integer"),
    ("unread_count", "integer"),
    ("is_group", "boolean"),
    ("tags", "array"),
    ("id", "integer"),
    ("last_message_at", "datetime|null"),
    ("last_inbound_at", "datetime|null"),
    ("opted_out", "boolean"),
    ("opted_out_at", "datetime|null"),
    ("suppressed_reason", "string|null"),
    ("attributes", "object"),
    ("created_at", "datetime"),
    ("last_number", "string|null"),
    ("user_id", "string|null"),
    ("username", "string|null"),
    ("conversation", "object"),
];

const SEED_MESSAGE: &[(&str, &str)] = &[
    ("id", "integer"),
    ("message_id", "string"),
    ("sender_phone", "string"),
    ("receiver_phone", "string"),
    ("message_type", "string"),
    ("message_text", "string"),
    ("timestamp", "datetime"),
    ("direction", "string"),
    ("is_read", "boolean"),
    ("status", "string"),
];

const SEED_SCHEDULED: &[(&str, &str)] = &[
    ("id", "integer"),
    ("message", "string"),
    ("recipients", "array"),
    ("scheduled_time", "datetime"),
    ("status", "string"),
    ("created_by", "string"),
];

const SCHEDULED: &[(&str, &str)] = &[
    ("id", "integer"),
    ("message", "string"),
    ("recipients", "array"),
    ("scheduled_time", "datetime"),
    ("status", "string"),
    ("created_by", "string"),
    ("recurrence", "string|null"),
    ("timezone", "string"),
    ("tag_ids", "array"),
    ("end_time", "datetime|null"),
    ("max_occurrences", "integer|null"),
    ("occurrence_count", "integer"),
    ("next_run_at", "datetime|null"),
    ("template", "object|null"),
    ("created_at", "datetime"),
    ("name", "string"),
    ("state", "string"),
];

async fn contacts_and_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;

    // An inbound message from a new contact, and a tag on them.
    let res = app
        .post_webhook(&fixtures::inbound_text(
            "1234567890",
            "John Doe",
            "wamid.in1",
            "Hello there!",
            1_705_314_600,
        ))
        .await;
    assert_eq!(res.status(), 200);
    let (s, tag) = api
        .post("/api/tags", &json!({"name": "Family", "color": "#ff4444"}))
        .await;
    assert_eq!(s, 201, "{tag}");
    let tag_id = tag["data"]["id"].as_i64().unwrap();
    let (s, _) = api
        .post(
            &format!("/api/contacts/1234567890/tags/{tag_id}"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);

    let (s, contacts) = api.get("/api/contacts").await;
    assert_eq!(s, 200);
    let list = contacts.as_array().expect("GET /api/contacts is an array");
    assert_eq!(list.len(), 1);
    assert_has_fields(&list[0], SEED_CONTACT);
    assert_fields(&list[0], CONTACT);
    assert_fields(
        &list[0]["tags"][0],
        &[("id", "integer"), ("name", "string"), ("color", "string")],
    );
    assert_eq!(list[0]["phone"], "1234567890");
    assert_eq!(list[0]["name"], "John Doe");
    assert_eq!(list[0]["last_message"], "Hello there!");
    assert_eq!(list[0]["message_count"], 1);
    assert_eq!(list[0]["unread_count"], 1);
    assert_eq!(list[0]["tags"][0]["color"], "#ff4444");

    // The reply, queued, and the chat newest first.
    let (s, sent) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "1234567890", "message": "Hello from the bot!"}),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    assert_fields(
        &sent,
        &[
            ("success", "boolean"),
            ("data", "object"),
            ("message", "string"),
        ],
    );
    assert_eq!(sent["success"], true);
    assert_has_fields(&sent["data"], SEED_MESSAGE);
    assert_eq!(sent["data"]["status"], "queued");

    let (s, chat) = api.get("/api/messages/1234567890?limit=20").await;
    assert_eq!(s, 200);
    let chat = chat.as_array().expect("GET /api/messages is an array");
    assert_eq!(chat.len(), 2);
    for m in chat {
        assert_has_fields(m, SEED_MESSAGE);
        assert_fields(
            m,
            &[
                SEED_MESSAGE,
                &[
                    ("error_code", "integer|null"),
                    ("error_reason", "string|null"),
                    ("media_url", "string|null"),
                ],
            ]
            .concat(),
        );
    }
    assert_eq!(chat[0]["direction"], "outgoing");
    assert_eq!(chat[0]["status"], "queued");
    assert_eq!(chat[1]["direction"], "incoming");
    assert_eq!(chat[1]["message_id"], "wamid.in1");
    assert_eq!(chat[1]["message_text"], "Hello there!");
    assert_eq!(chat[1]["timestamp"], "2024-01-15T10:30:00Z");
    assert_eq!(chat[1]["is_read"], false);

    // Paging back with `before`.
    let newest_id = chat[0]["id"].as_i64().unwrap();
    let (_, older) = api
        .get(&format!(
            "/api/messages/1234567890?limit=20&before={newest_id}"
        ))
        .await;
    assert_eq!(older.as_array().unwrap().len(), 1);
    assert_eq!(older[0]["message_id"], "wamid.in1");

    // Reading clears the badge.
    let (s, read) = api.post("/api/messages/1234567890/read", &json!({})).await;
    assert_eq!(s, 200, "{read}");
    assert_fields(
        &read,
        &[
            ("success", "boolean"),
            ("data", "object"),
            ("message", "string"),
        ],
    );
    let (_, contact) = api.get("/api/contacts/1234567890").await;
    assert_eq!(contact["unread_count"], 0);
    assert_eq!(contact["message_count"], 2);
    assert_eq!(contact["last_message"], "Hello from the bot!");
    let (_, chat) = api.get("/api/messages/1234567890").await;
    assert_eq!(chat[1]["is_read"], true);
}

async fn scheduled_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;

    let seed_body = json!({
        "message": "Good morning!",
        "recipients": ["1234567890"],
        "scheduled_time": "2030-01-16T09:00:00Z",
        "recurrence": "daily"
    });
    let (s, created) = api.post("/api/scheduled-messages", &seed_body).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["success"], true);
    assert_eq!(created["message"], "Scheduled message created successfully");
    assert_fields(&created["data"], SCHEDULED);
    let id = created["data"]["id"].as_i64().unwrap();

    let (s, list) = api.get("/api/scheduled-messages").await;
    assert_eq!(s, 200);
    let first = &list.as_array().expect("list is an array")[0];
    assert_has_fields(first, SEED_SCHEDULED);
    assert_fields(first, SCHEDULED);
    assert_eq!(first["recipients"], json!(["1234567890"]));
    assert_eq!(first["scheduled_time"], "2030-01-16T09:00:00Z");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["created_by"], "admin");
    assert_eq!(first["next_run_at"], "2030-01-16T09:00:00Z");

    let (s, one) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert_eq!(s, 200);
    assert_has_fields(&one, SEED_SCHEDULED);
    assert_fields(&one, &[SCHEDULED, &[("occurrences", "array")]].concat());

    let (_, pending) = api.get("/api/scheduled-messages/pending").await;
    assert_eq!(pending.as_array().unwrap().len(), 1);

    let (s, paused) = api
        .put(
            &format!("/api/scheduled-messages/{id}/status"),
            &json!({"status": "paused"}),
        )
        .await;
    assert_eq!(s, 200, "{paused}");
    assert_eq!(paused["data"]["status"], "paused");
    let (_, pending) = api.get("/api/scheduled-messages/pending").await;
    assert!(pending.as_array().unwrap().is_empty());
    let (s, resumed) = api
        .put(
            &format!("/api/scheduled-messages/{id}/status"),
            &json!({"status": "pending"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(resumed["data"]["status"], "pending");

    let (s, deleted) = api.delete(&format!("/api/scheduled-messages/{id}")).await;
    assert_eq!(s, 200);
    assert_fields(&deleted, &[("success", "boolean"), ("message", "string")]);
    let (s, gone) = api.get(&format!("/api/scheduled-messages/{id}")).await;
    assert_eq!(s, 404);
    assert_fields(
        &gone,
        &[
            ("success", "boolean"),
            ("message", "string"),
            ("error", "object"),
        ],
    );
    assert_eq!(gone["error"]["code"], "not_found");
}

async fn auth_endpoints(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.bare_client();
    let res = client
        .post(app.url("/register"))
        .json(&json!({"username": "admin", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_fields(
        &body,
        &[
            ("success", "boolean"),
            ("data", "object"),
            ("message", "string"),
        ],
    );
    assert_eq!(body["data"]["role"], "admin");

    let res = client
        .post(app.url("/login"))
        .json(&json!({"username": "admin", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("heydoc_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "Secure only when configured: {cookie}"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_fields(
        &body["data"],
        &[
            ("token", "string"),
            ("token_type", "string"),
            ("expires_at", "datetime"),
            ("user", "object"),
        ],
    );

    let res = client.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

on_both_backends!(contacts_and_messages, scheduled_messages, auth_endpoints);
