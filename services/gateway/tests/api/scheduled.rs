//! Scheduled messages: audiences, time zones, recurrence and the status rules.

use heydoc_testkit::{json, on_both_backends, Backend, TestApp};

async fn schedules_by_tag_zone_and_cron(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (_, tag) = api.post("/api/tags", &json!({"name": "Newsletter"})).await;
    let tag = tag["data"]["id"].as_i64().unwrap();
    let (s, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({
                "message": "Clinic opens at 9",
                "tag_ids": [tag],
                "scheduled_time": "2030-03-04T09:00",
                "timezone": "Asia/Kolkata",
                "recurrence": "0 9 * * 1-5",
                "max_occurrences": 10,
                "template": {"name": "clinic_hours", "language": "en_US"}
            }),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let data = &created["data"];
    assert_eq!(data["scheduled_time"], "2030-03-04T03:30:00Z");
    assert_eq!(
        data["next_run_at"], "2030-03-04T03:30:00Z",
        "a Monday at 09:00 IST"
    );
    assert_eq!(data["recipients"], json!([]));
    assert_eq!(data["tag_ids"], json!([tag]));
    assert_eq!(data["template"]["name"], "clinic_hours");

    // A weekday cron starting on a Saturday first fires on Monday.
    let (_, sat) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "x", "recipients": ["15550001234"], "scheduled_time": "2030-03-02T00:00:00Z",
                    "recurrence": "0 9 * * 1-5", "timezone": "America/New_York"}),
        )
        .await;
    assert_eq!(sat["data"]["next_run_at"], "2030-03-04T14:00:00Z");
}

async fn status_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let create = |recurrence: serde_json::Value| {
        let api = api.clone();
        async move {
            let (_, c) = api
                .post(
                    "/api/scheduled-messages",
                    &json!({"message": "hi", "recipients": ["15550001234"], "scheduled_time": "2030-01-01T00:00:00Z", "recurrence": recurrence}),
                )
                .await;
            c["data"]["id"].as_i64().unwrap()
        }
    };
    let once = create(json!(null)).await;
    let daily = create(json!("daily")).await;
    let status = |id: i64, s: &'static str| {
        let api = api.clone();
        async move {
            api.put(
                &format!("/api/scheduled-messages/{id}/status"),
                &json!({"status": s}),
            )
            .await
        }
    };
    assert_eq!(status(once, "done").await.0, 400);
    assert_eq!(status(once, "").await.0, 400);
    let (s, sent) = status(once, "sent").await;
    assert_eq!((s, sent["data"]["next_run_at"].clone()), (200, json!(null)));
    assert_eq!(status(once, "pending").await.0, 409, "sent is final");
    let cancelled = create(json!("weekly")).await;
    assert_eq!(status(cancelled, "cancelled").await.0, 200);
    assert_eq!(
        status(cancelled, "pending").await.0,
        409,
        "cancelled is final"
    );

    // The seed's flow, on the seed's own example (`"recurrence": "daily"`): read it from
    // /pending, send it, mark it sent. That ends the schedule: it reads `sent`, has no next
    // run, and leaves /pending.
    let (_, pending) = api.get("/api/scheduled-messages/pending").await;
    assert!(pending.as_array().unwrap().iter().any(|p| p["id"] == daily));
    let (s, marked) = status(daily, "sent").await;
    assert_eq!(s, 200, "{marked}");
    assert_eq!(marked["data"]["status"], "sent");
    assert_eq!(marked["data"]["next_run_at"], json!(null));
    let (_, pending) = api.get("/api/scheduled-messages/pending").await;
    assert!(!pending.as_array().unwrap().iter().any(|p| p["id"] == daily));
    assert_eq!(status(daily, "pending").await.0, 409, "sent is final");
    assert_eq!(status(999_999, "paused").await.0, 404);
}

on_both_backends!(schedules_by_tag_zone_and_cron, status_rules);

