//! Sessions: every /api route is closed without one, logout kills it everywhere, login failures
//! give nothing away, and guessing is rate-limited.

use heydoc_testkit::{json, on_both_backends, read, Backend, TestApp};

/// Every /api route, with a method it answers.
const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("GET", "/api/me"),
    ("GET", "/api/contacts"),
    ("POST", "/api/contacts"),
    ("GET", "/api/contacts/1234567890"),
    ("PUT", "/api/contacts/1234567890"),
    ("DELETE", "/api/contacts/1234567890"),
    ("PUT", "/api/contacts/1234567890/tags"),
    ("POST", "/api/contacts/1234567890/tags/1"),
    ("DELETE", "/api/contacts/1234567890/tags/1"),
    ("GET", "/api/tags"),
    ("POST", "/api/tags"),
    ("PUT", "/api/tags/1"),
    ("DELETE", "/api/tags/1"),
    ("GET", "/api/messages/1234567890"),
    ("POST", "/api/messages/1234567890/read"),
    ("POST", "/api/send_message"),
    ("GET", "/api/scheduled-messages"),
    ("POST", "/api/scheduled-messages"),
    ("GET", "/api/scheduled-messages/pending"),
    ("GET", "/api/scheduled-messages/1"),
    ("DELETE", "/api/scheduled-messages/1"),
    ("PUT", "/api/scheduled-messages/1/status"),
    ("GET", "/api/scheduled-messages/1/deliveries"),
];

async fn every_api_route_needs_a_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = app.admin().await;
    let client = app.bare_client();
    for (method, path) in API_ROUTES {
        for auth in [
            None,
            Some("Bearer not-a-token"),
            Some("Basic YWRtaW46cGFzc3dvcmQ="),
        ] {
            let mut req = client
                .request(method.parse().unwrap(), app.url(path))
                .json(&json!({"phone_number": "1234567890", "message": "hi", "name": "x", "status": "paused"}));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let (status, body) = read(req.send().await.unwrap()).await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}");
            assert_eq!(body["success"], false);
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    // Nothing was written by any of them.
    let api = app.authed(&app.login("admin", "correct-horse-battery").await);
    let (_, contacts) = api.get("/api/contacts").await;
    assert_eq!(contacts, json!([]));
}

