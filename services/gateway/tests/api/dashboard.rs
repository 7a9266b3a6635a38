//! The dashboard over plain HTTP: who gets which page, that pages escape what they show, and
//! the server-sent events a page listens to. (Clicking through it in Chromium is in
//! `tests/tests/dashboard.rs`.)

use std::time::Duration;

use heydoc_testkit::fixtures::inbound_text;
use heydoc_testkit::reqwest::{self, header, redirect, StatusCode};
use heydoc_testkit::{json, on_both_backends, Backend, TestApp};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

async fn page(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String, String) {
    let mut req = client
        .get(app.url(path))
        .header(header::ACCEPT, "text/html");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, res.text().await.unwrap())
}

async fn pages_follow_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = no_redirects();
    // A new install leads to registration; the pages lead to the login page and back.
    let (s, to, _) = page(&client, &app, "/", None).await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/register"));
    let (s, body, _) = page(&client, &app, "/register", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let (_, to, _) = page(&client, &app, "/", None).await;
    assert_eq!(to, "/login");
    let (s, to, _) = page(&client, &app, "/chat/14155550100?before=9", None).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(to, "/login?next=%2Fchat%2F14155550100%3Fbefore%3D9");
    // The login page sends the browser back to our own pages only.
    let (_, _, login) = page(&client, &app, "/login?next=%2Fcampaigns", None).await;
    assert!(login.contains(r#"data-next="/campaigns""#));
    for evil in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
        "/\t/evil.example/{token}",
        "/\n/evil.example",
    ] {
        let q = serde_urlencoded::to_string([("next", evil)]).unwrap();
        let (_, _, login) = page(&client, &app, &format!("/login?{q}"), None).await;
        assert!(login.contains(r#"data-next="/inbox""#), "{evil:?}");
    }
    // Registration closes after the first user (open registration is off by default).
    let (_, _, closed) = page(&client, &app, "/register", None).await;
    assert!(closed.contains("Registration is closed"));

    for path in ["/", "/inbox", "/campaigns", "/campaigns/new", "/tags"] {
        let (s, to, body) = page(&client, &app, path, Some(&token)).await;
        if path == "/" {
            assert_eq!(to, "/inbox");
            continue;
        }
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(body.contains(r#"<main id="main""#), "{path}");
    }
    // Pages run only their own script and cannot be framed.
    for path in ["/inbox", "/login", "/assets/app.js"] {
        let res = client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // Integrations are for admins: in their navigation, and nobody else's.
    let (s, _, body) = page(&client, &app, "/integrations", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("API keys") && body.contains("Outbound events"));
    let api = app.authed(&token);
    let (s, _) = api
        .post(
            "/api/users",
            &json!({"username": "nurse", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(s, 201);
    let nurse = app.login("nurse", "a-long-password").await;
    let (s, _, body) = page(&client, &app, "/integrations", Some(&nurse)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (_, _, inbox) = page(&client, &app, "/inbox", Some(&nurse)).await;
    assert!(!inbox.contains("/integrations"));
    // Unknown things are error pages with the API's message, not JSON.
    let (s, _, body) = page(&client, &app, "/chat/14155550100", Some(&token)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        body.contains("role=\"alert\"") && body.contains("14155550100"),
        "{body}"
    );
    let (s, _, body) = page(&client, &app, "/campaigns/999", Some(&token)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, _, body) = page(&client, &app, "/inbox?tag=x&cursor=%%%", Some(&token)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // Assets are compiled in.
    let res = client.get(app.url("/assets/app.js")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let res = client
        .get(app.url("/assets/missing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn pages_escape_what_contacts_write(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    let res = app
        .post_webhook(&inbound_text(
            "14155550123",
            hostile,
            "wamid.X1",
            hostile,
            1_800_000_000,
        ))
        .await;
    assert_eq!(res.status(), 200);
    let client = no_redirects();
    for path in ["/inbox", "/chat/14155550123"] {
        let (s, _, body) = page(&client, &app, path, Some(&token)).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(!body.contains("<script>alert"), "{path} shows raw markup");
        assert!(!body.contains("<img src=x"), "{path} shows raw markup");
        assert!(body.contains("&lt;script&gt;alert"), "{path}: {body}");
    }
    // Showing the chat changed nothing (a GET never does; the page's script marks it read
    // with a POST while someone looks at it).
    let api = app.authed(&token);
    let (_, contact) = api.get("/api/contacts/14155550123").await;
    assert_eq!(contact["unread_count"], 1);
    let (s, _) = api.post("/api/messages/14155550123/read", &json!({})).await;
    assert_eq!(s, 200);
    let (_, contact) = api.get("/api/contacts/14155550123").await;
    assert_eq!(contact["unread_count"], 0);
}

async fn events_stream_chat_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = no_redirects();
    let res = client.get(app.url("/api/events")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let token = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let mut stream = client
        .get(app.url("/api/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
    // The stream is open once the response has arrived; a message now reaches it.
    let res = app
        .post_webhook(&inbound_text(
            "14155550124",
            "Live",
            "wamid.L1",
            "hello",
            1_800_000_000,
        ))
        .await;
    assert_eq!(res.status(), 200);
    let (_, contact) = app.authed(&token).get("/api/contacts/14155550124").await;
    let id = contact["id"].as_i64().unwrap();
    let event = next_event(&mut stream, "message", id).await;
    assert_eq!(event["kind"], "message");
    assert_eq!(event["all"], false);

    // Someone starts writing a reply: everyone with the dashboard open hears who, and where.
    let (_, me) = app.authed(&token).get("/api/me").await;
    let res = client
        .post(app.url("/api/messages/14155550124/typing"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let replying = next_event(&mut stream, "replying", id).await;
    assert_eq!(replying["by"], me["id"], "{replying} {me}");
    assert_eq!(replying["contact_ids"], json!([id]));
}

/// The next event of `kind` about contact `id` on an open `/api/events` stream (on SQLite the
/// channel is process-wide: other tests' events may pass by too).
async fn next_event(
    stream: &mut heydoc_testkit::reqwest::Response,
    kind: &str,
    id: i64,
) -> serde_json::Value {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = seen
            .split("\n\n")
            .filter(|block| block.contains(&format!("event: {kind}\n")))
            .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
            .find(|e| {
                e["contact_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.contains(&json!(id)))
            });
        if let Some(event) = found {
            return event;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!("no {kind} event for contact {id} within 10 s; got {seen:?}")
            })
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

on_both_backends!(
    pages_follow_the_session,
    pages_escape_what_contacts_write,
    events_stream_chat_changes
);
