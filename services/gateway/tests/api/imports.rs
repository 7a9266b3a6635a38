//! Contact import and export: counts, rejected rows with their lines, tags created, attributes
//! set, re-imports that change nothing, and an import of 100,000 rows as a background job.

use std::fmt::Write;
use std::time::Duration;

use heydoc_testkit::reqwest::{header, StatusCode};
use heydoc_testkit::{json, on_both_backends, Api, Backend, TestApp};
use serde_json::Value;

async fn upload(api: &Api, csv: &str, content_type: &str) -> (StatusCode, Value) {
    upload_bytes(api, csv.as_bytes().to_vec(), content_type).await
}

async fn upload_bytes(api: &Api, csv: Vec<u8>, content_type: &str) -> (StatusCode, Value) {
    let res = api
        .client
        .post(api.url("/api/contacts/import"))
        .header(header::CONTENT_TYPE, content_type)
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Follows an import to its end.
async fn finished(api: &Api, answer: (StatusCode, Value)) -> Value {
    let (status, body) = answer;
    if status == StatusCode::OK {
        return body["data"].clone();
    }
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["data"]["id"].as_i64().unwrap();
    // A hang guard, not a speed check (make bench measures that): generous for a loaded
    // machine running other tests beside this one.
    for _ in 0..3000 {
        let (_, now) = api.get(&format!("/api/imports/{id}")).await;
        if now["status"] != "running" {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("import {id} still running after 5 minutes");
}

async fn export(api: &Api, query: &str) -> String {
    let res = api
        .client
        .get(api.url(&format!("/api/contacts/export{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    res.text().await.unwrap()
}

const SMALL: &str = "phone,name,tags,city,notes
+91 98000 00001,Anita,Diabetes;VIP,Pune,
919800000002,Vikram,Diabetes,Mumbai,likes mornings
not-a-phone,Bad,,,
919800000003,,,,
,Nobody,,,
919800000001,,Cardio,,
";

async fn import_counts_rejects_and_reimports_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    // One contact exists already, with a name the file does not repeat.
    api.post(
        "/api/contacts",
        &json!({"phone": "919800000003", "name": "Meera"}),
    )
    .await;

    let result = finished(&api, upload(&api, SMALL, "text/csv").await).await;
    assert_eq!(result["status"], "done", "{result}");
    assert_eq!(result["lines"], 6);
    assert_eq!(result["created"], 2, "{result}");
    assert_eq!(result["updated"], 0, "{result}");
    assert_eq!(result["unchanged"], 1, "{result}");
    assert_eq!(result["rejected"], 2);
    assert_eq!(result["progress"], 1.0);
    let rejects = result["rejects"].as_array().unwrap();
    assert_eq!(rejects[0]["line"], 4);
    assert!(rejects[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("phone: "));
    assert_eq!(rejects[1]["line"], 6);
    assert_eq!(rejects[1]["reason"], "phone is empty");

    let (_, anita) = api.get("/api/contacts/919800000001").await;
    assert_eq!(anita["name"], "Anita");
    assert_eq!(anita["attributes"], json!({"city": "Pune"}));
    let mut tags: Vec<&str> = anita["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(
        tags,
        vec!["Cardio", "Diabetes", "VIP"],
        "rows for one phone add up"
    );
    let (_, vikram) = api.get("/api/contacts/919800000002").await;
    assert_eq!(
        vikram["attributes"],
        json!({"city": "Mumbai", "notes": "likes mornings"})
    );
    let (_, meera) = api.get("/api/contacts/919800000003").await;
    assert_eq!(
        meera["name"], "Meera",
        "an empty name leaves the name as it is"
    );

    // The same file again: nothing changes.
    let again = finished(&api, upload(&api, SMALL, "text/csv; charset=utf-8").await).await;
    assert_eq!(
        (
            again["created"].clone(),
            again["updated"].clone(),
            again["unchanged"].clone()
        ),
        (json!(0), json!(0), json!(3)),
        "{again}"
    );
    // Tags match by name regardless of case: no second "diabetes" tag.
    let (_, before) = api.get("/api/tags").await;
    let recased = finished(
        &api,
        upload(&api, "phone,tags\n919800000002,diabetes;vip\n", "text/csv").await,
    )
    .await;
    assert_eq!(recased["updated"], 1, "Vikram gains VIP: {recased}");
    let (_, after) = api.get("/api/tags").await;
    assert_eq!(
        before.as_array().unwrap().len(),
        after.as_array().unwrap().len()
    );
    // A changed value counts as updated.
    let changed = finished(
        &api,
        upload(&api, "phone,city\n919800000002,Nagpur\n", "text/csv").await,
    )
    .await;
    assert_eq!(changed["updated"], 1, "{changed}");

    // The export, for a tag, and back in: nothing changes.
    let (_, all_tags) = api.get("/api/tags").await;
    let diabetes = all_tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Diabetes")
        .unwrap()["id"]
        .clone();
    let csv = export(&api, &format!("?tag={diabetes}")).await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("\u{feff}phone,name,tags,attributes,opted_out,suppressed_reason,last_message_at"),
        "a byte order mark first, for spreadsheets"
    );
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), 2, "{csv}");
    assert!(body[0].starts_with("919800000001,Anita,"), "{csv}");
    assert!(
        csv.contains(r#""{""city"":""Nagpur"",""notes"":""likes mornings""}""#),
        "{csv}"
    );
    let back = finished(&api, upload(&api, &csv, "text/csv").await).await;
    assert_eq!(back["unchanged"], 2, "{back}");
    assert_eq!(back["created"], 0);
    assert_eq!(back["updated"], 0);
    // A name a spreadsheet would run as a formula is exported guarded and comes back as it was.
    let (s, _) = api
        .post(
            "/api/contacts",
            &json!({"phone": "919800000009", "name": "=HYPERLINK(\"x\")"}),
        )
        .await;
    assert_eq!(s, 201);
    let guarded = export(&api, "?q=919800000009").await;
    assert!(
        guarded.contains(r#"919800000009,"'=HYPERLINK(""x"")""#),
        "{guarded}"
    );
    let back = finished(&api, upload(&api, &guarded, "text/csv").await).await;
    assert_eq!(back["unchanged"], 1, "{back}");
    // Imports are their creator's (and the admins').
    let (s, _) = api
        .post(
            "/api/users",
            &json!({"username": "nurse", "password": "a-long-password", "role": "manager"}),
        )
        .await;
    assert_eq!(s, 201);
    let nurse = app.authed(&app.login("nurse", "a-long-password").await);
    let (s, _) = nurse.get(&format!("/api/imports/{}", back["id"])).await;
    assert_eq!(s, 404);
    let (s, _) = api.get(&format!("/api/imports/{}", back["id"])).await;
    assert_eq!(s, 200);
    let everyone = export(&api, "?tag=").await;
    assert_eq!(everyone.lines().count(), 5, "{everyone}");
}

async fn bad_uploads_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (s, body) = upload(&api, "phone\n14155550100\n", "application/json").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (s, body) = upload(&api, "name,city\nAna,Pune\n", "text/csv").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("\"phone\" column"));
    let (s, body) = upload(&api, "", "text/csv").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("empty"));
    let (s, _) = api.get("/api/imports/1").await;
    assert_eq!(s, 404, "no import was recorded");
    let (_, contacts) = api.get("/api/contacts").await;
    assert_eq!(contacts, json!([]));
    // A file that breaks midway (not UTF-8 on line 3): what came before is in, and the
    // import says where it broke.
    let mut bytes = b"phone,name\n14155550101,Ok\n14155550102,".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
    bytes.extend_from_slice(b"14155550103,After\n");
    let broken = finished(&api, upload_bytes(&api, bytes, "text/csv").await).await;
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(
        broken["error"].as_str().unwrap().contains("line 3"),
        "{broken}"
    );
    assert_eq!(broken["created"], 1, "{broken}");
    let (s, _) = api.get("/api/contacts/14155550101").await;
    assert_eq!(s, 200);
    let (s, _) = api.get("/api/contacts/14155550103").await;
    assert_eq!(s, 404, "nothing after the break");
}

on_both_backends!(
    import_counts_rejects_and_reimports_change_nothing,
    bad_uploads_change_nothing
);

/// 100,000 rows, 300 of them bad: a background job whose counts, rejects and re-import are
/// right. (Peak memory is measured by `make bench`, not here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_rows_import_in_the_background() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let api = app.admin().await;
    let mut csv = String::from("phone,name,tags,plan\n");
    let mut bad_lines = Vec::new();
    for i in 0..100_000u32 {
        let line = i + 2;
        if i % 333 == 7 && bad_lines.len() < 300 {
            bad_lines.push(line);
            writeln!(csv, "12x{i},Bad {i},,").unwrap();
        } else {
            let tag = if i % 2 == 0 { "Even" } else { "Odd" };
            writeln!(csv, "9190{i:08},Patient {i},{tag};All,basic").unwrap();
        }
    }
    assert_eq!(bad_lines.len(), 300);
    let first = upload(&api, &csv, "text/csv").await;
    assert_eq!(
        first.0,
        StatusCode::ACCEPTED,
        "a large import runs in the background"
    );
    // One import per person at a time: a second one waits for the first.
    let (s, second) = upload(&api, "phone\n14155550100\n", "text/csv").await;
    assert_eq!(s, StatusCode::CONFLICT, "{second}");
    assert!(second["message"]
        .as_str()
        .unwrap()
        .contains("still running"));
    let result = finished(&api, first).await;
    assert_eq!(result["status"], "done", "{result}");
    assert_eq!(result["lines"], 100_000);
    assert_eq!(result["created"], 99_700);
    assert_eq!(result["rejected"], 300);
    let lines: Vec<i64> = result["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(
        lines,
        bad_lines.iter().map(|&l| i64::from(l)).collect::<Vec<_>>()
    );
    let (_, tags) = api.get("/api/tags").await;
    let all = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "All")
        .unwrap();
    assert_eq!(all["contact_count"], 99_700);

    let again = finished(&api, upload(&api, &csv, "text/csv").await).await;
    assert_eq!(again["unchanged"], 99_700, "{again}");
    assert_eq!(again["created"], 0);
    assert_eq!(again["updated"], 0);
}

