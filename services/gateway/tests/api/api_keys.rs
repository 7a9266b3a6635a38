//! API keys: shown once and stored hashed; a read key cannot write; a revoked key is refused
//! at once; keys cannot manage keys; only admins make them.

use heydoc_testkit::{json, on_both_backends, Backend, TestApp};

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

async fn keys_read_write_and_revoke(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;

    let (s, created) = admin
        .post(
            "/api/api-keys",
            &json!({"name": "CRM sync", "scope": "read"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let read_key = created["data"]["key"].as_str().unwrap().to_string();
    assert!(read_key.starts_with("hdk_"));
    assert_eq!(created["data"]["scope"], "read");
    assert_eq!(created["data"]["created_by"], "admin");
    assert!(read_key.starts_with(created["data"]["prefix"].as_str().unwrap()));
    let (_, created) = admin
        .post(
            "/api/api-keys",
            &json!({"name": "Booking system", "scope": "write"}),
        )
        .await;
    let write_key = created["data"]["key"].as_str().unwrap().to_string();

    // Lists never show a key again, nor its hash.
    let (s, listed) = admin.get("/api/api-keys").await;
    assert_eq!(s, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let text = listed.to_string();
    assert!(!text.contains(&read_key) && !text.contains(&write_key[4..]));
    let stored = hex_sha256(&read_key);
    assert!(
        !text.contains(&stored),
        "the stored hash is not shown either"
    );

    // A read key reads and cannot write; a write key writes; both work wherever a session does.
    let reader = app.authed(&read_key);
    let writer = app.authed(&write_key);
    let (s, _) = reader.get("/api/contacts").await;
    assert_eq!(s, 200);
    let (s, body) = reader
        .post("/api/contacts", &json!({"phone": "14155550100"}))
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("only read"));
    let (s, body) = reader.delete("/api/tags/1").await;
    assert_eq!(s, 403, "{body}");
    let (_, contacts) = admin.get("/api/contacts").await;
    assert_eq!(contacts, json!([]), "the refused write changed nothing");
    let (s, body) = writer
        .post(
            "/api/contacts",
            &json!({"phone": "14155550100", "name": "Via key"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = writer
        .post(
            "/api/send_message",
            &json!({"phone_number": "14155550100", "message": "hi"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // Keys cannot manage keys, even write keys of an admin.
    let (s, _) = writer.get("/api/api-keys").await;
    assert_eq!(s, 403);
    let (s, _) = writer
        .post("/api/api-keys", &json!({"name": "more", "scope": "write"}))
        .await;
    assert_eq!(s, 403);

    // Keys cannot make accounts either (an admin's key could otherwise mint a new admin).
    let (s, body) = writer
        .post(
            "/api/users",
            &json!({"username": "minted", "password": "a-long-password", "role": "admin"}),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    let (s, _) = writer.get("/api/users").await;
    assert_eq!(s, 403);
    let res = app
        .bare_client()
        .post(app.url("/register"))
        .bearer_auth(&write_key)
        .json(&json!({"username": "minted2", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "registration stays closed to keys");
    // Pages are for people: a read key cannot use them (opening a chat marks it read).
    let res = app
        .bare_client()
        .get(app.url("/inbox"))
        .bearer_auth(&read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Use is recorded.
    let mut waited = 0;
    let used = loop {
        let (_, listed) = admin.get("/api/api-keys").await;
        let key = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "CRM sync")
            .cloned()
            .unwrap();
        if key["last_used_at"].is_string() {
            break key;
        }
        waited += 1;
        assert!(waited < 200, "last_used_at never recorded: {key}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(used["revoked_at"].is_null());

    // Revoked: refused at once.
    let id = used["id"].as_i64().unwrap();
    let (s, _) = admin.delete(&format!("/api/api-keys/{id}")).await;
    assert_eq!(s, 200);
    let (s, body) = reader.get("/api/contacts").await;
    assert_eq!(s, 401, "{body}");
    let (_, listed) = admin.get("/api/api-keys").await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["id"] == id && k["revoked_at"].is_string()));
    let (s, _) = admin.delete("/api/api-keys/999").await;
    assert_eq!(s, 404);

    // Unknown and malformed keys are 401.
    let (s, _) = app.authed("hdk_0000").get("/api/contacts").await;
    assert_eq!(s, 401);
}

async fn only_admins_make_keys_and_bad_input_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (s, _) = admin
        .post(
            "/api/users",
            &json!({"username": "nurse", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(s, 201);
    let nurse = app.authed(&app.login("nurse", "a-long-password").await);
    let (s, _) = nurse
        .post("/api/api-keys", &json!({"name": "mine", "scope": "read"}))
        .await;
    assert_eq!(s, 403);
    for (bad, says) in [
        (json!({"name": "x", "scope": "admin"}), "scope"),
        (json!({"name": "  ", "scope": "read"}), "name"),
        (json!({"name": "x".repeat(101), "scope": "read"}), "name"),
    ] {
        let (s, body) = admin.post("/api/api-keys", &bad).await;
        assert_eq!(s, 422, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    let (s, body) = admin.post("/api/api-keys", &json!({"name": "x"})).await;
    assert_eq!(s, 422, "{body}");
    let (_, listed) = admin.get("/api/api-keys").await;
    assert_eq!(listed, json!([]), "nothing was created");
}

on_both_backends!(
    keys_read_write_and_revoke,
    only_admins_make_keys_and_bad_input_is_refused
);
