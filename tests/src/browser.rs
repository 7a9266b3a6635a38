//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for the
//! dashboard's browser tests. Each `Browser` runs its own chromedriver on a free port and a
//! fresh profile; dropping it ends both.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// Where Debian puts them; `CHROMEDRIVER` and `CHROMIUM` override.
fn chromedriver_path() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    /// chromedriver's address, for the console log (not in WebDriver's standard).
    driver_url: String,
    /// Console errors a test expects (a 409 it provoked): substrings of their messages.
    expected_errors: std::sync::Mutex<Vec<String>>,
    _profile: tempdir::Profile,
}

mod tempdir {
    /// A fresh browser profile directory, removed afterwards.
    pub struct Profile(pub std::path::PathBuf);

    impl Profile {
        pub fn new() -> Self {
            let dir = std::env::temp_dir()
                .join(format!("heydoc-chromium-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("profile directory");
            Self(dir)
        }
    }

    impl Drop for Profile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a phone-sized or desktop window.
    pub async fn start(width: u32, height: u32) -> Browser {
        let driver_path = chromedriver_path();
        assert!(
            std::path::Path::new(&driver_path).exists(),
            "{driver_path} is missing: install Debian's chromium and chromium-driver \
             (make test does: deploy/dev/ensure-services.sh)"
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        // Its own process group, which Chromium joins: a panicking test kills them all.
        let driver = Command::new(&driver_path)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempdir::Profile::new();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium_path(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.0.display()),
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        // The console, read at the end of every test: no page may log an error.
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let url = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot reach chromedriver at {url}: {e}"),
            }
        };
        Browser {
            client,
            driver,
            driver_url: url,
            expected_errors: std::sync::Mutex::default(),
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Waits (up to 20 s) for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => panic!(
                "no element {css} within 20 s: {e}\n{}",
                self.describe().await
            ),
        }
    }

    /// Where the browser is and what the page says, for a failing test's message.
    pub async fn describe(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map_or_else(|e| format!("(no url: {e})"), |u| u.to_string());
        let text = self
            .client
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
            .map(|v| {
                v.as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(1500)
                    .collect::<String>()
            })
            .unwrap_or_default();
        format!("at {url}, the page reads:\n{text}")
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Sets a field the way typing would, for inputs whose typed format depends on the locale
    /// (`datetime-local`) and for selects: the value, then `input` and `change` events.
    pub async fn set_value(&self, css: &str, value: &str) {
        self.find(css).await;
        self.run(&format!(
            "const el = document.querySelector({css:?}); el.value = {value:?};
             el.dispatchEvent(new Event('input', {{bubbles: true}}));
             el.dispatchEvent(new Event('change', {{bubbles: true}}));"
        ))
        .await;
    }

    /// Clicks `css`; when a live refresh replaced the element between finding and clicking it,
    /// finds it again (as a person would click again).
    pub async fn click(&self, css: &str) {
        for _ in 0..5 {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click {css}: {e:?}"),
            }
        }
        panic!("click {css}: the element kept being replaced");
    }

    /// Moves the mouse to a point of the window, in `glide` (the pointer crosses what lies
    /// between, as a hand moves it).
    pub async fn pointer_to(&self, x: f64, y: f64, glide: Duration) {
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
            duration: Some(glide),
            x,
            y,
        });
        self.client
            .perform_actions(mouse)
            .await
            .expect("move the mouse");
    }

    /// Presses and releases the left button where the mouse is, as a click by hand: whatever
    /// is under the pointer at each moment receives it.
    pub async fn press_here(&self) {
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .pause(Duration::from_millis(60))
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(mouse)
            .await
            .expect("click by hand");
    }

    /// Waits for the page's path to become `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let started = std::time::Instant::now();
        loop {
            let url = self.client.current_url().await.expect("url");
            if url.path() == path {
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!(
                    "still on {url} after 20 s, expected {path}\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches an element whose text contains `text`; returns that text.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> String {
        let started = std::time::Instant::now();
        let mut last = String::new();
        loop {
            if let Ok(found) = self.client.find_all(Locator::Css(css)).await {
                for el in found {
                    if let Ok(t) = el.text().await {
                        if t.contains(text) {
                            return t;
                        }
                        last = t;
                    }
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "no {css} containing {text:?} within 30 s (last seen: {last:?})\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page and returns its value.
    pub async fn run(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Saves a PNG of the window under `target/screenshots/`, for the README.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// A console error this test provokes on purpose (e.g. the 409 of a contact that exists),
    /// by a substring of its message.
    pub fn expect_console_error(&self, part: &str) {
        if let Ok(mut expected) = self.expected_errors.lock() {
            expected.push(part.to_string());
        }
    }

    /// The console's errors since the last call (chromedriver's log, which spans every page
    /// of the session): the page's own and failed loads.
    pub async fn console_errors(&self) -> Vec<String> {
        let session = self
            .client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a WebDriver session");
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("read the console")
            .json()
            .await
            .expect("console as JSON");
        let expected = self
            .expected_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        answer["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .filter_map(|e| e["message"].as_str().map(str::to_string))
                    .filter(|m| !expected.iter().any(|x| m.contains(x.as_str())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The page's serious and critical accessibility violations, as axe-core (npm, installed
    /// into `tests/axe` by `make test`) finds them in this Chromium: `rule: help (where)`.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        self.axe(&["serious", "critical"]).await
    }

    /// Every accessibility violation axe-core finds, minor and moderate ones too.
    pub async fn accessibility_findings(&self) -> Vec<String> {
        self.axe(&["minor", "moderate", "serious", "critical"])
            .await
    }

    async fn axe(&self, impacts: &[&str]) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("axe/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "axe-core is missing at {} ({e}): run `make services` (npm ci in tests/axe)",
                path.display()
            )
        });
        self.client
            .execute(&format!("{source}\n;return typeof axe;"), vec![])
            .await
            .expect("inject axe-core");
        let found = self
            .client
            .execute_async(
                "const impacts = arguments[0];
                 const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then((r) => done(
                     r.violations
                         .filter((v) => impacts.includes(v.impact))
                         .map((v) => `${v.id} (${v.impact}): ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')})`)
                 ), (e) => done(['axe failed: ' + e]));",
                vec![json!(impacts)],
            )
            .await
            .expect("run axe-core");
        found
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How much wider than the window the page is (0: no sideways scrolling).
    pub async fn overflow_x(&self) -> i64 {
        self.run(
            "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth",
        )
        .await
        .as_i64()
        .unwrap_or(i64::MAX)
    }

    /// Fails the test when any page logged an error to the console.
    pub async fn assert_no_console_errors(&self) {
        let errors = self.console_errors().await;
        assert!(
            errors.is_empty(),
            "the browser console has errors:\n{}\n{}",
            errors.join("\n"),
            self.describe().await
        );
    }

    /// Checks the console for errors, then ends the WebDriver session (Chromium exits), then
    /// chromedriver.
    pub async fn close(self) {
        self.assert_no_console_errors().await;
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every Chromium process it started, even after a panic.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}
