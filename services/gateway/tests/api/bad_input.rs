//! Bad input to every write endpoint: a 4xx JSON error that says what is wrong, and no change.

use heydoc_testkit::{json, on_both_backends, read, Backend, TestApp};
use serde_json::Value;

struct Case {
    method: &'static str,
    path: &'static str,
    body: Body,
    status: u16,
    says: &'static str,
}

enum Body {
    Json(Value),
    Raw(&'static str, &'static str),
}

fn cases() -> Vec<Case> {
    use Body::{Json as J, Raw};
    let c = |method, path, body, status, says| Case {
        method,
        path,
        body,
        status,
        says,
    };
    vec![
        c(
            "POST",
            "/api/send_message",
            J(json!({"phone_number": "12ab", "message": "hi"})),
            422,
            "phone number",
        ),
        c(
            "POST",
            "/api/send_message",
            J(json!({"phone_number": "1234567890", "message": ""})),
            422,
            "must not be empty",
        ),
        c(
            "POST",
            "/api/send_message",
            J(json!({"phone_number": "1234567890", "message": "x".repeat(4097)})),
            422,
            "4096",
        ),
        c(
            "POST",
            "/api/send_message",
            J(json!({"phone_number": "1234567890"})),
            422,
            "message",
        ),
        c(
            "POST",
            "/api/send_message",
            J(json!({"phone_number": 1234567890, "message": "hi"})),
            422,
            "invalid type",
        ),
        c(
            "POST",
            "/api/send_message",
            Raw("application/json", "{\"phone_number\":"),
            400,
            "malformed JSON",
        ),
        c(
            "POST",
            "/api/send_message",
            Raw("text/plain", "hello"),
            415,
            "application/json",
        ),
        c(
            "POST",
            "/api/contacts",
            J(json!({"phone": "0123"})),
            422,
            "phone number",
        ),
        c(
            "POST",
            "/api/contacts",
            J(json!({"phone": "1234567890", "attributes": [1, 2]})),
            422,
            "JSON object",
        ),
        c(
            "POST",
            "/api/contacts",
            J(json!({"phone": "1234567890", "tag_ids": [999]})),
            404,
            "unknown tag",
        ),
        c(
            "PUT",
            "/api/contacts/1234567890",
            J(json!({"name": "x"})),
            404,
            "not found",
        ),
        c(
            "PUT",
            "/api/contacts/not-a-phone",
            J(json!({"name": "x"})),
            422,
            "phone number",
        ),
        c(
            "PUT",
            "/api/contacts/15550009999/tags",
            J(json!({"tag_ids": [999]})),
            404,
            "unknown tag",
        ),
        c(
            "POST",
            "/api/contacts/15550009999/tags/999",
            J(json!({})),
            404,
            "tag 999",
        ),
        c(
            "POST",
            "/api/tags",
            J(json!({"name": "", "color": "#ffffff"})),
            422,
            "tag name",
        ),
        c(
            "POST",
            "/api/tags",
            J(json!({"name": "Red", "color": "red"})),
            422,
            "color",
        ),
        c(
            "POST",
            "/api/tags",
            J(json!({"name": "Existing"})),
            409,
            "exists",
        ),
        c(
            "PUT",
            "/api/tags/notanumber",
            J(json!({"name": "x"})),
            400,
            "invalid path",
        ),
        c(
            "PUT",
            "/api/tags/999",
            J(json!({"name": "x"})),
            404,
            "not found",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(
                json!({"message": "hi", "recipients": ["1234567890"], "scheduled_time": "2001-01-01T00:00:00Z"}),
            ),
            422,
            "in the past",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(
                json!({"message": "hi", "recipients": ["1234567890"], "scheduled_time": "2030-01-01T00:00:00Z", "timezone": "Moon/Base"}),
            ),
            422,
            "IANA",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(
                json!({"message": "hi", "recipients": ["1234567890"], "scheduled_time": "2030-01-01T00:00:00Z", "recurrence": "*/5 * * *"}),
            ),
            422,
            "cron",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(
                json!({"message": "hi", "recipients": ["1234567890"], "scheduled_time": "2030-01-01T00:00:00Z", "recurrence": "0 0 31 2 *"}),
            ),
            422,
            "never fires",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(json!({"message": "hi", "recipients": [], "scheduled_time": "2030-01-01T00:00:00Z"})),
            422,
            "audience is empty",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(
                json!({"message": "x".repeat(4097), "recipients": ["1234567890"], "scheduled_time": "2030-01-01T00:00:00Z"}),
            ),
            422,
            "4096",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(json!({"recipients": ["1234567890"], "scheduled_time": "2030-01-01T00:00:00Z"})),
            422,
            "message, a template",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(json!({"message": "hi", "recipients": ["1234567890"], "scheduled_time": "tomorrow"})),
            422,
            "date-time",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(
                json!({"message": "hi", "recipients": ["1234567890"], "scheduled_time": "2030-01-01T00:00:00Z", "max_occurrences": 0}),
            ),
            422,
            "max_occurrences",
        ),
        c(
            "POST",
            "/api/scheduled-messages",
            J(json!({"message": "hi", "tag_ids": [999], "scheduled_time": "2030-01-01T00:00:00Z"})),
            404,
            "unknown tag",
        ),
        c(
            "PUT",
            "/api/scheduled-messages/1/status",
            J(json!({"status": "archived"})),
            400,
            "must be one of",
        ),
        c(
            "POST",
            "/api/users",
            J(json!({"username": "a b", "password": "password123"})),
            422,
            "username",
        ),
        c(
            "POST",
            "/api/users",
            J(json!({"username": "valid", "password": "short"})),
            422,
            "password",
        ),
        c(
            "POST",
            "/api/users",
            J(json!({"username": "valid", "password": "password123", "role": "root"})),
            422,
            "role",
        ),
        c(
            "POST",
            "/register",
            J(json!({"username": "x", "password": "password123"})),
            422,
            "username",
        ),
        c(
            "POST",
            "/login",
            Raw("text/plain", "username=admin"),
            415,
            "application/json",
        ),
        c(
            "POST",
            "/login",
            Raw(
                "application/json",
                r#"{"username":"\u0000","password":"x"}"#,
            ),
            422,
            "NUL",
        ),
        c(
            "POST",
            "/login",
            Raw(
                "application/x-www-form-urlencoded",
                "username=%00&password=x",
            ),
            422,
            "NUL",
        ),
        c(
            "POST",
            "/api/send_message",
            Raw(
                "application/json",
                r#"{"phone_number":"1234567890","message":"a\u0000b"}"#,
            ),
            422,
            "NUL",
        ),
        c(
            "POST",
            "/api/contacts",
            J(json!({"phone": "1234567890", "attributes": {"k": "\u{0}"}})),
            422,
            "NUL",
        ),
        c("GET", "/api/contacts?q=%00", J(json!({})), 400, "NUL"),
    ]
}

