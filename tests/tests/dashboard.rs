//! The dashboard in headless Chromium: registering and logging in, an inbound message showing
//! up live in an inbox served by another gateway replica, a reply whose ticks reach "read"
//! through the sandbox, a daily campaign for a tag (its next runs before saving, its results,
//! pause and resume), and a failed send with its reason. The screenshots in the README come
//! from these runs (`target/screenshots/`).

use base64::Engine;
use chrono::{Duration as Span, Timelike, Utc};
use heydoc_e2e::browser::Browser;
use heydoc_e2e::stack::{BusKind, Stack};
use heydoc_testkit::{json, Backend};
use heydoc_whatsapp::sandbox::SandboxKnobs;

const PASSWORD: &str = "a-long-password";

/// Registers the first user through the register page `/` leads a new install to, and
/// returns once the browser is on the inbox.
async fn register(browser: &Browser, base: &str, username: &str) {
    browser.goto(&format!("{base}/")).await;
    browser.wait_for_path("/register").await;
    browser.fill("#username", username).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_path("/inbox").await;
}

async fn log_in(browser: &Browser, base: &str, username: &str, password: &str) {
    browser.goto(&format!("{base}/campaigns")).await;
    browser.wait_for_path("/login").await;
    browser.fill("#username", username).await;
    browser.fill("#password", password).await;
    browser.click("form button[type=submit]").await;
    // The login page sends the browser back where it was going.
    browser.wait_for_path("/campaigns").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_message_appears_live_in_an_inbox_served_by_another_replica() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    // The browser talks to a second gateway; WhatsApp's webhooks reach the first.
    let replica = stack.spawn_gateway_replica().await;
    let browser = Browser::start(1200, 900).await;
    register(&browser, &replica.url(""), "reception").await;
    browser.find("#conversations .empty").await;
    browser.find("body[data-live=connected]").await;
    browser.run("window.heydocNotReloaded = true").await;

    stack
        .patient_writes("14155550101", "Asha Rao", "Hello, can I book for Tuesday?")
        .await;

    let row = browser
        .wait_for_text(
            "li.conv[data-phone='14155550101']",
            "can I book for Tuesday",
        )
        .await;
    assert!(row.contains("Asha Rao"), "{row}");
    browser
        .find("li.conv[data-phone='14155550101'][data-unread='1'] .badge")
        .await;
    assert_eq!(
        browser
            .run("return window.heydocNotReloaded === true")
            .await,
        json!(true),
        "the inbox changed without a page reload"
    );

    // A second message moves the counter, still live.
    stack
        .patient_writes("14155550101", "Asha Rao", "Morning if possible")
        .await;
    browser
        .find("li.conv[data-phone='14155550101'][data-unread='2'] .badge")
        .await;
    browser.close().await;
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_from_the_chat_shows_its_ticks_up_to_read() {
    // The embedded default: SQLite and the in-process queue.
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    stack.sandbox.set_knobs(SandboxKnobs {
        status_delay_ms: 300,
        ..SandboxKnobs::default()
    });
    let browser = Browser::start(420, 860).await;
    register(&browser, &stack.app.url(""), "dr-mehta").await;
    stack
        .patient_writes("14155550102", "Ravi", "Is the clinic open on Saturday?")
        .await;
    browser
        .wait_for_text("li.conv[data-phone='14155550102']", "open on Saturday")
        .await;
    browser
        .click("li.conv[data-phone='14155550102'] a.open")
        .await;
    browser.wait_for_path("/chat/14155550102").await;
    browser.find("#window[data-window=open]").await;
    browser
        .wait_for_text("li.msg.in", "Is the clinic open on Saturday?")
        .await;

    browser.fill("#message", "Yes, 9 to 1. See you!").await;
    browser.click("#reply-form button[type=submit]").await;
    // Queued, then sent, delivered and read as the sandbox's webhooks arrive.
    browser.find("li.msg.out .tick").await;
    browser
        .find("li.msg.out[data-status=read] .tick-read")
        .await;
    browser
        .wait_for_text("li.msg.out[data-status=read]", "Yes, 9 to 1")
        .await;
    browser.screenshot("chat").await;

    // Opening the chat marked the patient's message read (and the reply answered it: it left
    // "needs reply").
    browser.goto(&stack.app.url("/inbox?view=all")).await;
    let row = browser.find("li.conv[data-phone='14155550102']").await;
    assert_eq!(
        row.attr("data-unread").await.expect("attr"),
        Some("0".into())
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_campaign_for_a_tag_shows_its_next_runs_results_and_pauses() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    let admin = stack.app.admin().await;
    let browser = Browser::start(1200, 1000).await;
    log_in(
        &browser,
        &stack.app.url(""),
        "admin",
        "correct-horse-battery",
    )
    .await;

    // A tag, made on the tags page.
    browser.goto(&stack.app.url("/tags")).await;
    browser.fill("#new-tag", "Diabetes follow-up").await;
    browser
        .click("form[aria-label='New tag'] button[type=submit]")
        .await;
    browser.wait_for_text("li.tag", "Diabetes follow-up").await;
    let (_, tags) = admin.get("/api/tags").await;
    let tag_id = tags[0]["id"].as_i64().expect("tag id");
    for (phone, name) in [
        ("919800000001", "Anita"),
        ("919800000002", "Vikram"),
        ("919800000003", "Meera"),
    ] {
        let (status, body) = admin
            .post(
                "/api/contacts",
                &json!({"phone": phone, "name": name, "tag_ids": [tag_id]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Tagging from the inbox: a fourth contact gets the tag through its row.
    admin
        .post(
            "/api/contacts",
            &json!({"phone": "919800000004", "name": "Kabir"}),
        )
        .await;
    // Tagging from the contact panel: one click on the tag.
    browser.goto(&stack.app.url("/inbox?view=contacts")).await;
    browser
        .click("li.conv[data-phone='919800000004'] a.open")
        .await;
    browser.wait_for_path("/chat/919800000004").await;
    browser
        .click("#contact-panel button.tag-toggle[aria-pressed=false]")
        .await;
    browser
        .wait_for_text(
            "#contact-panel button.tag-toggle[aria-pressed=true]",
            "Diabetes follow-up",
        )
        .await;

    // The campaign: every day at this minute in Asia/Kolkata. The form takes whole minutes and
    // the API accepts a first run up to a minute late, so this one fires at once (late in a
    // minute, wait for the next so that it is not a minute late by the time it is saved).
    browser.goto(&stack.app.url("/campaigns/new")).await;
    if Utc::now().second() > 40 {
        let left = 61 - u64::from(Utc::now().second());
        tokio::time::sleep(std::time::Duration::from_secs(left)).await;
    }
    let kolkata: chrono_tz::Tz = "Asia/Kolkata".parse().expect("zone");
    let first = Utc::now().with_timezone(&kolkata);
    browser
        .fill(
            "#message",
            "Reminder for {{name|you}}: fasting sugar test tomorrow, 8am.",
        )
        .await;
    browser
        .click(&format!("input[name='tag_ids[]'][value='{tag_id}']"))
        .await;
    browser.set_value("#timezone", "Asia/Kolkata").await;
    browser.set_value("#recurrence", "daily").await;
    browser
        .set_value(
            "#scheduled_time",
            &first.format("%Y-%m-%dT%H:%M").to_string(),
        )
        .await;
    // The next five runs, before saving: today's and the four days after, at the same time,
    // with their weekdays, in the campaign's zone.
    let fifth = browser
        .wait_for_text("#next-runs li:nth-child(5)", "GMT+5:30")
        .await;
    let expected_fifth = (first + Span::days(4)).format("%a, %b %-d, %Y").to_string();
    assert!(
        fifth.contains(&expected_fifth),
        "{fifth} vs {expected_fifth}"
    );
    let runs = browser
        .client
        .find_all(fantoccini::Locator::Css("#next-runs li"))
        .await
        .expect("runs");
    assert_eq!(runs.len(), 5);
    // The message as its first recipient will read it.
    browser
        .wait_for_text(
            "#sample-text",
            "Reminder for Anita: fasting sugar test tomorrow, 8am.",
        )
        .await;
    browser
        .wait_for_text("#sample-who", "Anita (+919800000001)")
        .await;
    browser.screenshot("campaign-form").await;
    browser.click("#campaign-form button[type=submit]").await;
    browser.find("#campaign[data-status=pending]").await;

    // The first run fires and its four recipients' deliveries come back read.
    browser.wait_for_text("li.occurrence", "4 planned").await;
    browser
        .wait_for_text("li.occurrence li[data-count=read]", "read 4")
        .await;
    browser
        .wait_for_text("table.deliveries tbody", "919800000004")
        .await;
    browser.screenshot("campaign").await;

    browser.click("button.action-paused").await;
    browser.find("#campaign[data-status=paused]").await;
    let (_, listed) = admin.get("/api/scheduled-messages").await;
    assert_eq!(listed[0]["status"], "paused");
    browser.click("button.action-pending").await;
    browser.find("#campaign[data-status=pending]").await;
    let (_, listed) = admin.get("/api/scheduled-messages").await;
    assert_eq!(listed[0]["status"], "pending");
    assert!(listed[0]["next_run_at"].is_string());

    // The inbox with tagged contacts, for the README.
    stack
        .patient_writes("919800000002", "Vikram", "Thanks, I will come fasting.")
        .await;
    browser.goto(&stack.app.url("/inbox")).await;
    browser
        .wait_for_text("li.conv[data-phone='919800000002']", "I will come fasting")
        .await;
    browser.screenshot("inbox").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spreadsheet_imports_with_progress_and_its_rejected_rows() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let admin = stack.app.admin().await;
    admin
        .post(
            "/api/contacts",
            &json!({"phone": "919800000012", "name": "Ravi K"}),
        )
        .await;
    let browser = Browser::start(1000, 900).await;
    log_in(
        &browser,
        &stack.app.url(""),
        "admin",
        "correct-horse-battery",
    )
    .await;
    browser.goto(&stack.app.url("/inbox")).await;
    let csv = std::env::temp_dir().join(format!("heydoc-import-{}.csv", std::process::id()));
    std::fs::write(
        &csv,
        "phone,name,tags,city\n919800000011,Asha,Antenatal,Pune\nnot-a-phone,Bad,,\n919800000012,Ravi,Antenatal;VIP,\n",
    )
    .expect("csv");
    browser
        .click("#conversations a[href='/contacts/import']")
        .await;
    browser.wait_for_path("/contacts/import").await;
    browser
        .find("#import-file")
        .await
        .send_keys(&csv.display().to_string())
        .await
        .expect("choose the file");
    // Checked first: what each row will do, before anything changes.
    browser.click("#import-form button[type=submit]").await;
    browser
        .wait_for_text(
            "#preview-summary",
            "3 rows: 1 new, 1 changed, 0 unchanged, 1 refused",
        )
        .await;
    browser
        .wait_for_text(
            "#import-preview tr[data-action=update]",
            "name: \"Ravi K\" → \"Ravi\"",
        )
        .await;
    browser
        .wait_for_text(
            "#import-preview tr[data-action=reject]",
            "not-a-phone,Bad,,",
        )
        .await;
    assert_eq!(
        admin.get("/api/contacts/919800000012").await.1["name"],
        "Ravi K",
        "the check changed nothing"
    );
    browser
        .wait_for_text("#import-button", "Import 2 rows")
        .await;
    browser.click("#import-form button[type=submit]").await;
    browser
        .wait_for_text("#import-status", "Done: 3 rows read")
        .await;
    browser
        .wait_for_text("#import-result [data-count=created]", "1")
        .await;
    browser
        .wait_for_text("#import-result [data-count=updated]", "1")
        .await;
    browser
        .wait_for_text("#import-result [data-count=rejected]", "1")
        .await;
    let reject = browser
        .wait_for_text("#import-rejects tbody tr", "phone")
        .await;
    assert!(reject.starts_with('3'), "line 3 is the bad one: {reject}");
    assert!(
        reject.contains("not-a-phone,Bad"),
        "the row's content: {reject}"
    );
    assert_eq!(
        browser
            .run("return document.getElementById('import-progress').value === 1")
            .await,
        json!(true),
        "the progress bar is full"
    );
    let _ = std::fs::remove_file(&csv);
    browser.goto(&stack.app.url("/inbox?view=contacts")).await;
    browser
        .wait_for_text("li.conv[data-phone='919800000012'] .sub", "VIP")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_makes_and_revokes_keys_and_manages_event_endpoints() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let browser = Browser::start(1100, 900).await;
    register(&browser, &stack.app.url(""), "owner").await;
    browser.click("nav a[href='/integrations']").await;
    browser.wait_for_path("/integrations").await;
    // The business numbers, with their state.
    browser
        .wait_for_text("table.numbers tr[data-state=active]", "default")
        .await;

    browser.fill("#key-name", "CRM sync").await;
    browser
        .click("form[aria-label='New API key'] button[type=submit]")
        .await;
    let key = browser
        .wait_for_text("#secret-list li:first-child .secret-value", "hdk_")
        .await;
    browser
        .wait_for_text(
            "#secret-list li:first-child .secret-label",
            "API key CRM sync (read)",
        )
        .await;
    browser.wait_for_text("table.keys tbody", "CRM sync").await;
    // The key works, read-only, until it is revoked from the page.
    let client = reqwest::Client::new();
    let get = |key: String| {
        let client = client.clone();
        let url = stack.app.url("/api/contacts");
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("GET")
                .status()
        }
    };
    assert_eq!(get(key.clone()).await, 200);
    // Revoking asks first, next to the button.
    browser.click("table.keys button.danger").await;
    browser.click("table.keys .confirm-box button.danger").await;
    browser.wait_for_text("table.keys tbody", "revoked").await;
    assert_eq!(get(key).await, 401);

    browser
        .fill("#endpoint-url", "https://crm.example.com/heydoc")
        .await;
    browser
        .click("form[aria-label='New endpoint'] input[value='message.received']")
        .await;
    browser
        .click("form[aria-label='New endpoint'] button[type=submit]")
        .await;
    browser
        .wait_for_text("#secret-list li:first-child .secret-value", "whsec_")
        .await;
    // Both secrets stay listed, each with its label and a copy button.
    browser
        .wait_for_text(
            "#secret-list li:nth-child(2) .secret-label",
            "API key CRM sync",
        )
        .await;
    browser.find("#secret-list li:first-child button").await;
    browser
        .wait_for_text("ul.endpoints", "message.received")
        .await;
    browser
        .click("ul.endpoints li[data-enabled='true'] button[type=submit]")
        .await;
    browser.find("ul.endpoints li[data-enabled='false']").await;
    browser
        .wait_for_text("ul.endpoints", "disabled by owner")
        .await;
    browser.close().await;
}

/// A receptionist leaves: the admin adds her, she works in the inbox (campaigns are not hers),
/// one click disables her (her open browser is signed out at its next page) and the audit log
/// shows what she did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lets_a_leaver_go_in_one_click_and_sees_what_they_did() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let base = stack.app.url("");
    let admin = Browser::start(1100, 900).await;
    register(&admin, &base, "owner").await;
    admin.click("nav a[href='/team']").await;
    admin.wait_for_path("/team").await;
    admin.fill("#new-username", "leaver").await;
    admin.fill("#new-password", PASSWORD).await;
    admin.set_value("#new-role", "agent").await;
    admin
        .click("form[aria-label='New account'] button[type=submit]")
        .await;
    admin
        .wait_for_text("table.team tr[data-state=active]", "leaver")
        .await;

    let leaver = Browser::start(1100, 900).await;
    leaver.goto(&format!("{base}/login")).await;
    leaver.fill("#username", "leaver").await;
    leaver.fill("#password", PASSWORD).await;
    leaver.click("form button[type=submit]").await;
    leaver.wait_for_path("/inbox").await;
    let nav = leaver
        .run("return [...document.querySelectorAll('header nav a')].map(a => a.getAttribute('href'))")
        .await;
    assert_eq!(nav, json!(["/inbox"]), "an agent sees the inbox only");
    leaver.goto(&format!("{base}/campaigns")).await;
    leaver.wait_for_text("main", "cannot do this").await;
    leaver.expect_console_error("403");

    // One click (and the confirmation beside it).
    admin
        .click("table.team form:has(input[name=disabled][value=true]) button")
        .await;
    admin
        .click("table.team form:has(input[name=disabled][value=true]) .confirm-box button.danger")
        .await;
    admin
        .wait_for_text("table.team tr[data-state=disabled]", "leaver")
        .await;
    leaver.goto(&format!("{base}/inbox")).await;
    leaver.wait_for_path("/login").await;
    leaver.expect_console_error("401");

    // What she did, and who let her go.
    admin
        .click("table.team tr[data-state=disabled] a[href^='/audit']")
        .await;
    admin.wait_for_text("table.audit", "login").await;
    admin.goto(&format!("{base}/audit")).await;
    admin.wait_for_text("table.audit", "user.disable").await;
    leaver.close().await;
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_shows_its_reason_in_the_chat() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    // WhatsApp refuses every send as undeliverable (131026).
    stack.sandbox.set_knobs(SandboxKnobs {
        error_rates: [("131026".to_string(), 1.0)].into_iter().collect(),
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    let browser = Browser::start(1000, 800).await;
    register(&browser, &stack.app.url(""), "front-desk").await;
    // A new chat, started from the inbox.
    browser.click("details.new-chat summary").await;
    browser.fill("#new-phone", "+1 415 555 0199").await;
    browser.fill("#new-name", "Unreachable").await;
    browser.click("details.new-chat button[type=submit]").await;
    browser.wait_for_path("/chat/14155550199").await;
    // Nobody wrote in: the window is closed, free text is not offered, a template is.
    browser.find("#window[data-window=closed]").await;
    browser.find("details.template[open]").await;
    browser
        .wait_for_text("#reply-form .window-block", "more than 24 hours ago")
        .await;
    assert_eq!(
        browser
            .run("return document.querySelector('#reply-form textarea[name=message]') === null")
            .await,
        json!(true),
        "no free text box outside the window"
    );
    browser.fill("#template-name", "results_ready").await;
    browser.click("#reply-form button[type=submit]").await;
    // The history records the template, and its failure in plain words.
    browser
        .wait_for_text(
            "li.msg.out[data-type=template] .template-label",
            "results_ready",
        )
        .await;
    let failed = browser
        .wait_for_text(
            "li.msg.out[data-status=failed] .reason",
            "cannot receive WhatsApp messages",
        )
        .await;
    assert!(!failed.contains("131026"), "{failed}");
    browser
        .find("li.msg.out[data-status=failed] [data-action=use-template]")
        .await;
    browser.close().await;
}

/// Dashboard event streams open on the stack's gateway now.
fn open_streams(stack: &Stack) -> usize {
    stack
        .app
        .state
        .live_streams
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// How long `requests` same-origin fetches, started together, take at most (ms), as the page
/// measures them.
async fn slowest_fetch(browser: &Browser, paths: &[&str]) -> f64 {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         Promise.all({paths:?}.map(async (p) => {{
             const t = performance.now();
             const r = await fetch(p, {{credentials: 'same-origin'}});
             await r.text();
             return performance.now() - t;
         }})).then((times) => done(Math.max(...times)), (e) => done(-1));"
    );
    browser
        .client
        .execute_async(&script, vec![])
        .await
        .expect("fetches")
        .as_f64()
        .expect("a duration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_page_switches_keep_one_event_stream_and_every_fetch_answers_at_once() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let browser = Browser::start(1280, 900).await;
    register(&browser, &stack.app.url(""), "reception").await;
    stack
        .patient_writes("14155550111", "Leela", "Can I change my appointment?")
        .await;
    browser
        .wait_for_text("li.conv[data-phone='14155550111']", "change my appointment")
        .await;

    // Inbox -> chat -> inbox ... as a receptionist goes: by links, by the back button (which
    // brings pages back from the back/forward cache), and by the navigation bar.
    for i in 0..20 {
        match i % 4 {
            0 | 2 => {
                browser
                    .click("li.conv[data-phone='14155550111'] a.open")
                    .await;
                browser.wait_for_path("/chat/14155550111").await;
            }
            1 => {
                browser.client.back().await.expect("back");
                browser.wait_for_path("/inbox").await;
            }
            _ => {
                browser.click("nav a[href='/inbox']").await;
                browser.wait_for_path("/inbox").await;
            }
        }
        browser.find("body[data-live=connected]").await;
    }
    // The pages left behind closed their streams: one is open, the current page's.
    let streams = heydoc_e2e::stack::eventually(
        std::time::Duration::from_secs(10),
        "one open event stream",
        || async {
            let n = open_streams(&stack);
            (n <= 1).then_some(n)
        },
    )
    .await;
    assert_eq!(streams, 1, "the page on screen has its stream");
    // Eight requests at once, more than the browser's six connections per site: all answer.
    let slowest = slowest_fetch(
        &browser,
        &[
            "/api/contacts?limit=1",
            "/api/tags",
            "/api/scheduled-messages",
            "/inbox",
            "/api/contacts?limit=2",
            "/api/tags",
            "/campaigns",
            "/api/messages/14155550111",
        ],
    )
    .await;
    assert!(
        (0.0..2000.0).contains(&slowest),
        "the slowest of eight fetches took {slowest} ms"
    );

    // A second tab shares the first tab's stream and still sees messages live.
    let first = browser.client.window().await.expect("window");
    let second = browser.client.new_window(true).await.expect("new tab");
    browser
        .client
        .switch_to_window(second.handle)
        .await
        .expect("switch");
    browser.goto(&stack.app.url("/inbox")).await;
    browser.find("body[data-live=connected]").await;
    stack
        .patient_writes("14155550112", "Farid", "Is parking available?")
        .await;
    browser
        .wait_for_text("li.conv[data-phone='14155550112']", "parking")
        .await;
    assert_eq!(open_streams(&stack), 1, "two tabs, one stream");
    // The leading tab closes: the other one takes the lead and opens the stream.
    browser
        .client
        .switch_to_window(first)
        .await
        .expect("switch back");
    browser
        .client
        .close_window()
        .await
        .expect("close the first tab");
    let remaining = browser.client.windows().await.expect("windows");
    browser
        .client
        .switch_to_window(remaining[0].clone())
        .await
        .expect("switch");
    stack
        .patient_writes("14155550113", "Gita", "Thank you doctor")
        .await;
    browser
        .wait_for_text("li.conv[data-phone='14155550113']", "Thank you doctor")
        .await;
    assert_eq!(open_streams(&stack), 1);
    browser.close().await;
}

/// Counts the page's own refreshes (its re-reads of the page it shows).
async fn count_refreshes(browser: &Browser) {
    browser
        .run(
            "window.heydocRefreshes = 0;
             const original = window.fetch;
             window.fetch = (url, init) => {
                 if (String(url) === location.href) window.heydocRefreshes += 1;
                 return original(url, init);
             };",
        )
        .await;
}

async fn refreshes(browser: &Browser) -> i64 {
    browser
        .run("return window.heydocRefreshes")
        .await
        .as_i64()
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_events_with_the_tag_editor_open_cost_at_most_a_few_refreshes_on_a_phone() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let admin = stack.app.admin().await;
    admin.post("/api/tags", &json!({"name": "Antenatal"})).await;
    let browser = Browser::start(390, 844).await;
    log_in(
        &browser,
        &stack.app.url(""),
        "admin",
        "correct-horse-battery",
    )
    .await;
    stack.patient_writes("14155550121", "Rina", "Hello").await;
    browser.goto(&stack.app.url("/inbox")).await;
    browser.find("body[data-live=connected]").await;
    browser
        .wait_for_text("li.conv[data-phone='14155550121']", "Hello")
        .await;
    count_refreshes(&browser).await;

    // The tag editor open: ten events change nothing on screen and start no refresh loop.
    browser.click("details.new-chat summary").await;
    for i in 0..10 {
        stack
            .patient_writes(
                &format!("1415555013{i}"),
                "Patient",
                &format!("message {i}"),
            )
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let while_open = refreshes(&browser).await;
    assert!(
        while_open <= 2,
        "{while_open} refreshes with the editor open"
    );
    browser.find("details.new-chat[open]").await;

    // Closed (the keyboard stays on its toggle): the inbox catches up once, then stays quiet.
    browser.click("details.new-chat summary").await;
    browser
        .wait_for_text("li.conv[data-phone='14155550139']", "message 9")
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let caught_up = refreshes(&browser).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        refreshes(&browser).await,
        caught_up,
        "no refresh without an event"
    );
    assert!(caught_up - while_open <= 3, "{caught_up} after closing");

    // Focus on the toggle and more events: each burst costs a bounded number of refreshes.
    for i in 0..10 {
        stack
            .patient_writes("14155550121", "Rina", &format!("again {i}"))
            .await;
    }
    browser
        .wait_for_text("li.conv[data-phone='14155550121']", "again 9")
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after_burst = refreshes(&browser).await;
    assert!(
        after_burst - caught_up <= 10,
        "{} refreshes for ten events",
        after_burst - caught_up
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        refreshes(&browser).await,
        after_burst,
        "the refreshes stopped"
    );
    browser.close().await;
}

/// A clinic manager picks an approved template from the catalog, fills one field per
/// parameter while the preview shows what patients will read, sees the audience and what it
/// will cost before scheduling, and afterwards what Meta charged for the run; a receptionist
/// sees a patient's photo in the chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_picks_an_approved_template_and_sees_the_cost_before_starting() {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    stack.start_scheduler().await;
    stack.sandbox.set_knobs(SandboxKnobs {
        enforce_templates: true,
        status_delay_ms: 20,
        ..SandboxKnobs::default()
    });
    let admin = stack.app.admin().await;
    let (status, synced) = admin.post("/api/templates/sync", &json!({})).await;
    assert_eq!(status, 200, "{synced}");
    let (_, tag) = admin
        .post("/api/tags", &json!({"name": "Check-up offer"}))
        .await;
    let tag_id = tag["data"]["id"].as_i64().expect("tag id");
    for (phone, name) in [
        ("919800000031", "Anita"),
        ("919800000032", "Vikram"),
        ("919800000033", "Meera"),
    ] {
        let (status, body) = admin
            .post(
                "/api/contacts",
                &json!({"phone": phone, "name": name, "tag_ids": [tag_id]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let browser = Browser::start(1200, 1000).await;
    log_in(
        &browser,
        &stack.app.url(""),
        "admin",
        "correct-horse-battery",
    )
    .await;
    browser.goto(&stack.app.url("/campaigns/new")).await;
    browser.click("details[data-template-picker] summary").await;
    browser
        .set_value("#template-pick", "health_checkup_offer|en_US")
        .await;
    // One field per parameter: the header's and the body's two.
    browser.fill("#template-header-1", "Monsoon check-up").await;
    browser.fill("#template-body-1", "{{name}}").await;
    browser.fill("#template-body-2", "20%").await;
    browser
        .wait_for_text(
            "[data-template-text]",
            "Hi {{name}}, book a health check-up this month and get 20% off.",
        )
        .await;
    browser
        .click(&format!("input[name='tag_ids[]'][value='{tag_id}']"))
        .await;
    // The audience and the cost before saving: three patients in India, a marketing template.
    let estimate = browser
        .wait_for_text("#estimate-text", "Reaches 3 people")
        .await;
    assert!(
        estimate.contains("marketing template: about 0.03 USD"),
        "{estimate}"
    );
    // This minute (the API takes a first run up to a minute late), so it fires at once; late
    // in a minute, the next one.
    if Utc::now().second() > 40 {
        let left = 61 - u64::from(Utc::now().second());
        tokio::time::sleep(std::time::Duration::from_secs(left)).await;
    }
    let soon = Utc::now();
    browser.set_value("#timezone", "UTC").await;
    browser
        .set_value(
            "#scheduled_time",
            &soon.format("%Y-%m-%dT%H:%M").to_string(),
        )
        .await;
    browser.screenshot("campaign-template").await;
    browser.click("#campaign-form button[type=submit]").await;
    browser.find("#campaign").await;
    let (_, listed) = admin.get("/api/scheduled-messages").await;
    let template = &listed[0]["template"];
    assert_eq!(template["name"], "health_checkup_offer", "{listed}");
    assert_eq!(template["components"][0]["type"], "header", "{listed}");
    assert_eq!(
        template["components"][1]["parameters"][1]["text"], "20%",
        "{listed}"
    );

    // The run goes out and the page shows what Meta charges for it.
    browser
        .wait_for_text("li.occurrence p.cost", "3 marketing")
        .await;
    let params = stack.sandbox.stats().template_params;
    assert_eq!(
        params["919800000031"],
        vec!["Monsoon check-up", "Anita", "20%"]
    );

    // A patient's photo shows in the chat.
    let photo = base64::engine::general_purpose::STANDARD.encode(include_bytes!(
        "../../services/gateway/src/ui/assets/icon.svg"
    ));
    let res = reqwest::Client::new()
        .post(format!("{}/sandbox/inbound", stack.sandbox_url))
        .json(&json!({"from": "919800000031", "name": "Anita", "text": "my prescription",
                      "media": {"kind": "image", "mime_type": "image/svg+xml", "data_base64": photo}}))
        .send()
        .await
        .expect("inbound photo");
    assert!(res.status().is_success());
    browser.goto(&stack.app.url("/chat/919800000031")).await;
    browser.find("li.msg.in a.media img").await;
    let mut loaded = serde_json::Value::Null;
    for _ in 0..50 {
        loaded = browser
            .run("const i = document.querySelector('li.msg.in a.media img'); return !!i && i.complete && i.naturalWidth > 0;")
            .await;
        if loaded == serde_json::Value::Bool(true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        loaded,
        serde_json::Value::Bool(true),
        "the photo did not load in the chat"
    );

    // The receptionist answers with a file: uploaded to WhatsApp, then sent by its id.
    let scan = std::env::temp_dir().join(format!("heydoc-scan-{}.png", std::process::id()));
    std::fs::write(&scan, b"\x89PNG\r\n\x1a\n a scanned leaflet").expect("write the file");
    browser.fill("#message", "Your diet chart").await;
    browser
        .find("#attach")
        .await
        .send_keys(&scan.display().to_string())
        .await
        .expect("choose the file");
    browser.click("#reply-form button[type=submit]").await;
    browser.wait_for_text("li.msg.out", "image attached").await;
    let sent = stack.sandbox.stats();
    assert_eq!(sent.uploads, 1, "the file went to WhatsApp once");
    let _ = std::fs::remove_file(&scan);
    browser.close().await;
}