/// Two imports of overlapping files at once: every contact is created once, both finish, and
/// between them the counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_imports_at_once_create_each_contact_once() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let api = app.admin().await;
    // Two people (one import each at a time).
    let (s, _) = api
        .post(
            "/api/users",
            &json!({"username": "planner", "password": "a-long-password", "role": "manager"}),
        )
        .await;
    assert_eq!(s, 201);
    let other = app.authed(&app.login("planner", "a-long-password").await);
    let file = |from: u32, to: u32| {
        let mut csv = String::from("phone,name,tags\n");
        for i in from..to {
            writeln!(csv, "9180{i:08},Patient {i},Shared;T{}", i % 7).unwrap();
        }
        csv
    };
    let (a, b) = (file(0, 6000), file(3000, 9000));
    let (ra, rb) = tokio::join!(upload(&api, &a, "text/csv"), upload(&other, &b, "text/csv"));
    let (ra, rb) = (finished(&api, ra).await, finished(&api, rb).await);
    assert_eq!(ra["status"], "done", "{ra}");
    assert_eq!(rb["status"], "done", "{rb}");
    let created = ra["created"].as_i64().unwrap() + rb["created"].as_i64().unwrap();
    assert_eq!(created, 9000, "{ra} {rb}");
    let touched = |r: &Value| {
        r["created"].as_i64().unwrap()
            + r["updated"].as_i64().unwrap()
            + r["unchanged"].as_i64().unwrap()
    };
    assert_eq!(touched(&ra), 6000);
    assert_eq!(touched(&rb), 6000);
    let (_, tags) = api.get("/api/tags").await;
    let shared = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Shared")
        .unwrap();
    assert_eq!(shared["contact_count"], 9000);
    assert_eq!(tags.as_array().unwrap().len(), 8, "each tag made once");
}

