//! Staff accounts as people come and go: an admin takes a leaver's access away in one click
//! (their cookie, token and API key refused at once, on every replica) and sees what they did;
//! roles limit agents to the inbox; passwords and sessions; the first admin of an exposed
//! install; requests another site forges; anonymous floods that must not slow anyone.

use std::time::{Duration, Instant};

use heydoc_testkit::{json, on_both_backends, read, Api, Backend, TestApp};

/// Status of `GET /api/contacts` with a bearer token or key, at `base`.
async fn bearer_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/contacts"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Status of `GET /api/contacts` with the session cookie, at `base`.
async fn cookie_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/contacts"))
        .header("cookie", format!("heydoc_session={token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (at most `within`) until `check` holds; the bound is generous, the cache it beats
/// is a minute.
async fn soon<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn add_user(admin: &Api, username: &str, role: &str) -> i64 {
    let (s, body) = admin
        .post(
            "/api/users",
            &json!({"username": username, "password": "a-long-password", "role": role}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["role"], role);
    body["data"]["id"].as_i64().unwrap()
}

async fn a_leaver_loses_access_at_once_on_every_replica(backend: Backend) {
    // Sessions are trusted for a minute per replica: only the notice can end them sooner.
    let app = TestApp::spawn_with(backend, |s| s.auth.session_cache_secs = 60).await;
    let (replica, _server) = app.replica().await;
    let admin = app.admin().await;
    let id = add_user(&admin, "leaver", "admin").await;
    let token = app.login("leaver", "a-long-password").await;
    let leaver = app.authed(&token);
    let (s, key) = leaver
        .post(
            "/api/api-keys",
            &json!({"name": "their script", "scope": "write"}),
        )
        .await;
    assert_eq!(s, 201);
    let key = key["data"]["key"].as_str().unwrap().to_string();
    let (s, _) = leaver.get("/api/contacts/export").await;
    assert_eq!(s, 200);
    // Both replicas trust the session now (cached).
    for base in [app.url(""), replica.clone()] {
        assert_eq!(bearer_status(&base, &token).await, 200);
        assert_eq!(cookie_status(&base, &token).await, 200);
        assert_eq!(bearer_status(&base, &key).await, 200);
    }

    // Their live event stream is open, on the other replica.
    let stream = reqwest::Client::new()
        .get(format!("{replica}/api/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let ended = tokio::spawn(async move {
        let mut stream = stream;
        while let Ok(Some(_)) = stream.chunk().await {}
    });

    // A role and a disable in one request are judged together, on the state they leave: with
    // two admins, the other may be demoted and disabled at once (and both undone).
    let (s, _) = admin
        .patch(
            &format!("/api/users/{id}"),
            &json!({"role": "agent", "disabled": true}),
        )
        .await;
    assert_eq!(s, 200, "two admins: one may go");
    let (s, _) = admin
        .patch(
            &format!("/api/users/{id}"),
            &json!({"role": "admin", "disabled": false}),
        )
        .await;
    assert_eq!(s, 200);
    soon(Duration::from_secs(2), "the old session refused", || {
        bearer_status(&replica, &token).map_eq(401)
    })
    .await;
    tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("a disabled user's event stream ends at once")
        .unwrap();
    let token = app.login("leaver", "a-long-password").await;

    // One click: disabled.
    let (s, body) = admin
        .patch(&format!("/api/users/{id}"), &json!({"disabled": true}))
        .await;
    assert_eq!((s, body["disabled"].as_bool()), (200, Some(true)), "{body}");
    for base in [app.url(""), replica.clone()] {
        soon(Duration::from_secs(2), "the token refused", || {
            bearer_status(&base, &token).map_eq(401)
        })
        .await;
        assert_eq!(cookie_status(&base, &token).await, 401);
        assert_eq!(
            bearer_status(&base, &key).await,
            401,
            "their API key stops too"
        );
    }
    let res = app
        .bare_client()
        .post(app.url("/login"))
        .json(&json!({"username": "leaver", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    let (s, body) = read(res).await;
    assert_eq!(s, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("disabled"));

    // Enabled again: the key works again, the old session stays ended.
    let (s, _) = admin
        .patch(&format!("/api/users/{id}"), &json!({"disabled": false}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(bearer_status(&replica, &key).await, 200);
    assert_eq!(bearer_status(&replica, &token).await, 401);

    // Deleted: the key is revoked for good; the row stays for the record.
    let (s, _) = admin.delete(&format!("/api/users/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(bearer_status(&replica, &key).await, 401);
    let (_, people) = admin.get("/api/users").await;
    let gone = people
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .unwrap();
    assert!(gone["deleted_at"].is_string() && gone["disabled"] == true);
    let (s, _) = admin
        .patch(&format!("/api/users/{id}"), &json!({"disabled": false}))
        .await;
    assert_eq!(s, 404, "a deleted account cannot come back");

    // What they did, and what was done to them, with who and from where.
    let (s, theirs) = admin.get(&format!("/api/audit?user_id={id}")).await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"login") && actions.contains(&"api_key.create"),
        "{actions:?}"
    );
    assert!(actions.contains(&"contacts.export"), "{actions:?}");
    let (_, all) = admin.get("/api/audit").await;
    let on_them: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "leaver")
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    for action in ["user.create", "user.disable", "user.enable", "user.delete"] {
        assert!(
            on_them.contains(&("admin", action)),
            "{action} missing: {on_them:?}"
        );
    }
    assert!(
        all[0]["address"].as_str().is_some_and(|a| a == "127.0.0.1"),
        "{}",
        all[0]
    );

    // Nobody can take the last admin away, nor themselves, nor reset their own password
    // without the current one.
    let (_, me) = admin.get("/api/me").await;
    let my_id = me["id"].as_i64().unwrap();
    assert_eq!(
        admin
            .post(
                &format!("/api/users/{my_id}/password"),
                &json!({"password": "another-one-1"})
            )
            .await
            .0,
        409
    );
    assert_eq!(
        admin
            .patch(&format!("/api/users/{my_id}"), &json!({"role": "agent"}))
            .await
            .0,
        409
    );
    assert_eq!(admin.delete(&format!("/api/users/{my_id}")).await.0, 409);
}

/// `future.map_eq(n)`: whether the status it resolves to is `n`.
trait MapEq {
    fn map_eq(self, n: u16) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = u16>> MapEq for F {
    async fn map_eq(self, n: u16) -> bool {
        self.await == n
    }
}

async fn roles_limit_what_people_can_do(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    add_user(&admin, "reception", "agent").await;
    add_user(&admin, "planner", "manager").await;
    let agent = app.authed(&app.login("reception", "a-long-password").await);
    let manager = app.authed(&app.login("planner", "a-long-password").await);
    let (s, campaign) = admin
        .post(
            "/api/scheduled-messages",
            &json!({"message": "Flu shots", "recipients": ["14155550123"], "scheduled_time": "2099-01-16T09:00:00Z"}),
        )
        .await;
    assert_eq!(s, 201, "{campaign}");
    let cid = campaign["data"]["id"].as_i64().unwrap();
    let (s, _) = admin
        .post(
            "/api/contacts",
            &json!({"phone": "14155550199", "name": "Ana"}),
        )
        .await;
    assert_eq!(s, 201);

    // Agents answer chats...
    assert_eq!(agent.get("/api/contacts").await.0, 200);
    assert_eq!(
        agent
            .post(
                "/api/send_message",
                &json!({"phone_number": "14155550199", "message": "Hello"})
            )
            .await
            .0,
        200
    );
    assert_eq!(
        agent
            .put("/api/contacts/14155550199", &json!({"name": "Ana P."}))
            .await
            .0,
        200
    );
    // ...and nothing more.
    let refused = [
        agent.get("/api/contacts/export").await.0,
        agent
            .put(
                &format!("/api/scheduled-messages/{cid}/status"),
                &json!({"status": "cancelled"}),
            )
            .await
            .0,
        agent.get("/api/scheduled-messages").await.0,
        agent.delete("/api/contacts/14155550199").await.0,
        agent.post("/api/tags", &json!({"name": "VIP"})).await.0,
        agent.get("/api/users").await.0,
        agent.get("/api/audit").await.0,
    ];
    assert_eq!(refused, [403; 7]);
    // Pages alike.
    let page = |path: &'static str, token: String| {
        let url = app.url(path);
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(url)
                .header("cookie", format!("heydoc_session={token}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let agent_token = app.login("reception", "a-long-password").await;
    assert_eq!(page("/inbox", agent_token.clone()).await, 200);
    assert_eq!(page("/campaigns", agent_token.clone()).await, 403);
    assert_eq!(page("/team", agent_token.clone()).await, 403);

    // A STOP is undone only by a manager, and the log says who.
    let (s, _) = admin
        .put("/api/contacts/14155550199", &json!({"opted_out": true}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        agent
            .put("/api/contacts/14155550199", &json!({"opted_out": false}))
            .await
            .0,
        403
    );
    assert_eq!(
        manager
            .put("/api/contacts/14155550199", &json!({"opted_out": false}))
            .await
            .0,
        200
    );

    // Managers run campaigns and exports, not people.
    assert_eq!(manager.get("/api/contacts/export").await.0, 200);
    assert_eq!(
        manager
            .put(
                &format!("/api/scheduled-messages/{cid}/status"),
                &json!({"status": "cancelled"})
            )
            .await
            .0,
        200
    );
    assert_eq!(manager.get("/api/users").await.0, 403);
    let (_, log) = admin.get("/api/audit").await;
    let by_manager: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "planner")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["contact.opt_in", "contacts.export", "campaign.status"] {
        assert!(by_manager.contains(&action), "{action}: {by_manager:?}");
    }
}

async fn passwords_and_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let id = add_user(&admin, "nurse", "agent").await;
    let phone = app.login("nurse", "a-long-password").await;
    let laptop = app.login("nurse", "a-long-password").await;
    let nurse = app.authed(&laptop);
    let (s, sessions) = nurse.get(&format!("/api/users/{id}/sessions")).await;
    assert_eq!(s, 200);
    assert_eq!(sessions.as_array().unwrap().len(), 2);
    assert_eq!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["current"] == true)
            .count(),
        1
    );
    assert_eq!(sessions[0]["address"], "127.0.0.1");
    // Someone else's sessions are not theirs to see.
    let (_, me) = admin.get("/api/me").await;
    assert_eq!(
        nurse
            .get(&format!("/api/users/{}/sessions", me["id"]))
            .await
            .0,
        403
    );

    // A wrong current password changes nothing.
    let (s, body) = nurse
        .put(
            "/api/me/password",
            &json!({"current_password": "nope-nope", "new_password": "another-long-one"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(bearer_status(&app.url(""), &phone).await, 200);
    // The right one: the other session ends, this one stays; the old password is gone.
    let (s, _) = nurse
        .put(
            "/api/me/password",
            &json!({"current_password": "a-long-password", "new_password": "another-long-one"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bearer_status(&app.url(""), &phone).await, 401);
    assert_eq!(bearer_status(&app.url(""), &laptop).await, 200);
    let old = app
        .bare_client()
        .post(app.url("/login"))
        .json(&json!({"username": "nurse", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let again = app.login("nurse", "another-long-one").await;

    // Sign out everywhere.
    let (s, _) = nurse.delete(&format!("/api/users/{id}/sessions")).await;
    assert_eq!(s, 200);
    assert_eq!(bearer_status(&app.url(""), &laptop).await, 401);
    assert_eq!(bearer_status(&app.url(""), &again).await, 401);

    // An admin's reset ends every session and sets the password.
    let fresh = app.login("nurse", "another-long-one").await;
    let (s, _) = admin
        .post(
            &format!("/api/users/{id}/password"),
            &json!({"password": "given-by-admin"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bearer_status(&app.url(""), &fresh).await, 401);
    app.login("nurse", "given-by-admin").await;
    let (_, log) = admin.get("/api/audit").await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "user.password_change",
        "sessions.revoke_all",
        "user.password_reset",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}

async fn the_first_admin_of_an_exposed_install_needs_the_setup_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Through a proxy (as from another machine): the first registration needs the token.
    let register = |body: serde_json::Value| {
        let url = app.url("/register");
        async move {
            read(
                reqwest::Client::new()
                    .post(url)
                    .header("X-Forwarded-For", "203.0.113.7")
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (s, body) = register(json!({"username": "visitor", "password": "a-long-password"})).await;
    assert_eq!(s, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("setup token"));
    // The page asks for it too.
    let page = reqwest::Client::new()
        .get(app.url("/register"))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"setup_token\""), "{page}");
    let (s, _) = register(
        json!({"username": "visitor", "password": "a-long-password", "setup_token": "guess"}),
    )
    .await;
    assert_eq!(s, 403);
    // Nothing derives it from a secret others may know: it is random, and kept only as its
    // digest (`heydoc admin setup-token` makes a new one, as here).
    let token = heydoc_gateway::core::setup::renew(&app.db.conn)
        .await
        .unwrap();
    assert_eq!(token.len(), 32);
    let kept = heydoc_store::install::get(&app.db.conn, heydoc_store::install::SETUP_TOKEN_SHA256)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(kept, token, "the token itself is not stored");
    let (s, body) =
        register(json!({"username": "owner", "password": "a-long-password", "setup_token": token}))
            .await;
    assert_eq!(
        (s, body["data"]["role"].as_str()),
        (201, Some("admin")),
        "{body}"
    );
    // Once used, it is forgotten, and registration is closed as usual.
    assert!(
        heydoc_store::install::get(&app.db.conn, heydoc_store::install::SETUP_TOKEN_SHA256)
            .await
            .unwrap()
            .is_none()
    );
    let (s, _) = register(
        json!({"username": "second", "password": "a-long-password", "setup_token": token}),
    )
    .await;
    assert_eq!(s, 403);

    // A configured token works the same way.
    let configured = TestApp::spawn_with(backend, |s| {
        s.auth.setup_token = "a-setup-token-from-the-vault".to_string().into();
    })
    .await;
    let (s, body) = read(
        reqwest::Client::new()
            .post(configured.url("/register"))
            .header("X-Forwarded-For", "203.0.113.7")
            .json(&json!({"username": "owner", "password": "a-long-password", "setup_token": "a-setup-token-from-the-vault"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{body}");
}

async fn another_site_cannot_act_with_the_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app
        .register_and_login("admin", "correct-horse-battery")
        .await;
    let client = reqwest::Client::new();
    let cookie = format!("heydoc_session={token}");
    let forged = |site: &'static str| {
        client
            .post(app.url("/api/tags"))
            .header("cookie", cookie.clone())
            .header("sec-fetch-site", site)
            .json(&json!({"name": format!("from-{site}")}))
            .send()
    };
    assert_eq!(forged("cross-site").await.unwrap().status(), 403);
    assert_eq!(forged("same-site").await.unwrap().status(), 403);
    assert_eq!(forged("same-origin").await.unwrap().status(), 201);
    let evil_origin = client
        .post(app.url("/api/tags"))
        .header("cookie", cookie.clone())
        .header("origin", "https://evil.example")
        .json(&json!({"name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(evil_origin.status(), 403);
    // Basic credentials (a proxy's, which the browser adds by itself) are no bearer token.
    let basic = client
        .post(app.url("/api/tags"))
        .header("cookie", cookie.clone())
        .header("authorization", "Basic dXNlcjpwYXNz")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"name": "via-basic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 403);
    // A bearer token is no ambient credential: no check.
    let bearer = client
        .post(app.url("/api/tags"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .json(&json!({"name": "scripted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 201);
    // Another site cannot sign the browser out with a GET either.
    let logout = client
        .get(app.url("/logout"))
        .header("cookie", cookie.clone())
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403);
    assert_eq!(cookie_status(&app.url(""), &token).await, 200);
    let (_, tags) = app.authed(&token).get("/api/tags").await;
    let names: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"from-cross-site") && !names.contains(&"evil"),
        "{names:?}"
    );
}

async fn a_registration_flood_does_not_slow_a_login_or_a_send(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let url = app.url("/register");
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&json!({"username": format!("bot{i}"), "password": "a-long-password"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let started = Instant::now();
    let token = app.login("admin", "correct-horse-battery").await;
    let (s, _) = app
        .authed(&token)
        .post(
            "/api/send_message",
            &json!({"phone_number": "14155550123", "message": "still here"}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(s, 200);
    let mut refused = 0;
    for f in flood {
        if f.await.unwrap().unwrap() == 403 {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 200,
        "closed registration refuses every one, before hashing"
    );
    // Generous: a login is one hash; were the 200 hashed first, it would wait for all of them.
    assert!(
        took < Duration::from_secs(20),
        "a login and a send took {took:?}"
    );
    let (_, people) = admin.get("/api/users").await;
    assert_eq!(people.as_array().unwrap().len(), 1);
}

async fn over_https_the_cookie_is_host_only_and_hsts_is_sent(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.auth.https = true).await;
    app.register_and_login("admin", "correct-horse-battery")
        .await;
    let res = app
        .bare_client()
        .post(app.url("/login"))
        .json(&json!({"username": "admin", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-heydoc_session=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    assert!(
        cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let me = reqwest::Client::new()
        .get(app.url("/api/me"))
        .header("cookie", format!("__Host-heydoc_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // Over HTTPS the plain name (which a sibling subdomain could plant) is not read.
    let planted = reqwest::Client::new()
        .get(app.url("/api/me"))
        .header("cookie", format!("heydoc_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(planted.status(), 401);
}

async fn internals_are_not_on_the_public_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 404, "metrics are served on the admin address");
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

on_both_backends!(
    internals_are_not_on_the_public_address,
    over_https_the_cookie_is_host_only_and_hsts_is_sent,
    a_leaver_loses_access_at_once_on_every_replica,
    roles_limit_what_people_can_do,
    passwords_and_sessions,
    the_first_admin_of_an_exposed_install_needs_the_setup_token,
    another_site_cannot_act_with_the_cookie,
    a_registration_flood_does_not_slow_a_login_or_a_send,
);
