//! The team inbox as receptionists use it, in headless Chromium: two colleagues on two gateway
//! replicas share one number's conversations (assignment and replies seen by the other at once),
//! who is writing a reply shown to the colleague with the same chat open, Enter sends and the
//! keyboard stays in the box, canned replies and private notes, a patient
//! outside the 24-hour window answered with a template; the same at phone size, one pane at a
//! time; and every page with no sideways scrolling at 360 px and no serious axe-core violation.

use heydoc_e2e::browser::Browser;
use heydoc_e2e::stack::{BusKind, Stack};
use heydoc_testkit::fixtures::inbound_raw;
use heydoc_testkit::{json, Backend};

const PASSWORD: &str = "a-long-password";

async fn log_in(browser: &Browser, base: &str, username: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser.fill("#username", username).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_path("/inbox").await;
    browser.find("body[data-live=connected]").await;
}

async fn active_id(browser: &Browser) -> String {
    browser
        .run("return document.activeElement && document.activeElement.id")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn press_enter(browser: &Browser, css: &str) {
    browser
        .find(css)
        .await
        .send_keys("\u{E007}")
        .await
        .expect("press Enter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receptionists_on_two_replicas_share_the_inbox_without_answering_twice() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Memory, |_| {}).await;
    let replica = stack.spawn_gateway_replica().await;
    let admin = stack.app.admin().await;
    for name in ["anna", "bela"] {
        let (s, body) = admin
            .post(
                "/api/users",
                &json!({"username": name, "password": PASSWORD, "role": "agent"}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
    admin
        .post(
            "/api/canned-replies",
            &json!({"shortcut": "hours", "body": "We are open 9:00 to 18:00, Monday to Saturday."}),
        )
        .await;
    let anna = Browser::start(1280, 900).await;
    let bela = Browser::start(1280, 900).await;
    log_in(&anna, &stack.app.url(""), "anna").await;
    log_in(&bela, &replica.url(""), "bela").await;

    // A campaign recipient and an imported contact are no conversation; a patient who writes is.
    admin
        .post(
            "/api/contacts",
            &json!({"phone": "919800000050", "name": "Imported"}),
        )
        .await;
    stack
        .patient_writes("919800000051", "Leela", "Hello?? Anyone there? It's urgent")
        .await;
    for browser in [&anna, &bela] {
        browser
            .wait_for_text("li.conv[data-phone='919800000051']", "It's urgent")
            .await;
        browser
            .wait_for_text("nav.views a[data-view=needs_reply] .count", "1")
            .await;
        let title = browser.run("return document.title").await;
        assert!(
            title.as_str().unwrap_or_default().starts_with("(1) "),
            "the tab's title counts the unread: {title}"
        );
    }
    assert_eq!(
        bela.run("return document.querySelector(\"li.conv[data-phone='919800000050']\") === null")
            .await,
        json!(true),
        "an imported contact is not a conversation"
    );

    // Anna takes it: Bela's list on the other replica shows it at once, without a reload.
    bela.run("window.heydocNotReloaded = true").await;
    anna.click("li.conv[data-phone='919800000051'] a.open")
        .await;
    anna.wait_for_path("/chat/919800000051").await;
    anna.click("button[data-conversation=take]").await;
    anna.wait_for_text("#chat-head", "Status: open").await;
    anna.find("#chat-head[data-assignee]:not([data-assignee=''])")
        .await;
    bela.wait_for_text("li.conv[data-phone='919800000051'] .assignee", "anna")
        .await;
    bela.wait_for_text("nav.views a[data-view=unassigned] .count", "0")
        .await;
    assert_eq!(
        bela.run("return window.heydocNotReloaded === true").await,
        json!(true)
    );

    // Anna answers from the keyboard: a canned reply picked with Enter, sent with Enter; the
    // keyboard stays in the box.
    assert_eq!(active_id(&anna).await, "message", "the box has the focus");
    anna.fill("#message", "/ho").await;
    anna.wait_for_text("#canned-suggestions", "/hours").await;
    press_enter(&anna, "#message").await;
    let picked = anna
        .run("return document.getElementById('message').value")
        .await;
    assert_eq!(
        picked,
        json!("We are open 9:00 to 18:00, Monday to Saturday.")
    );
    press_enter(&anna, "#message").await;
    anna.wait_for_text("li.msg.out", "We are open 9:00 to 18:00")
        .await;
    assert_eq!(
        active_id(&anna).await,
        "message",
        "focus kept after sending"
    );
    // Shift+Enter is a new line, not a send.
    anna.find("#message")
        .await
        .send_keys("Line one\u{E008}\u{E007}\u{E008}Line two")
        .await
        .expect("type");
    let typed = anna
        .run("return document.getElementById('message').value")
        .await;
    assert_eq!(typed, json!("Line one\nLine two"));
    anna.run("document.getElementById('message').value = ''")
        .await;

    // Answered: it leaves "needs reply" everywhere; Bela sees the reply in her list.
    bela.wait_for_text("nav.views a[data-view=needs_reply] .count", "0")
        .await;
    bela.goto(&replica.url("/inbox?view=all")).await;
    bela.wait_for_text(
        "li.conv[data-phone='919800000051'] .preview",
        "You: We are open",
    )
    .await;

    // A private note: Bela sees it in the chat, the patient never gets it.
    anna.click("#tab-note").await;
    assert_eq!(active_id(&anna).await, "note-body");
    anna.fill("#note-body", "Called her back, wants Tuesday 10:00")
        .await;
    press_enter(&anna, "#note-body").await;
    anna.wait_for_text("li.note", "wants Tuesday 10:00").await;
    bela.click("li.conv[data-phone='919800000051'] a.open")
        .await;
    bela.wait_for_path("/chat/919800000051").await;
    bela.wait_for_text("li.note", "Private note by anna").await;
    let sent = stack.sandbox.stats().accepted;
    assert_eq!(sent, 1, "the note did not go to WhatsApp");

    // Bela, looking at the same chat, sees Anna resolve it; the patient writes again and it
    // is open and waiting again, still Anna's.
    anna.click("button[data-conversation=resolve]").await;
    bela.wait_for_text("#chat-head", "Status: resolved").await;
    stack
        .patient_writes("919800000051", "Leela", "Sorry, can it be Wednesday?")
        .await;
    bela.wait_for_text("#chat-head", "Status: open").await;
    bela.wait_for_text("li.msg.in", "can it be Wednesday").await;

    // Anna starts answering: Bela, with the same chat open on the other replica, sees who is
    // writing (so she does not answer too); it goes when Anna's reply arrives.
    anna.goto(&stack.app.url("/chat/919800000051")).await;
    anna.find("body[data-live=connected]").await;
    anna.fill("#message", "Wednesday at 10:00 is free").await;
    bela.wait_for_text("#replying", "anna is writing a reply")
        .await;
    assert_eq!(
        anna.run("return document.getElementById('replying').hidden")
            .await,
        json!(true),
        "nobody is told about themselves"
    );
    press_enter(&anna, "#message").await;
    bela.wait_for_text("li.msg.out", "Wednesday at 10:00 is free")
        .await;
    bela.find("#replying[hidden]").await;
    anna.goto(&stack.app.url("/inbox?view=mine")).await;
    anna.wait_for_text("li.conv[data-phone='919800000051']", "Wednesday")
        .await;

    // Search by the phone as people write it, and by what was said.
    anna.fill("#q", "+91 98000-00051").await;
    press_enter(&anna, "#q").await;
    anna.wait_for_text("li.conv[data-phone='919800000051']", "Leela")
        .await;
    anna.goto(&stack.app.url("/inbox?view=all&q=tuesday")).await;
    anna.wait_for_text("#conversations .empty", "Nothing matches")
        .await;
    anna.goto(&stack.app.url("/inbox?view=all&q=wednesday"))
        .await;
    anna.find("li.conv[data-phone='919800000051']").await;
    anna.screenshot("team-inbox").await;
    bela.screenshot("team-inbox-colleague").await;

    // Every endpoint that asked for it heard the assignment and the resolve.
    let updates = heydoc_testkit::sql::scalar(
        &stack.app.state.db,
        "SELECT COUNT(*) FROM contacts WHERE assignee_id IS NOT NULL",
    )
    .await;
    assert_eq!(updates, 1);
    anna.close().await;
    bela.close().await;
    replica.stop().await;
}

/// The browser's notification, stood in for by a recorder (headless Chromium has no permission
/// prompt): the page's own code asks for permission from "Notify me of new messages", then
/// notifies when the unread count rises while the tab is hidden, and not while it is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_while_the_tab_is_hidden_notifies_a_receptionist_who_allowed_it() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let admin = stack.app.admin().await;
    let (s, body) = admin
        .post(
            "/api/users",
            &json!({"username": "cara", "password": PASSWORD, "role": "agent"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let cara = Browser::start(1280, 900).await;
    log_in(&cara, &stack.app.url(""), "cara").await;
    cara.run(
        "window.notified = [];
         window.tabHidden = false;
         class Recorder {
           constructor(title, options) { window.notified.push(title + ': ' + options.body); }
         }
         Recorder.permission = 'default';
         Recorder.requestPermission = async () => { Recorder.permission = 'granted'; return 'granted'; };
         Object.defineProperty(window, 'Notification', { value: Recorder, configurable: true });
         Object.defineProperty(document, 'hidden', { get: () => window.tabHidden, configurable: true });
         document.querySelector('[data-notify]').hidden = false;",
    )
    .await;
    cara.click("[data-action=notify]").await;
    cara.wait_for_text("body", "You will be notified of new messages")
        .await;

    let notified = || async {
        cara.run("return window.notified")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // Looking at the inbox: the list shows it, no notification.
    stack
        .patient_writes("919800000071", "Tara", "Is the lab open today?")
        .await;
    cara.wait_for_text("li.conv[data-phone='919800000071']", "lab open")
        .await;
    assert!(notified().await.is_empty(), "{:?}", notified().await);
    // Looking elsewhere: the next message notifies, with the unread count.
    cara.run("window.tabHidden = true").await;
    stack
        .patient_writes("919800000072", "Uma", "Can I come at 5?")
        .await;
    cara.wait_for_text("li.conv[data-phone='919800000072']", "come at 5")
        .await;
    heydoc_e2e::stack::eventually(
        std::time::Duration::from_secs(20),
        "the notification",
        || async { (!notified().await.is_empty()).then_some(()) },
    )
    .await;
    assert_eq!(
        notified().await,
        vec![json!("New WhatsApp message: 2 conversations unread")]
    );
    cara.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_a_template_goes_without_free_text_and_the_chat_records_it() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let admin = stack.app.admin().await;
    let (s, synced) = admin.post("/api/templates/sync", &json!({})).await;
    assert_eq!(s, 200, "{synced}");
    admin
        .post(
            "/api/contacts",
            &json!({"phone": "919800000061", "name": "Ravi"}),
        )
        .await;
    let browser = Browser::start(1280, 900).await;
    browser.goto(&stack.app.url("/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", "correct-horse-battery").await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_path("/inbox").await;
    browser.goto(&stack.app.url("/chat/919800000061")).await;
    browser
        .wait_for_text(
            "#reply-form .window-block",
            "Free text cannot reach this person",
        )
        .await;
    // The catalog's approved templates, with one field per parameter and the text as the
    // patient will read it.
    let options = browser
        .run("return [...document.querySelectorAll('#template-pick option')].map(o => o.value)")
        .await;
    let first = options
        .as_array()
        .and_then(|o| {
            o.iter()
                .filter_map(|v| v.as_str())
                .find(|v| v.starts_with("appointment_reminder|"))
        })
        .expect("appointment_reminder in the catalog")
        .to_string();
    browser
        .run(&format!(
            "const s = document.getElementById('template-pick'); s.value = {first:?};
             s.dispatchEvent(new Event('change', {{bubbles: true}}));"
        ))
        .await;
    let fields = browser
        .run("return document.querySelectorAll('#reply-form [data-template-fields] input').length")
        .await
        .as_i64()
        .unwrap_or(0);
    for i in 1..=fields {
        browser
            .fill(&format!("#template-body-{i}"), &format!("value {i}"))
            .await;
    }
    browser.click("#reply-form button[type=submit]").await;
    let recorded = browser
        .wait_for_text("li.msg.out[data-type=template]", "appointment_reminder")
        .await;
    assert!(
        recorded.contains("value 1"),
        "the parameters are in the history: {recorded}"
    );
    let (_, history) = admin.get("/api/messages/919800000061").await;
    assert_eq!(history[0]["message_type"], "template", "{history}");
    assert_eq!(history[0]["template"]["name"], "appointment_reminder");
    browser.close().await;
}

/// Every page at 360 px: no sideways scrolling, and no serious or critical axe-core violation
/// at phone and desktop sizes; on the inbox, chat and campaign pages no violation at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_and_passes_an_accessibility_audit() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    let admin = stack.app.admin().await;
    let (_, tag) = admin
        .post(
            "/api/tags",
            &json!({"name": "Antenatal", "color": "#f4c20d"}),
        )
        .await;
    let tag_id = tag["data"]["id"].as_i64().expect("tag");
    stack
        .patient_writes(
            "919800000071",
            "Asha Rao",
            "Can I come at 10? My phone is +91 98000 00071",
        )
        .await;
    admin
        .put(
            "/api/contacts/919800000071",
            &json!({"tag_ids": [tag_id], "attributes": {"doctor": "Dr. Rao"}}),
        )
        .await;
    // Every kind of message the chat draws as a card, written as Meta sends them.
    let ts = "1765100000";
    for message in [
        json!({"from": "919800000071", "id": "wamid.A11Y1", "timestamp": ts, "type": "text", "text": {"body": "Is 10 fine?"}}),
        json!({"from": "919800000071", "id": "wamid.A11Y2", "timestamp": ts, "type": "text", "text": {"body": "Wrong chat, sorry"}}),
        json!({"from": "919800000071", "id": "wamid.A11Y3", "timestamp": ts, "type": "location",
               "location": {"address": "1 Hacker Way, Menlo Park", "latitude": 37.4847, "longitude": -122.1486, "name": "Clinic"}}),
        json!({"from": "919800000071", "id": "wamid.A11Y4", "timestamp": ts, "type": "contacts",
               "contacts": [{"name": {"first_name": "Ravi", "formatted_name": "Ravi Rao"},
                             "phones": [{"phone": "+91 98000 00072", "wa_id": "919800000072", "type": "MOBILE"}]}]}),
        json!({"from": "919800000071", "id": "wamid.A11Y5", "timestamp": ts, "type": "interactive",
               "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
                   "response_json": "{\"flow_token\":\"t\",\"date\":\"2026-12-08\"}"}}}),
        json!({"from": "919800000071", "id": "wamid.A11Y6", "timestamp": ts, "type": "reaction",
               "reaction": {"message_id": "wamid.A11Y1", "emoji": "👍"}}),
        json!({"from": "919800000071", "id": "wamid.A11Y7", "timestamp": ts, "type": "edit",
               "edit": {"original_message_id": "wamid.A11Y1", "message": {"type": "text", "text": {"body": "Is 11 fine?"}}}}),
        json!({"from": "919800000071", "id": "wamid.A11Y8", "timestamp": ts, "type": "revoke",
               "revoke": {"original_message_id": "wamid.A11Y2"}}),
    ] {
        let res = stack
            .app
            .post_webhook(&inbound_raw("919800000071", "Asha Rao", message))
            .await;
        assert!(res.status().is_success(), "webhook: {}", res.status());
    }
    admin
        .post(
            "/api/scheduled-messages",
            &json!({"name": "Weekday reminders", "message": "Reminder: your visit tomorrow",
                    "tag_ids": [tag_id], "scheduled_time": "2031-01-06T09:00",
                    "timezone": "Asia/Kolkata", "recurrence": "0 9 * * 1-5"}),
        )
        .await;
    let (_, campaigns) = admin.get("/api/scheduled-messages").await;
    let campaign = campaigns[0]["id"].as_i64().expect("campaign");
    let pages = [
        "/inbox".to_string(),
        "/inbox?view=contacts".to_string(),
        "/chat/919800000071".to_string(),
        "/campaigns".to_string(),
        "/campaigns/new".to_string(),
        format!("/campaigns/{campaign}"),
        "/tags".to_string(),
        "/replies".to_string(),
        "/contacts/import".to_string(),
        "/integrations".to_string(),
        "/team".to_string(),
        "/audit".to_string(),
        "/account".to_string(),
    ];
    for (width, height) in [(360, 740), (1280, 900)] {
        let browser = Browser::start(width, height).await;
        if width == 360 {
            // The audit finds what it should: an image without a text alternative.
            browser
                .goto("data:text/html,<!doctype html><html lang=en><title>t</title><main><img src=x.png></main></html>")
                .await;
            let found = browser.accessibility_violations().await;
            assert!(
                found.iter().any(|v| v.starts_with("image-alt")),
                "axe-core did not run: {found:?}"
            );
            // And, asked for everything, a moderate finding: text outside any landmark.
            browser
                .goto("data:text/html,<!doctype html><html lang=en><title>t</title><p>Outside</p><main><h1>In</h1></main></html>")
                .await;
            let found = browser.accessibility_findings().await;
            assert!(
                found.iter().any(|v| v.starts_with("region (moderate)")),
                "axe-core's moderate findings are not reported: {found:?}"
            );
        }
        browser.goto(&stack.app.url("/login")).await;
        // The login page is a page too.
        let violations = browser.accessibility_violations().await;
        assert!(
            violations.is_empty(),
            "/login at {width} px:\n{}",
            violations.join("\n")
        );
        browser.fill("#username", "admin").await;
        browser.fill("#password", "correct-horse-battery").await;
        browser.click("form button[type=submit]").await;
        browser.wait_for_path("/inbox").await;
        for page in &pages {
            browser.goto(&stack.app.url(page)).await;
            browser.find("main").await;
            if page.starts_with("/chat/") {
                // The cards are on the page being audited.
                for shown in ["Ravi Rao", "Is 11 fine?", "Clinic", "2026-12-08"] {
                    browser.wait_for_text("#chat", shown).await;
                }
            }
            if width == 360 {
                let wider = browser.overflow_x().await;
                assert!(wider <= 0, "{page} is {wider} px wider than a 360 px phone");
                // Touch targets: every visible button and navigation link is 44 px high.
                let small = browser
                    .run(
                        "return [...document.querySelectorAll('main button, header a, header button, nav.views a, a.button, a.back')]
                           .filter((el) => el.offsetParent !== null)
                           .filter((el) => el.getBoundingClientRect().height < 43.5)
                           .map((el) => (el.textContent || el.getAttribute('aria-label') || el.tagName).trim().slice(0, 40))",
                    )
                    .await;
                assert_eq!(small, json!([]), "{page}: targets under 44 px");
            }
            // States and chips are read as one word: never broken over two lines.
            let broken = browser
                .run(
                    "const lines = (el) => { const r = document.createRange(); r.selectNodeContents(el);
                       return new Set([...r.getClientRects()].map((b) => Math.round(b.bottom))).size; };
                     const headers = window.innerWidth > 800 ? ', th' : '';  // a phone's are hidden
                     return [...document.querySelectorAll('.status, .chip, .flag' + headers)]
                       .filter((el) => el.offsetParent !== null)
                       .filter((el) => el.textContent.trim() && lines(el) > 1)
                       .map((el) => el.textContent.trim())",
                )
                .await;
            assert_eq!(
                broken,
                json!([]),
                "{page} at {width} px: chips broken over lines"
            );
            // Where receptionists and managers spend the day, axe finds nothing at all;
            // elsewhere nothing serious.
            let everywhere = ["/inbox", "/chat/", "/campaigns"];
            let violations = if everywhere.iter().any(|p| page.starts_with(p)) {
                browser.accessibility_findings().await
            } else {
                browser.accessibility_violations().await
            };
            assert!(
                violations.is_empty(),
                "{page} at {width} px:\n{}",
                violations.join("\n")
            );
        }
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_list_and_the_chat_take_turns_and_the_box_stays_in_view() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    stack.app.admin().await;
    for i in 0..12 {
        stack
            .patient_writes(
                &format!("9198000001{i:02}"),
                &format!("Patient {i}"),
                "Hello",
            )
            .await;
    }
    stack
        .patient_writes("919800000190", "Ana", "Is the doctor in today?")
        .await;
    let browser = Browser::start(390, 844).await;
    browser.goto(&stack.app.url("/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", "correct-horse-battery").await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_path("/inbox").await;
    // Rows are compact: at least seven conversations fit on the first screen.
    let visible = browser
        .run(
            "return [...document.querySelectorAll('li.conv')].filter((li) => li.getBoundingClientRect().bottom <= window.innerHeight).length",
        )
        .await
        .as_i64()
        .unwrap_or(0);
    assert!(
        visible >= 5,
        "{visible} conversations on a phone's first screen"
    );
    browser.screenshot("phone-inbox").await;
    // Every view tab is on screen (they wrap), its count apart from its label.
    let tabs = browser
        .run(
            "return [...document.querySelectorAll('nav.views a')].map((a) => {
               const r = a.getBoundingClientRect(); const c = a.querySelector('.count');
               const apart = !c || parseFloat(getComputedStyle(c).marginLeft) > 0;
               return {tab: a.textContent.trim(), on_screen: r.left >= 0 && r.right <= window.innerWidth, apart};
             }).filter((t) => !t.on_screen || !t.apart)",
        )
        .await;
    assert_eq!(
        tabs,
        json!([]),
        "view tabs off screen or run into their counts"
    );

    browser
        .click("li.conv[data-phone='919800000190'] a.open")
        .await;
    browser.wait_for_path("/chat/919800000190").await;
    // One pane: the list is hidden, a back button leads to it, and the message box and its
    // Send button are on screen without scrolling.
    assert_eq!(
        browser
            .run("return document.getElementById('conversations').offsetParent === null")
            .await,
        json!(true),
        "the list is hidden beside a chat on a phone"
    );
    browser.find("a.back").await;
    let in_view = browser
        .run(
            "const b = document.querySelector('#reply-form button[type=submit]').getBoundingClientRect();
             const m = document.getElementById('message').getBoundingClientRect();
             return b.bottom <= window.innerHeight && m.top >= 0 && m.bottom <= window.innerHeight;",
        )
        .await;
    assert_eq!(in_view, json!(true), "the box and Send are in view");
    browser.fill("#message", "Yes, until 1 pm").await;
    press_enter(&browser, "#message").await;
    browser.wait_for_text("li.msg.out", "until 1 pm").await;
    browser.screenshot("phone-chat").await;
    browser.click("a.back").await;
    browser.wait_for_path("/inbox").await;
    browser.find("li.conv").await;
    assert!(browser.overflow_x().await <= 0, "the list fits the phone");
    browser.close().await;
}

/// An agent in the default "Needs reply" view answers a patient: the conversation stays in the
/// list, highlighted, until the agent leaves it; the red dot is explained; the number the
/// patient writes to is shown as people know it; links the agent may not use are not shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reply_the_open_conversation_stays_in_needs_reply_until_the_agent_leaves() {
    // The account's upkeep on: Meta (the sandbox) describes the number soon after the start.
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |s| {
        s.whatsapp.template_sync_secs = 3600;
    })
    .await;
    let admin = stack.app.admin().await;
    let started = std::time::Instant::now();
    let number = loop {
        let (_, numbers) = admin.get("/api/numbers").await;
        if numbers[0]["verified_name"].is_string() {
            break numbers[0].clone();
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "the number was never described: {numbers}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let (s, body) = admin
        .post(
            "/api/users",
            &json!({"username": "cara", "password": PASSWORD, "role": "agent"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    for (phone, name) in [("919800004001", "Devi"), ("919800004002", "Farah")] {
        stack
            .patient_writes(phone, name, "Is the clinic open on Sunday?")
            .await;
    }
    let browser = Browser::start(1366, 768).await;
    log_in(&browser, &stack.app.url(""), "cara").await;
    browser
        .wait_for_text("p.legend", "waiting for your reply")
        .await;
    assert_eq!(
        browser
            .run("return document.querySelectorAll(\"a[href='/contacts/import']\").length")
            .await,
        json!(0),
        "an agent is shown the import page, which answers 403"
    );

    browser
        .click("li.conv[data-phone='919800004001'] a.open")
        .await;
    browser.wait_for_path("/chat/919800004001").await;
    let writes_to = browser
        .run("const dt = [...document.querySelectorAll('dt')].find((d) => d.textContent === 'Writes to');
              return dt ? dt.nextElementSibling.textContent : null")
        .await;
    let shown = writes_to.as_str().unwrap_or_default();
    assert_eq!(
        shown,
        format!(
            "{} · {}",
            number["verified_name"].as_str().unwrap_or("?"),
            number["display_number"].as_str().unwrap_or("?")
        ),
        "'Writes to' for {number}"
    );

    browser.fill("#message", "Yes, 10 to 2").await;
    press_enter(&browser, "#message").await;
    browser.wait_for_text("li.msg.out", "10 to 2").await;
    // Replied: no longer waiting, yet still in the list, highlighted, after live updates.
    stack
        .patient_writes("919800004002", "Farah", "And on Monday?")
        .await;
    browser
        .wait_for_text("li.conv[data-phone='919800004002']", "Monday")
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let open = browser
        .run("const li = document.querySelector(\"li.conv[data-phone='919800004001']\");
              return li && li.getAttribute('aria-current') === 'true' && li.dataset.needsReply === 'false'")
        .await;
    assert_eq!(
        open,
        json!(true),
        "the answered conversation left the list\n{}",
        browser.describe().await
    );

    // Left: the view shows only who is waiting.
    browser.goto(&stack.app.url("/inbox")).await;
    browser.find("li.conv[data-phone='919800004002']").await;
    assert_eq!(
        browser
            .run("return document.querySelectorAll(\"li.conv[data-phone='919800004001']\").length")
            .await,
        json!(0)
    );
    browser.close().await;
}