/// Limits that keep one file from making every inbox row huge or pinning a thread: tags per
/// row, attribute sizes, and the number of tags HeyDoc holds; each refused row says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_beyond_the_limits_are_rejected_with_the_reason() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let api = app.admin().await;
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let long = "x".repeat(1001);
    let mut csv = format!("phone,name,tags,note\n14155550001,Ok,a;b,fine\n14155550002,Many,{},\n14155550003,Long,,{long}\n", many.join(";"));
    // 1,000 tags at most: 60 rows of 20 new tags each ask for 1,200.
    for row in 0..60 {
        let tags: Vec<String> = (0..20).map(|i| format!("bulk{row}x{i}")).collect();
        writeln!(csv, "141555510{row:02},Bulk {row},{},", tags.join(";")).unwrap();
    }
    let result = finished(&api, upload(&api, &csv, "text/csv").await).await;
    assert_eq!(result["status"], "done", "{result}");
    let rejects = result["rejects"].as_array().unwrap();
    let reason = |line: i64| {
        rejects
            .iter()
            .find(|r| r["line"] == line)
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(reason(3).contains("at most 20"), "{}", reason(3));
    assert!(
        reason(4).contains("note: at most 1000 characters"),
        "{}",
        reason(4)
    );
    let over_tags = rejects
        .iter()
        .filter(|r| r["reason"].as_str().unwrap().contains("at most 1000 tags"))
        .count();
    assert!(over_tags >= 10, "{result}");
    let (_, tags) = api.get("/api/tags").await;
    assert!(tags.as_array().unwrap().len() <= 1000);
    assert_eq!(
        result["created"].as_i64().unwrap() + over_tags as i64,
        61,
        "{result}"
    );
}

