//! The inbox while patients keep writing, in headless Chromium, clicked by hand (the mouse
//! glides to a row, rests, presses): every click on a conversation opens the one under the
//! pointer and every click on a view tab switches to it, with a patient message every 0.5 s
//! reordering the list meanwhile; a chat opens by loading its pane only, back and forward
//! included; and the composer's Send stays on screen in a long chat, on a laptop and on a
//! phone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use heydoc_e2e::browser::Browser;
use heydoc_e2e::stack::{BusKind, Stack};
use heydoc_testkit::{json, Backend};

async fn log_in_as_admin(browser: &Browser, stack: &Stack) {
    browser.goto(&stack.app.url("/login")).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", "correct-horse-battery").await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_path("/inbox").await;
    browser.find("body[data-live=connected]").await;
}

/// Patients writing every `every` until stopped: the twenty seeded ones in turn, and a new
/// patient every fifth message (a row the list does not have yet). Returns how many wrote.
fn patients_keep_writing(
    sandbox: String,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let from = if n % 5 == 4 {
                format!("9198100{:05}", n)
            } else {
                format!("91980000{:04}", 2000 + n % 20)
            };
            let res = http
                .post(format!("{sandbox}/sandbox/inbound"))
                .json(&json!({"from": from, "name": format!("Patient {from}"), "text": format!("message {n} about my appointment")}))
                .send()
                .await
                .expect("patient writes");
            assert!(res.status().is_success(), "inbound: {}", res.status());
            n += 1;
            tokio::time::sleep(every).await;
        }
        n
    })
}

/// Where in the window a visible target is: the centre of the `index`-th (modulo) element
/// matching `css` that is wholly on screen in the conversation pane.
async fn target_point(browser: &Browser, css: &str, index: usize) -> Option<(f64, f64)> {
    let found = browser
        .run(&format!(
            "const pane = document.getElementById('conversations').getBoundingClientRect();
             const top = Math.max(pane.top, 0), bottom = Math.min(pane.bottom, window.innerHeight);
             const seen = [...document.querySelectorAll({css:?})]
               .map((el) => el.getBoundingClientRect())
               .filter((r) => r.height > 0 && r.top >= top && r.bottom <= bottom);
             if (!seen.length) return null;
             const r = seen[{index} % seen.length];
             return [r.left + r.width / 2, r.top + r.height / 2];"
        ))
        .await;
    let pair = found.as_array()?;
    Some((pair[0].as_f64()?, pair[1].as_f64()?))
}

/// What is under the pointer at (x, y): a conversation's phone, or a view tab's key.
async fn under_pointer(browser: &Browser, x: f64, y: f64, what: &str) -> Option<String> {
    let script = match what {
        "row" => format!(
            "const el = document.elementFromPoint({x}, {y}); const li = el && el.closest('li.conv');
             return li ? li.dataset.phone : null;"
        ),
        _ => format!(
            "const el = document.elementFromPoint({x}, {y}); const a = el && el.closest('nav.views a');
             return a ? a.dataset.view : null;"
        ),
    };
    browser.run(&script).await.as_str().map(str::to_string)
}

