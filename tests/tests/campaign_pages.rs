//! A manager sets up, checks and runs a weekday reminder in headless Chromium without meeting
//! an error in the API's words: a name, the audience and who is skipped before saving, runs
//! with their weekdays, mistakes explained next to their field, plain states, names in the
//! results and a CSV of them, and a cancel asked beside the button.

use heydoc_e2e::browser::Browser;
use heydoc_e2e::stack::{BusKind, Stack};
use heydoc_testkit::{json, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_sets_up_a_weekday_reminder_in_plain_words() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    let admin = stack.app.admin().await;
    let (_, tag) = admin.post("/api/tags", &json!({"name": "Dialysis"})).await;
    let tag_id = tag["data"]["id"].as_i64().expect("tag");
    for (phone, name) in [
        ("919800000081", "Anita"),
        ("919800000082", "Vikram"),
        ("919800000083", "Meera"),
    ] {
        admin
            .post(
                "/api/contacts",
                &json!({"phone": phone, "name": name, "tag_ids": [tag_id]}),
            )
            .await;
    }
    // Meera said STOP: she is counted as skipped.
    admin
        .put("/api/contacts/919800000083", &json!({"opted_out": true}))
        .await;

    let browser = Browser::start(1200, 1000).await;
    browser.goto(&stack.app.url("/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", "correct-horse-battery").await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_path("/inbox").await;
    browser.goto(&stack.app.url("/campaigns/new")).await;

    // Saving with no audience: the audience says what to do, in its own words. (The API's
    // 422s below are provoked on purpose.)
    browser.expect_console_error("422");
    browser.fill("#name", "Weekday dialysis reminders").await;
    browser
        .fill(
            "#message",
            "Hello {{name|there}}, your dialysis session is tomorrow at 9.",
        )
        .await;
    browser.click("#campaign-form button[type=submit]").await;
    let said = browser
        .wait_for_text("#error-audience", "Choose who receives it")
        .await;
    assert!(!said.contains("tag_ids"), "{said}");

    // The audience before saving: two reached, one skipped.
    browser
        .click(&format!("input[name='tag_ids[]'][value='{tag_id}']"))
        .await;
    browser
        .wait_for_text("#estimate-text", "Reaches 2 people")
        .await;
    browser
        .wait_for_text("#estimate-warnings", "opted out")
        .await;
    browser
        .wait_for_text(
            "#sample-text",
            "Hello Anita, your dialysis session is tomorrow at 9.",
        )
        .await;

    // A first run in the past: said next to the field, without an ISO timestamp.
    browser.set_value("#timezone", "Asia/Kolkata").await;
    browser
        .set_value("#scheduled_time", "2020-01-06T09:00")
        .await;
    let past = browser
        .wait_for_text("#error-scheduled_time", "in the past")
        .await;
    assert!(!past.contains("2020-01-06T"), "{past}");

    // Every weekday at 09:00: the runs show their weekdays, Monday to Friday only.
    browser
        .set_value("#scheduled_time", "2031-01-06T09:00")
        .await;
    browser.set_value("#recurrence", "weekdays").await;
    browser.find("#ends-field:not([hidden])").await;
    browser
        .wait_for_text("#next-runs li:nth-child(5)", "Fri")
        .await;
    let runs = browser
        .run("return [...document.querySelectorAll('#next-runs li')].map(li => li.textContent)")
        .await;
    let runs: Vec<String> = serde_json::from_value(runs).expect("runs");
    assert_eq!(runs.len(), 5, "{runs:?}");
    for (run, day) in runs.iter().zip(["Mon", "Tue", "Wed", "Thu", "Fri"]) {
        assert!(run.starts_with(day), "{run} is not a {day}");
        assert!(run.contains("09:00"), "{run}");
    }
    // A wrong day of the month: a plain sentence next to Repeats.
    browser.set_value("#recurrence", "cron").await;
    browser.set_value("#cron", "0 9 * * funday").await;
    browser
        .wait_for_text("#error-recurrence", "repeat pattern")
        .await;
    // Once: no end to choose.
    browser.set_value("#recurrence", "none").await;
    browser.find("#ends-field[hidden]").await;
    // Weekly on chosen days.
    browser.set_value("#recurrence", "weekly").await;
    browser.click("input[name=weekday][value='3']").await;
    browser.wait_for_text("#next-runs", "Wed").await;
    browser.set_value("#recurrence", "weekdays").await;
    browser
        .wait_for_text("#next-runs li:nth-child(2)", "Tue")
        .await;
    browser.screenshot("campaign-weekdays").await;
    browser.click("#campaign-form button[type=submit]").await;

    // Its page: the name, the plain state, the repeat in words.
    browser
        .wait_for_text("#campaign h1", "Weekday dialysis reminders")
        .await;
    browser
        .wait_for_text("#campaign .status", "scheduled")
        .await;
    browser
        .wait_for_text(
            "#campaign dl.facts",
            "every weekday at 09:00 (Asia/Kolkata)",
        )
        .await;
    browser.wait_for_text("#campaign dl.facts", "never").await;
    browser.goto(&stack.app.url("/campaigns")).await;
    let row = browser
        .wait_for_text("table.campaigns tbody tr", "Weekday dialysis reminders")
        .await;
    assert!(row.contains("scheduled"), "{row}");
    assert!(row.contains("every weekday"), "{row}");

    // Cancelling asks beside the button (no browser dialog); "Keep it" keeps it.
    browser.click("table.campaigns tbody tr a").await;
    browser.click("button.action-cancelled").await;
    browser.click(".confirm-box button.secondary").await;
    browser.find("#campaign[data-state=scheduled]").await;
    browser.click("button.action-cancelled").await;
    browser
        .wait_for_text(".confirm-box", "Cancel this campaign for good?")
        .await;
    browser.click(".confirm-box button.danger").await;
    browser.find("#campaign[data-state=cancelled]").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_lists_its_recipients_by_name_and_downloads_as_csv() {
    let mut stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    let admin = stack.app.admin().await;
    for (phone, name) in [("919800000091", "अनीता"), ("919800000092", "Vikram")] {
        admin
            .post("/api/contacts", &json!({"phone": phone, "name": name}))
            .await;
    }
    let (s, created) = admin
        .post(
            "/api/scheduled-messages",
            &json!({"name": "Lab results ready", "message": "Your results are ready.",
                    "recipients": ["919800000091", "919800000092"],
                    "scheduled_time": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_i64().expect("id");
    assert_eq!(created["data"]["name"], "Lab results ready");
    let browser = Browser::start(1200, 900).await;
    browser.goto(&stack.app.url("/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", "correct-horse-battery").await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_path("/inbox").await;
    browser
        .goto(&stack.app.url(&format!("/campaigns/{id}")))
        .await;
    browser
        .wait_for_text("table.deliveries tbody", "अनीता")
        .await;
    browser
        .wait_for_text("table.deliveries tbody", "Vikram")
        .await;
    // The CSV: a byte order mark for spreadsheets, then names in any script.
    let csv = browser
        .client
        .execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];
                 fetch('/api/scheduled-messages/{id}/deliveries.csv', {{credentials: 'same-origin'}})
                   .then(r => r.arrayBuffer()).then(b => done([...new Uint8Array(b)]));"
            ),
            vec![],
        )
        .await
        .expect("download");
    let bytes: Vec<u8> = serde_json::from_value(csv).expect("bytes");
    assert_eq!(
        &bytes[..3],
        b"\xEF\xBB\xBF",
        "a UTF-8 byte order mark first"
    );
    let text = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8");
    assert!(text.starts_with("run,phone,name,status"), "{text}");
    assert!(text.contains("919800000091,अनीता,"), "{text}");
    browser.find("a[href$='/deliveries.csv']").await;
    // The campaign list counts the last run's deliveries.
    let started = std::time::Instant::now();
    loop {
        browser.goto(&stack.app.url("/campaigns")).await;
        let cell = browser
            .run(&format!(
                "const td = document.querySelector(\"tr[data-id='{id}'] td[data-label='Last run']\");
                 return td ? td.textContent : null"
            ))
            .await;
        let text = cell.as_str().unwrap_or_default().to_string();
        if text.contains("2 sent") && text.contains("delivered") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "the campaign list shows {cell} for the last run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    browser.close().await;
}