async fn logout_revokes_cookie_and_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    // The browser: log in with the cookie jar, and use the cookie alone.
    let browser = &app.client;
    let res = browser
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=admin&password=correct-horse-battery")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "form login");
    assert_eq!(
        browser
            .get(app.url("/api/contacts"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A stolen copy of the cookie, replayed by someone else after logout.
    let cookie_token = {
        let res = app
            .bare_client()
            .post(app.url("/login"))
            .json(&json!({"username": "admin", "password": "correct-horse-battery"}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = res.json().await.unwrap();
        body["data"]["token"].as_str().unwrap().to_string()
    };
    let with_cookie = |t: &str| {
        app.bare_client()
            .get(app.url("/api/contacts"))
            .header("cookie", format!("heydoc_session={t}"))
    };
    assert_eq!(
        with_cookie(&cookie_token).send().await.unwrap().status(),
        200
    );
    let res = app
        .bare_client()
        .get(app.url("/logout"))
        .header("cookie", format!("heydoc_session={cookie_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        with_cookie(&cookie_token).send().await.unwrap().status(),
        401,
        "revoked cookie"
    );

    // The bearer token from the first login still works until its own logout.
    let api = app.authed(&token);
    assert_eq!(api.get("/api/contacts").await.0, 200);
    let res = api.client.get(api.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        api.get("/api/contacts").await.0,
        401,
        "revoked bearer token"
    );

    // The browser logs out with its cookie; its next request is refused.
    assert_eq!(
        browser
            .get(app.url("/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        browser
            .get(app.url("/api/contacts"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

async fn wrong_password_and_unknown_user_look_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let attempt = |user: &'static str, pass: &'static str| {
        let client = app.bare_client();
        let url = app.url("/login");
        async move {
            read(
                client
                    .post(url)
                    .json(&json!({"username": user, "password": pass}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let wrong_password = attempt("admin", "wrong-password").await;
    let unknown_user = attempt("nobody", "wrong-password").await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(wrong_password, unknown_user);
}

async fn login_attempts_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.auth.login_attempts_per_minute_per_user = 3;
        s.auth.trust_forwarded_for = true;
    })
    .await;
    let _ = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let client = app.bare_client();
    let attempt = |from: &'static str, password: &'static str| {
        let client = client.clone();
        let url = app.url("/login");
        async move {
            client
                .post(url)
                // The proxy in front appends the address it saw; the client chose the rest.
                .header("x-forwarded-for", format!("198.51.100.1, {from}"))
                .json(&json!({"username": "admin", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = attempt("203.0.113.9", "guess").await;
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
        }
        statuses.push(res.status().as_u16());
    }
    // Successes never count; three failures, then refusals (checked before any hashing).
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    // From the attacker's address even the right password waits out the limit...
    assert_eq!(
        attempt("203.0.113.9", "correct-horse-battery")
            .await
            .status(),
        429
    );
    // ...but the attacker has not locked the admin out: from their own address they sign in.
    assert_eq!(
        attempt("198.51.100.7", "correct-horse-battery")
            .await
            .status(),
        200
    );
    // An IPv6 attacker hopping addresses inside one /64 is one address.
    for host in 1..=3 {
        let from: &'static str = Box::leak(format!("2001:db8:5:6::{host}").into_boxed_str());
        assert_eq!(attempt(from, "guess").await.status(), 401);
    }
    assert_eq!(attempt("2001:db8:5:6::99", "guess").await.status(), 429);
    // A name no account can have is refused without a hash, and counts against the address.
    let huge: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
    let res = client
        .post(app.url("/login"))
        .header("x-forwarded-for", "192.0.2.77")
        .json(&json!({"username": huge, "password": "guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

async fn registration_is_closed_after_the_first_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = read(
        app.bare_client()
            .post(app.url("/register"))
            .json(&json!({"username": "mallory", "password": "password123"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    // An admin creates accounts; those users are not admins.
    let (status, body) = admin
        .post(
            "/api/users",
            &json!({"username": "nurse", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"]["role"], "agent",
        "the least a new account needs"
    );
    let nurse = app.authed(&app.login("nurse", "password123").await);
    assert_eq!(nurse.get("/api/contacts").await.0, 200);
    assert_eq!(nurse.get("/api/users").await.0, 403);
    assert_eq!(
        nurse
            .post(
                "/api/users",
                &json!({"username": "x1234", "password": "password123"})
            )
            .await
            .0,
        403
    );
    let (status, me) = nurse.get("/api/me").await;
    assert_eq!((status, me["username"].as_str()), (200, Some("nurse")));
    // Usernames are unique regardless of case.
    assert_eq!(
        admin
            .post(
                "/api/users",
                &json!({"username": "NURSE", "password": "password123"})
            )
            .await
            .0,
        409
    );

    // With open registration configured, anyone may register.
    let open = TestApp::spawn_with(backend, |s| s.auth.open_registration = true).await;
    let _ = open.admin().await;
    let res = open
        .bare_client()
        .post(open.url("/register"))
        .json(&json!({"username": "walkin", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

async fn secure_cookie_when_configured(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.auth.cookie_secure = true).await;
    let _ = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let res = app
        .bare_client()
        .post(app.url("/login"))
        .json(&json!({"username": "admin", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
}

on_both_backends!(
    every_api_route_needs_a_session,
    logout_revokes_cookie_and_token,
    wrong_password_and_unknown_user_look_the_same,
    login_attempts_are_rate_limited,
    registration_is_closed_after_the_first_admin,
    secure_cookie_when_configured,
);