async fn counts(api: &heydoc_testkit::Api) -> Value {
    let (_, contacts) = api.get("/api/contacts?limit=200").await;
    let (_, tags) = api.get("/api/tags").await;
    let (_, scheduled) = api.get("/api/scheduled-messages").await;
    let (_, users) = api.get("/api/users").await;
    json!({"contacts": contacts, "tags": tags, "scheduled": scheduled, "users": users})
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    api.post("/api/tags", &json!({"name": "Existing"})).await;
    api.post(
        "/api/scheduled-messages",
        &json!({"message": "hi", "recipients": ["1234567890"], "scheduled_time": "2030-01-01T00:00:00Z"}),
    )
    .await;
    api.post("/api/contacts", &json!({"phone": "15550009999"}))
        .await;
    let before = counts(&api).await;
    for case in cases() {
        let req = api
            .client
            .request(case.method.parse().unwrap(), api.url(case.path));
        let req = match &case.body {
            Body::Json(v) => req.json(v),
            Body::Raw(ct, text) => req.header("content-type", *ct).body(*text),
        };
        let (status, body) = read(req.send().await.unwrap()).await;
        let label = format!("{} {} {}", case.method, case.path, status);
        assert_eq!(status, case.status, "{label}: {body}");
        assert_eq!(body["success"], false, "{label}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(case.says),
            "{label}: {message:?} should mention {:?}",
            case.says
        );
        assert!(body["error"]["code"].is_string(), "{label}");
    }
    assert_eq!(counts(&api).await, before, "bad input changed nothing");
}

