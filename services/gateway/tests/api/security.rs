//! The security review's findings, each closed: what an API key may not do, what the audit log
//! must show, what ends with a session, what a slow or greedy client cannot hold, and what an
//! error must not say.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use heydoc_testkit::{json, on_both_backends, read, Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Now, written as each database stores a time (what the code compares with).
fn sql_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "now()",
        Backend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')",
    }
}

async fn key(admin: &heydoc_testkit::Api, scope: &str) -> String {
    let (s, created) = admin
        .post(
            "/api/api-keys",
            &json!({"name": "integration", "scope": scope}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    created["data"]["key"].as_str().unwrap().to_string()
}

async fn actions(admin: &heydoc_testkit::Api) -> Vec<serde_json::Value> {
    let (_, log) = admin.get("/api/audit").await;
    log.as_array().unwrap().clone()
}

/// A write API key is a machine's: it cannot add a business number or replace its token (an
/// admin session can, and the audit log says what changed without the token).
async fn numbers_need_an_admin_session_and_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let machine = app.authed(&key(&admin, "write").await);
    let number = json!({"phone_number_id": "15550009999", "display_number": "+1 555 000 9999",
                        "access_token": "a-secret-token", "mps": 10});
    let (s, body) = machine.post("/api/numbers", &number).await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = machine
        .put(
            "/api/numbers/15550001111",
            &json!({"access_token": "stolen-token"}),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = admin.post("/api/numbers", &number).await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = admin
        .put(
            "/api/numbers/15550009999",
            &json!({"access_token": "another-secret", "state": "disabled"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let log = actions(&admin).await;
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("secret"), "a token reached the audit log");
    let update = log
        .iter()
        .find(|e| e["action"] == "number.update")
        .expect("the change is audited");
    assert_eq!(update["detail"]["token_replaced"], true, "{update}");
    assert_eq!(update["detail"]["state"], "disabled", "{update}");
    assert!(log.iter().any(|e| e["action"] == "number.create"));
}

/// Changing one's password and signing out everywhere revoke the keys one made too.
async fn keys_end_with_a_password_change_and_sign_out_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, me) = admin.get("/api/me").await;
    let id = me["data"]["id"]
        .as_i64()
        .unwrap_or_else(|| me["id"].as_i64().unwrap());

    let first = app.authed(&key(&admin, "read").await);
    assert_eq!(first.get("/api/contacts").await.0, 200);
    let (s, body) = admin
        .put(
            "/api/me/password",
            &json!({"current_password": "correct-horse-battery", "new_password": "another-long-password"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(first.get("/api/contacts").await.0, 401, "the key survived");

    let second = app.authed(&key(&admin, "read").await);
    assert_eq!(second.get("/api/contacts").await.0, 200);
    let (s, body) = admin.delete(&format!("/api/users/{id}/sessions")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(second.get("/api/contacts").await.0, 401, "the key survived");
}

/// Every recipient's phone and name leaving as a campaign's results CSV is in the audit log.
async fn the_deliveries_export_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (s, created) = admin
        .post(
            "/api/scheduled-messages",
            &json!({"message": "hi", "recipients": ["919800000001"],
                    "scheduled_time": "2030-01-16T09:00:00Z"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let res = admin
        .client
        .get(app.url(&format!("/api/scheduled-messages/{id}/deliveries.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(actions(&admin)
        .await
        .iter()
        .any(|e| e["action"] == "campaign.deliveries_export"
            && e["target"] == format!("campaign {id}")));
}

/// A person's uploads over a day are capped: past the quota, a 429 that says so, and nothing
/// is kept.
async fn uploads_past_the_quota_are_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.media.upload_quota_bytes = 1_000).await;
    let admin = app.admin().await;
    let (_, me) = admin.get("/api/me").await;
    let id = me["data"]["id"]
        .as_i64()
        .unwrap_or_else(|| me["id"].as_i64().unwrap());
    let now = sql_now(backend);
    heydoc_testkit::sql::execute(
        &app.db.conn,
        &format!(
            "INSERT INTO uploads (phone_number_id, meta_media_id, kind, mime_type, filename, size, sha256, storage_key, created_by, created_at)
             VALUES ('15550001111', '1001', 'document', 'application/pdf', 'a.pdf', 900, 'x', 'out/2026/12/a', {id}, {now})"
        ),
    )
    .await;
    let res = admin
        .client
        .post(app.url("/api/media"))
        .header("Content-Type", "application/pdf")
        .body(vec![b'%'; 200])
        .send()
        .await
        .unwrap();
    let (s, body) = read(res).await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("24 hours"),
        "{body}"
    );
}

/// Uploads past their retention leave the store and the table (Meta forgets its copy after 30
/// days, so no send could use them).
async fn old_uploads_are_collected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let media = app.state.media.clone().unwrap();
    media
        .put("out/2026/10/old", b"old file".to_vec())
        .await
        .unwrap();
    media
        .put("out/2026/12/new", b"new file".to_vec())
        .await
        .unwrap();
    let old = match backend {
        Backend::Postgres => "now() - interval '40 days'",
        Backend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', '-40 days')",
    };
    heydoc_testkit::sql::execute(
        &app.db.conn,
        &format!(
            "INSERT INTO uploads (phone_number_id, meta_media_id, kind, mime_type, filename, size, sha256, storage_key, created_by, created_at)
             VALUES ('15550001111', '1', 'document', 'application/pdf', 'old.pdf', 8, 'x', 'out/2026/10/old', NULL, {old}),
                    ('15550001111', '2', 'document', 'application/pdf', 'new.pdf', 8, 'x', 'out/2026/12/new', NULL, CURRENT_TIMESTAMP)"
        ),
    )
    .await;
    heydoc_gateway::media::expire_uploads(&app.state).await;
    heydoc_gateway::media::remove_deleted(&app.state).await;
    assert_eq!(
        heydoc_testkit::sql::scalar(&app.db.conn, "SELECT COUNT(*) FROM uploads").await,
        1
    );
    assert!(
        media.get("out/2026/10/old").await.is_err(),
        "the old file is gone"
    );
    assert!(
        media.get("out/2026/12/new").await.is_ok(),
        "the new one stays"
    );
}

/// A file missing from the store is a 410 that says so, without the store's paths or keys.
async fn a_missing_file_names_no_store_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    heydoc_testkit::sql::execute(
        &app.db.conn,
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         VALUES ('919800000001', '', false, '{}', CURRENT_TIMESTAMP, 1, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, origin, updated_at)
         VALUES (1, 'incoming', '919800000001', '15550001111', 'image', '[image]', CURRENT_TIMESTAMP, false, 'received', 0, 'webhook', CURRENT_TIMESTAMP);
         INSERT INTO media_files (message_id, meta_media_id, mime_type, sha256, size, filename, storage_key, state, error, created_at, updated_at)
         VALUES (1, '77', 'image/jpeg', NULL, 5, NULL, '2026/12/secret-key-1', 'stored', NULL, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);",
    )
    .await;
    let (s, body) = admin.get("/api/media/1").await;
    assert_eq!(s, 410, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("secret-key-1")
            && !text.contains(&app.settings.media.dir)
            && !text.contains("local:"),
        "{text}"
    );
}

/// A live event stream ends when its session expires, as its next request would be refused.
async fn an_event_stream_ends_when_its_session_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let soon = match backend {
        Backend::Postgres => "now() + interval '2 seconds'",
        Backend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '+2 seconds')",
    };
    heydoc_testkit::sql::execute(
        &app.db.conn,
        &format!("UPDATE sessions SET expires_at = {soon}"),
    )
    .await;
    let mut res = reqwest::Client::new()
        .get(app.url("/api/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(_)) = res.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// The import's admission (one running import per person, three in all) is decided before the
/// body is read: a refused upload is answered at once, not after its whole file.
async fn a_refused_import_is_answered_before_its_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let now = sql_now(backend);
    heydoc_testkit::sql::execute(
        &app.db.conn,
        &format!(
            "INSERT INTO imports (status, created_by, bytes_total, bytes_done, lines, created, updated, unchanged, rejected, created_at, updated_at)
             VALUES ('running', 1, 100, 0, 0, 0, 0, 0, 0, {now}, {now})"
        ),
    )
    .await;
    // A body that starts and never ends.
    let body = reqwest::Body::wrap_stream(
        futures_util::stream::iter([Ok::<_, std::io::Error>(b"phone,name\n".to_vec())])
            .chain(futures_util::stream::pending()),
    );
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        admin
            .client
            .post(app.url("/api/contacts/import"))
            .header("Content-Type", "text/csv")
            .body(body)
            .send(),
    )
    .await;
    let res = answer
        .expect("no answer while the body was still coming")
        .unwrap();
    assert_eq!(res.status(), 409);
}

on_both_backends!(
    numbers_need_an_admin_session_and_are_audited,
    keys_end_with_a_password_change_and_sign_out_everywhere,
    the_deliveries_export_is_audited,
    uploads_past_the_quota_are_refused,
    old_uploads_are_collected,
    a_missing_file_names_no_store_path,
    an_event_stream_ends_when_its_session_expires,
    a_refused_import_is_answered_before_its_body,
);

/// A client that sends its headers a byte at a time (slowloris) is cut off after the header
/// timeout; one that trickles its body gets a 408 after the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.header_timeout_secs = 1;
        s.http.request_timeout_secs = 2;
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a half-sent request held its connection");
    assert!(started.elapsed() < Duration::from_secs(10));

    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"us",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a trickled body held its request");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}