/// The preview answers with the next runs a schedule would have, within its end, and saves
/// nothing; bad timing is a 422 that says what is wrong.
async fn preview_shows_next_runs_and_saves_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    // Across the DST change in New York (2030-03-10): 09:00 local stays 09:00 local.
    let (s, body) = api
        .post(
            "/api/scheduled-messages/preview",
            &json!({"scheduled_time": "2030-03-08T09:00", "timezone": "America/New_York",
                    "recurrence": "daily", "message": "ignored", "recipients": []}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["timezone"], "America/New_York");
    assert_eq!(
        body["next_runs"],
        json!([
            "2030-03-08T14:00:00Z",
            "2030-03-09T14:00:00Z",
            "2030-03-10T13:00:00Z",
            "2030-03-11T13:00:00Z",
            "2030-03-12T13:00:00Z"
        ])
    );
    assert_eq!(body["next_runs_local"][2], "2030-03-10 09:00 EDT");

    // Fewer runs when the schedule ends sooner: by count, by end time, or once.
    let (_, by_count) = api
        .post(
            "/api/scheduled-messages/preview",
            &json!({"scheduled_time": "2030-01-31T08:00:00Z", "recurrence": "monthly", "max_occurrences": 3}),
        )
        .await;
    assert_eq!(
        by_count["next_runs"],
        json!([
            "2030-01-31T08:00:00Z",
            "2030-02-28T08:00:00Z",
            "2030-03-31T08:00:00Z"
        ]),
        "a month without the 31st fires on its last day"
    );
    let (_, by_end) = api
        .post(
            "/api/scheduled-messages/preview",
            &json!({"scheduled_time": "2030-01-01T08:00:00Z", "recurrence": "0 8 * * 1",
                    "end_time": "2030-01-15T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        by_end["next_runs"],
        json!(["2030-01-07T08:00:00Z", "2030-01-14T08:00:00Z"])
    );
    let (_, once) = api
        .post(
            "/api/scheduled-messages/preview",
            &json!({"scheduled_time": "2030-01-01T08:00:00Z"}),
        )
        .await;
    assert_eq!(once["next_runs"], json!(["2030-01-01T08:00:00Z"]));

    for (bad, says) in [
        (
            json!({"scheduled_time": "2001-01-01T00:00:00Z"}),
            "in the past",
        ),
        (
            json!({"scheduled_time": "2030-01-01T00:00", "timezone": "Mars/Olympus"}),
            "Mars/Olympus",
        ),
        (
            json!({"scheduled_time": "2030-01-01T00:00", "recurrence": "61 * * * *"}),
            "cron",
        ),
        (json!({"scheduled_time": "soon"}), "scheduled_time"),
    ] {
        let (s, body) = api.post("/api/scheduled-messages/preview", &bad).await;
        assert_eq!(s, 422, "{bad} -> {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{bad} -> {message}");
    }
    let (_, listed) = api.get("/api/scheduled-messages").await;
    assert_eq!(listed, json!([]), "a preview saves nothing");
}

on_both_backends!(preview_shows_next_runs_and_saves_nothing);

/// Placeholders: an unknown or unclosed one is a 422 that names it, and nothing is saved; a
/// known one with or without a fallback is accepted; the preview shows the first recipient's
/// text, or why they would be skipped.
async fn placeholders_are_checked_before_saving(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (s, _) = api
        .post(
            "/api/contacts",
            &json!({"phone": "919800000021", "name": "Anita", "attributes": {"clinic": "Pune"}}),
        )
        .await;
    assert_eq!(s, 201);
    for (message, says) in [
        ("Namaste {{nmae}}!", "{{nmae}}"),
        ("Hi {{attributes.}}", "{{attributes.}}"),
        ("Hi {{name", "not closed"),
    ] {
        let (s, body) = api
            .post(
                "/api/scheduled-messages",
                &json!({"message": message, "recipients": ["919800000021"], "scheduled_time": "2030-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(s, 422, "{message} -> {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
        let (s, body) = api
            .post(
                "/api/send_message",
                &json!({"phone_number": "919800000021", "message": message}),
            )
            .await;
        assert_eq!(s, 422, "{message} -> {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    let (s, body) = api
        .post(
            "/api/scheduled-messages",
            &json!({"template": {"name": "visit", "language": "en", "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{city}}"}]}]},
                    "recipients": ["919800000021"], "scheduled_time": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("{{city}}"),
        "{body}"
    );
    let (_, listed) = api.get("/api/scheduled-messages").await;
    assert_eq!(listed, json!([]), "nothing saved");
    let (_, chat) = api.get("/api/messages/919800000021").await;
    assert_eq!(chat, json!([]), "nothing queued");

    // A single send is personalised at once; a value the contact lacks needs a fallback.
    let (s, sent) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919800000021", "message": "Namaste {{name}}, see you in {{attributes.clinic}} ({{attributes.room|reception}})"}),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    assert_eq!(
        sent["data"]["message_text"],
        "Namaste Anita, see you in Pune (reception)"
    );
    let (s, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "919800000022", "message": "Namaste {{name}}"}),
        )
        .await;
    assert_eq!(s, 422, "a new contact has no name: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("{{name}}"),
        "{body}"
    );
    let (s, _) = api.get("/api/contacts/919800000022").await;
    assert_eq!(s, 404, "the refused send created no contact");

    // The preview: the message as the first recipient reads it.
    let (s, preview) = api
        .post(
            "/api/scheduled-messages/preview",
            &json!({"scheduled_time": "2030-01-01T00:00:00Z", "message": "Namaste {{name|there}}!",
                    "recipients": ["919800000021", "919800000023"]}),
        )
        .await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["sample"]["text"], "Namaste Anita!");
    assert_eq!(preview["sample"]["name"], "Anita");
    let (_, preview) = api
        .post(
            "/api/scheduled-messages/preview",
            &json!({"scheduled_time": "2030-01-01T00:00:00Z", "message": "Namaste {{name}}!",
                    "recipients": ["919800000023"]}),
        )
        .await;
    assert_eq!(preview["sample"]["text"], json!(null));
    assert!(
        preview["sample"]["problem"]
            .as_str()
            .unwrap()
            .contains("skipped"),
        "{preview}"
    );
    let (s, _) = api
        .post(
            "/api/scheduled-messages/preview",
            &json!({"scheduled_time": "2030-01-01T00:00:00Z", "message": "Hi {{nmae}}", "recipients": ["919800000021"]}),
        )
        .await;
    assert_eq!(s, 422);
}

on_both_backends!(placeholders_are_checked_before_saving);

/// Schedule lists come a page at a time, the next page's cursor in `X-Next-Cursor`.
async fn schedule_lists_are_paged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    for day in 1..=5 {
        let (s, _) = api
            .post(
                "/api/scheduled-messages",
                &json!({"message": format!("day {day}"), "recipients": ["14155550123"],
                        "scheduled_time": format!("2099-01-0{day}T09:00:00Z")}),
            )
            .await;
        assert_eq!(s, 201);
    }
    // A schedule whose runs are over but whose deliveries are not stays pending with no next
    // run: it comes last, once, on both backends.
    heydoc_testkit::sql::execute(
        &app.db.conn,
        "UPDATE scheduled_messages SET next_run_at = NULL WHERE message = 'day 3'",
    )
    .await;
    for (path, first) in [
        ("/api/scheduled-messages", "day 5"),
        ("/api/scheduled-messages/pending", "day 1"),
    ] {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let res = api
                .client
                .get(api.url(&format!("{path}?limit=2&cursor={cursor}")))
                .send()
                .await
                .unwrap();
            let next = res
                .headers()
                .get("x-next-cursor")
                .map(|v| v.to_str().unwrap().to_string());
            let page: serde_json::Value = res.json().await.unwrap();
            seen.extend(
                page.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["message"].as_str().unwrap().to_string()),
            );
            match next {
                Some(n) => cursor = n,
                None => break,
            }
        }
        assert_eq!(seen.len(), 5, "{path}: {seen:?}");
        assert_eq!(seen[0], first, "{path}: {seen:?}");
        if path.ends_with("pending") {
            assert_eq!(seen[4], "day 3", "no next run comes last: {seen:?}");
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5, "{path}: each once");
    }
    let (s, _) = api.get("/api/scheduled-messages?cursor=abc").await;
    assert_eq!(s, 400);
}