async fn idempotency_key_sends_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let send = |key: &'static str, message: &'static str| {
        let api = api.clone();
        async move {
            read(
                api.client
                    .post(api.url("/api/send_message"))
                    .header("idempotency-key", key)
                    .json(&json!({"phone_number": "1234567890", "message": message}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (s1, first) = send("order-42", "Your order shipped").await;
    let (s2, again) = send("order-42", "Your order shipped").await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first["data"]["id"], again["data"]["id"]);
    let (s3, misuse) = send("order-42", "Something else").await;
    assert_eq!(s3, 422, "{misuse}");
    let (_, chat) = api.get("/api/messages/1234567890").await;
    assert_eq!(chat.as_array().unwrap().len(), 1, "one message for one key");
    let (_, contact) = api.get("/api/contacts/1234567890").await;
    assert_eq!(contact["message_count"], 1);
}

/// A broken rule says which field and which rule to a program (`error.code`, `error.field`),
/// beside the words for a person; errors about no one field carry only the status's code.
async fn errors_name_their_field_and_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let campaign = |extra: Value| {
        let mut body = json!({"message": "Flu shots", "scheduled_time": "2030-03-02T09:00:00Z"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            json!({"recipients": ["15550001234", "12"]}),
            422,
            "invalid_phone",
            Some("recipients[1]"),
        ),
        (
            json!({"recipients": []}),
            422,
            "empty_audience",
            Some("recipients"),
        ),
        (
            json!({"tag_ids": [999]}),
            404,
            "unknown_tag",
            Some("tag_ids"),
        ),
        (
            json!({"recipients": ["15550001234"], "timezone": "Mars/Olympus"}),
            422,
            "unknown_time_zone",
            Some("timezone"),
        ),
        (
            json!({"recipients": ["15550001234"], "scheduled_time": "2001-01-01T00:00:00Z"}),
            422,
            "in_the_past",
            Some("scheduled_time"),
        ),
        (
            json!({"recipients": ["15550001234"], "recurrence": "every blue moon"}),
            422,
            "invalid_recurrence",
            Some("recurrence"),
        ),
        (
            json!({"recipients": ["15550001234"], "daily_limit": 0}),
            422,
            "out_of_range",
            Some("daily_limit"),
        ),
    ];
    for (extra, status, code, field) in cases {
        let (s, body) = api
            .post("/api/scheduled-messages", &campaign(extra.clone()))
            .await;
        assert_eq!(s, status, "{extra}: {body}");
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["error"]["code"], code, "{extra}: {body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{extra}: {body}");
        assert_eq!(body["error"]["message"], body["message"], "{body}");
    }
    let (s, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "12ab", "message": "hi"}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(body["error"]["code"], "invalid_phone", "{body}");
    assert_eq!(body["error"]["field"], "phone_number", "{body}");
    for (path, sent, code, field) in [
        (
            "/api/tags",
            json!({"name": "Flu", "color": "red"}),
            "invalid_color",
            "color",
        ),
        (
            "/api/tags",
            json!({"name": "a|b"}),
            "invalid_tag_name",
            "name",
        ),
        (
            "/api/users",
            json!({"username": "ab", "password": "long enough"}),
            "invalid_username",
            "username",
        ),
    ] {
        let (s, body) = api.post(path, &sent).await;
        assert_eq!(s, 422, "{sent}: {body}");
        assert_eq!(body["error"]["code"], code, "{sent}: {body}");
        assert_eq!(body["error"]["field"], field, "{sent}: {body}");
    }
    let (s, body) = api.get("/api/contacts/15559999999").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(body["error"].get("field").is_none(), "{body}");
    let (_, list) = api.get("/api/scheduled-messages").await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "nothing was created: {list}"
    );
}

on_both_backends!(
    bad_input_is_refused_and_changes_nothing,
    idempotency_key_sends_once,
    errors_name_their_field_and_rule
);