async fn preview(api: &Api, csv: &str) -> Value {
    let res = api
        .client
        .post(api.url("/api/contacts/import/preview"))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The preview says what each row would do (add, change and what, leave alone, refuse and
/// why, with what the row said), refuses what the import would refuse (tags beyond the limit
/// included), and writes nothing.
async fn a_preview_says_what_the_import_would_do_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = app.admin().await;
    let (s, _) = api
        .post(
            "/api/contacts",
            &json!({"phone": "919800000001", "name": "Asha"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .post(
            "/api/contacts",
            &json!({"phone": "919800000002", "name": "Ravi"}),
        )
        .await;
    assert_eq!(s, 201);
    // Room for two more tags only.
    heydoc_testkit::sql::execute(
        &app.db.conn,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 998)
         INSERT INTO tags (name, color, created_at) SELECT 'old' || i, '#888888', CURRENT_TIMESTAMP FROM n",
    )
    .await;
    let csv = "phone,name,tags\n\
               919800000001,Asha Devi,\n\
               919800000002,Ravi,\n\
               919800000003,Meera,new1;new2\n\
               not-a-phone,Nobody,\n\
               919800000004,Kiran,zzz\n";
    let out = preview(&api, csv).await;
    assert_eq!(out["rows_read"], 5, "{out}");
    assert_eq!(
        (
            &out["created"],
            &out["updated"],
            &out["unchanged"],
            &out["rejected"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(2)),
        "{out}"
    );
    let rows = out["rows"].as_array().unwrap();
    let row = |line: i64| rows.iter().find(|r| r["line"] == line).unwrap();
    assert_eq!(row(2)["action"], "update");
    assert!(
        row(2)["changes"][0].as_str().unwrap().contains("Asha Devi"),
        "{out}"
    );
    assert_eq!(row(3)["action"], "unchanged");
    assert_eq!(row(4)["action"], "create");
    assert_eq!(row(5)["action"], "reject");
    assert_eq!(row(5)["content"], "not-a-phone,Nobody,");
    assert_eq!(row(6)["action"], "reject", "a third new tag: {out}");
    assert!(
        row(6)["reason"]
            .as_str()
            .unwrap()
            .contains("at most 1000 tags"),
        "{out}"
    );
    // Nothing written: the name and the tag count are as they were.
    let (_, asha) = api.get("/api/contacts/919800000001").await;
    assert_eq!(asha["name"], "Asha", "{asha}");
    let (_, tags) = api.get("/api/tags").await;
    assert_eq!(tags.as_array().unwrap().len(), 998);
}

on_both_backends!(a_preview_says_what_the_import_would_do_and_writes_nothing);