/// Waits (up to 10 s) until the page shows `key`'s chat (`row`) or view (`view`).
async fn opened(browser: &Browser, key: &str, what: &str) -> Result<(), String> {
    let check = match what {
        "row" => format!(
            "const chat = document.getElementById('chat');
             const open = document.querySelector('li.conv[aria-current=true]');
             return location.pathname === '/chat/{key}' && Boolean(chat) && chat.dataset.phone === '{key}'
               && Boolean(open) && open.dataset.phone === '{key}';"
        ),
        _ => format!(
            "const tab = document.querySelector('nav.views a[aria-current=page]');
             return new URLSearchParams(location.search).get('view') === '{key}'
               && Boolean(tab) && tab.dataset.view === '{key}' && document.readyState === 'complete';"
        ),
    };
    let started = std::time::Instant::now();
    loop {
        if browser.run(&check).await == json!(true) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(10) {
            let now = browser
                .run("return location.pathname + location.search")
                .await;
            return Err(format!("aimed at {what} {key}, still at {now} after 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A hundred clicks by hand, three rows to every view tab, while a patient writes every 0.5 s
/// (each message reorders the list; every fifth is a new patient): each click opens what was
/// under the pointer when it pressed, and none does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clicks_while_patients_write_every_half_second_each_open_what_was_aimed_at() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    stack.app.admin().await;
    for i in 0..20 {
        stack
            .patient_writes(
                &format!("91980000{:04}", 2000 + i),
                &format!("Patient {i}"),
                "Hello",
            )
            .await;
    }
    let browser = Browser::start(1366, 768).await;
    log_in_as_admin(&browser, &stack).await;
    browser.find("li.conv").await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = patients_keep_writing(
        stack.sandbox_url.clone(),
        Duration::from_millis(500),
        stop.clone(),
    );
    let views = ["all", "needs_reply", "unassigned", "contacts"];
    let mut misses = Vec::new();
    let mut rows_opened = 0;
    let mut tabs_switched = 0;
    let mut reaimed = 0;
    let mut click = 0usize;
    while click < 100 {
        // Reading the chat: the pointer rests away from the list, which may reorder.
        browser
            .pointer_to(1000.0, 300.0, Duration::from_millis(80))
            .await;
        tokio::time::sleep(Duration::from_millis(250 + (click as u64 * 37) % 300)).await;
        let what = if click % 4 == 3 { "view" } else { "row" };
        let target = if what == "row" {
            target_point(&browser, "ul.conversations li.conv a.open", click * 7).await
        } else {
            let view = views[(click / 4) % views.len()];
            target_point(&browser, &format!("nav.views a[data-view='{view}']"), 0).await
        };
        let Some((x, y)) = target else {
            panic!("nothing to click on\n{}", browser.describe().await);
        };
        browser.pointer_to(x, y, Duration::from_millis(120)).await;
        // What the person sees under the pointer before pressing.
        let Some(aimed) = under_pointer(&browser, x, y, what).await else {
            // It moved off before the pointer arrived: the person aims again.
            reaimed += 1;
            assert!(reaimed < 20, "aimed again {reaimed} times");
            continue;
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        browser.press_here().await;
        match opened(&browser, &aimed, what).await {
            Ok(()) if what == "row" => rows_opened += 1,
            Ok(()) => tabs_switched += 1,
            Err(miss) => misses.push(format!("click {click}: {miss}")),
        }
        click += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");

    // Opening a chat loads its pane only (the page stays: a mark set in it survives), and the
    // browser's back and forward go from chat to chat the same way.
    browser.run("window.samePage = true; return true").await;
    let mut opened_chats = Vec::new();
    for index in [1, 4] {
        let (x, y) = target_point(
            &browser,
            "ul.conversations li.conv:not([aria-current]) a.open",
            index,
        )
        .await
        .expect("a row to open");
        browser.pointer_to(x, y, Duration::from_millis(120)).await;
        let phone = under_pointer(&browser, x, y, "row")
            .await
            .expect("a row under the pointer");
        browser.press_here().await;
        opened(&browser, &phone, "row")
            .await
            .expect("the chat opens");
        opened_chats.push(phone);
    }
    browser.client.back().await.expect("back");
    opened(&browser, &opened_chats[0], "row")
        .await
        .expect("back shows the chat before");
    browser.client.forward().await.expect("forward");
    opened(&browser, &opened_chats[1], "row")
        .await
        .expect("forward shows the chat after");
    assert_eq!(
        browser.run("return window.samePage === true").await,
        json!(true),
        "opening a chat, back and forward loaded the whole page"
    );
    eprintln!(
        "{rows_opened} rows opened, {tabs_switched} tabs switched, {reaimed} aimed again, \
         {written} patient messages meanwhile"
    );
    assert!(
        misses.is_empty(),
        "{} of 100 clicks went wrong:\n{}",
        misses.len(),
        misses.join("\n")
    );
    assert_eq!(rows_opened + tabs_switched, 100);
    // The list really moved meanwhile: a message every half second for the whole run.
    assert!(
        written >= 60,
        "only {written} patient messages while clicking"
    );
    browser.close().await;
}

/// A chat of fifty messages: the box and its Send button are on screen, the newest message is
/// shown above them, on a laptop and on a phone, and still after another message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_fifty_message_chat_send_stays_on_screen_on_a_laptop_and_a_phone() {
    let stack = Stack::spawn(Backend::Sqlite, BusKind::Memory, |_| {}).await;
    stack.app.admin().await;
    for i in 0..50 {
        let text = if i % 7 == 0 {
            format!("message {i}: a longer question about the appointment, the fasting before the blood test, and whether I should bring the earlier reports with me")
        } else {
            format!("message {i}")
        };
        stack.patient_writes("919800003000", "Meera", &text).await;
    }
    for (width, height) in [(1366, 768), (390, 844)] {
        let browser = Browser::start(width, height).await;
        log_in_as_admin(&browser, &stack).await;
        browser.goto(&stack.app.url("/chat/919800003000")).await;
        browser.wait_for_text("#chat li.msg", "message 49").await;
        let in_view = "const inside = (el) => { if (!el) return false; const r = el.getBoundingClientRect();
                         return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth; };
                       const msgs = document.querySelectorAll('#chat li.msg');
                       return {send: inside(document.querySelector('#reply-form button[type=submit]')),
                               box: inside(document.getElementById('message')),
                               last: inside(msgs[msgs.length - 1]),
                               scrolls: document.documentElement.scrollHeight - window.innerHeight};";
        let seen = browser.run(in_view).await;
        assert_eq!(
            seen["send"],
            json!(true),
            "{width}x{height}: Send is off screen: {seen}"
        );
        assert_eq!(
            seen["box"],
            json!(true),
            "{width}x{height}: the box is off screen: {seen}"
        );
        assert_eq!(
            seen["last"],
            json!(true),
            "{width}x{height}: the newest message is hidden: {seen}"
        );
        // Another message while the chat is open: it scrolls in above the box.
        stack
            .patient_writes("919800003000", "Meera", &format!("just now, at {width}"))
            .await;
        browser
            .wait_for_text("#chat li.msg", &format!("just now, at {width}"))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = browser.run(in_view).await;
        assert_eq!(
            seen["send"],
            json!(true),
            "{width}x{height} after a message: {seen}"
        );
        assert_eq!(
            seen["last"],
            json!(true),
            "{width}x{height} after a message: {seen}"
        );
        browser.screenshot(&format!("long-chat-{width}")).await;
        browser.close().await;
    }
}