on_both_backends!(schedule_lists_are_paged);

/// The estimate counts each recipient once, whether tagged, listed or both: opted-out and
/// suppressed contacts apart, numbers that are not contacts yet reachable, and the US apart
/// from Canada for a marketing template.
async fn an_estimate_counts_each_recipient_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (_, tag) = api.post("/api/tags", &json!({"name": "Check-up"})).await;
    let tag = tag["data"]["id"].as_i64().unwrap();
    // Tagged: two in the US, one in Toronto, two in India, one of them opted out, one suppressed.
    for (phone, opted_out) in [
        ("14155550101", false),
        ("12125550102", false),
        ("14165550103", false),
        ("919800000104", false),
        ("919800000105", true),
        ("919800000106", false),
    ] {
        let body = json!({"phone": phone, "tag_ids": [tag]});
        let (s, created) = api.post("/api/contacts", &body).await;
        assert_eq!(s, 201, "{created}");
        if opted_out {
            let path = format!("/api/contacts/{phone}");
            let (s, body) = api.put(&path, &json!({"opted_out": true})).await;
            assert_eq!(s, 200, "{body}");
        }
    }
    heydoc_testkit::sql::execute(
        &app.db.conn,
        "UPDATE contacts SET suppressed_reason = 'not on WhatsApp' WHERE phone = '919800000106'",
    )
    .await;
    // Listed too: a tagged contact again, a contact without the tag, and a new number.
    let (s, _) = api
        .post("/api/contacts", &json!({"phone": "919800000107"}))
        .await;
    assert_eq!(s, 201);
    let recipients = json!(["14155550101", "919800000107", "447700900108"]);

    let estimate = |body: serde_json::Value| {
        let api = api.clone();
        async move {
            let (s, out) = api.post("/api/scheduled-messages/estimate", &body).await;
            assert_eq!(s, 200, "{out}");
            out
        }
    };
    let free = estimate(json!({"tag_ids": [tag], "recipients": recipients})).await;
    assert_eq!(free["audience"], 6, "{free}");
    assert_eq!(free["opted_out"], 1, "{free}");
    assert_eq!(free["suppressed"], 1, "{free}");
    assert_eq!(free["category"], "service", "{free}");
    assert_eq!(free["us_marketing_skipped"], 0, "{free}");

    let template = json!({"name": "checkup_reminder", "language": "en"});
    let marketing =
        estimate(json!({"tag_ids": [tag], "recipients": recipients, "template": template})).await;
    assert_eq!(
        marketing["us_marketing_skipped"], 2,
        "New York and San Francisco, not Toronto: {marketing}"
    );
    assert_eq!(marketing["audience"], 4, "{marketing}");

    let tag_only = estimate(json!({"tag_ids": [tag]})).await;
    assert_eq!(tag_only["audience"], 4, "{tag_only}");
    let listed_only = estimate(json!({"recipients": recipients})).await;
    assert_eq!(listed_only["audience"], 3, "{listed_only}");
}

on_both_backends!(an_estimate_counts_each_recipient_once);
