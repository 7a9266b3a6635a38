//! What the process tests share: the real `heydoc sender` process, a sandbox to send to, and
//! queued sends seeded straight into the database.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};

use heydoc_store::Db as DatabaseConnection;
use heydoc_whatsapp::sandbox::{Sandbox, SandboxConfig, SandboxKnobs};

pub const ROUTE: &str = "15550002222";

/// A child process killed when dropped, so a failed test leaves no process behind.
pub struct Process(Child);

impl Process {
    pub fn new(child: Child) -> Self {
        Self(child)
    }

    /// Sends SIGTERM and waits for the exit, failing the test after `limit`.
    pub async fn terminate(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let term = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let signalled = std::time::Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                signalled.elapsed() < limit,
                "the process did not exit within {limit:?} of SIGTERM"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl std::ops::Deref for Process {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// `heydoc <role>` with `vars`, then `extra` (which adds or overrides), its stderr shown.
fn heydoc(role: &str, vars: &[(&str, &str)], extra: &[(&str, &str)]) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heydoc"));
    command.arg(role).env("RUST_LOG", "warn");
    for (k, v) in vars.iter().chain(extra) {
        command.env(k, v);
    }
    Process::new(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start heydoc {role}: {e}")),
    )
}

/// `heydoc sender` on its own queues (`prefix`), sending to `sandbox_url`; `extra` adds or
/// overrides environment variables.
pub fn start_sender(
    db_url: &str,
    sandbox_url: &str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> Process {
    let amqp = amqp_url();
    heydoc(
        "sender",
        &[
            ("DATABASE_URL", db_url),
            ("HEYDOC_ADMIN_ADDR", "127.0.0.1:0"),
            ("AMQP_URL", &amqp),
            ("JWT_SECRET", "process-test-secret"),
            ("WHATSAPP_ACCESS_TOKEN", "process-test-token"),
            ("WHATSAPP_API_URL", sandbox_url),
            ("WHATSAPP_PHONE_NUMBER_ID", ROUTE),
            ("WHATSAPP_MPS", "400"),
            ("HEYDOC_SENDER__AMQP_PREFIX", prefix),
            ("HEYDOC_SENDER__AMQP_QUEUE_EXPIRY_SECS", "600"),
            ("HEYDOC_SENDER__SENDING_LEASE_SECS", "3"),
            ("HEYDOC_SENDER__RELAY_INTERVAL_MS", "100"),
        ],
        extra,
    )
}

/// `heydoc scheduler` (ticks of 100 ms, fan-out chunks of 1,000, a 2 s fan-out lease);
/// `extra` adds or overrides environment variables.
pub fn start_scheduler_with(db_url: &str, extra: &[(&str, &str)]) -> Process {
    heydoc(
        "scheduler",
        &[
            ("DATABASE_URL", db_url),
            ("HEYDOC_ADMIN_ADDR", "127.0.0.1:0"),
            ("WHATSAPP_PHONE_NUMBER_ID", ROUTE),
            ("HEYDOC_SCHEDULER__TICK_MS", "100"),
            ("HEYDOC_SCHEDULER__FANOUT_CHUNK", "1000"),
            ("HEYDOC_SCHEDULER__FANOUT_LEASE_SECS", "2"),
        ],
        extra,
    )
}

pub fn start_scheduler(db_url: &str) -> Process {
    start_scheduler_with(db_url, &[])
}

/// `heydoc gateway` on `addr`, publishing to the queues of `prefix`, its Graph API calls to
/// `sandbox_url`, checking webhooks with `APP_SECRET`.
pub fn start_gateway(db_url: &str, addr: &str, sandbox_url: &str, prefix: &str) -> Process {
    let amqp = amqp_url();
    heydoc(
        "gateway",
        &[
            ("DATABASE_URL", db_url),
            ("HEYDOC_HTTP_ADDR", addr),
            ("HEYDOC_ADMIN_ADDR", "127.0.0.1:0"),
            ("AMQP_URL", &amqp),
            ("JWT_SECRET", "process-test-secret"),
            ("WHATSAPP_APP_SECRET", APP_SECRET),
            ("WHATSAPP_ACCESS_TOKEN", "process-test-token"),
            ("WHATSAPP_API_URL", sandbox_url),
            ("WHATSAPP_PHONE_NUMBER_ID", ROUTE),
            ("HEYDOC_SENDER__AMQP_PREFIX", prefix),
            ("HEYDOC_SENDER__AMQP_QUEUE_EXPIRY_SECS", "600"),
            ("HEYDOC_WHATSAPP__TEMPLATE_SYNC_SECS", "0"),
        ],
        &[],
    )
}

/// The app secret the process tests' gateways check webhooks with (and their sandboxes sign).
pub const APP_SECRET: &str = "process-test-app-secret";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers 200, failing after `limit`.
pub async fn wait_ok(url: &str, limit: std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(started.elapsed() < limit, "{url} never answered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A sandbox answering after `latency_ms`, posting no webhooks; returns it and its URL.
pub async fn sandbox(latency_ms: u64) -> (Sandbox, String) {
    let sandbox = Sandbox::new(SandboxConfig {
        webhook_url: None,
        app_secret: secrecy::SecretString::from("unused"),
        display_phone_number: ROUTE.into(),
        knobs: SandboxKnobs {
            latency_ms,
            status_webhooks: false,
            ..SandboxKnobs::default()
        },
    });
    let url = format!(
        "http://{}",
        sandbox.clone().spawn("127.0.0.1:0").await.unwrap()
    );
    (sandbox, url)
}

/// `n` contacts from `first_phone` on, each with one queued text message.
pub async fn seed_sends(db: &DatabaseConnection, first_phone: i64, n: i64) {
    heydoc_testkit::sql::execute(
        db,
        &format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT ({first_phone} + g)::text, '', false, '{{}}'::json, now(), 1, 0, now(), now() FROM generate_series(1, {n}) g;
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, origin, updated_at)
         SELECT id, 'outgoing', '{ROUTE}', phone, 'text', 'process test', now(), true, 'queued', 0, 'api', now() FROM contacts;"
        ),
    )
    .await;
}

pub async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    heydoc_testkit::sql::scalar(db, sql).await
}

/// Empties the number's two queues of `prefix`: the jobs on them are lost (as when a broker's
/// disk is replaced, or a job is dead-lettered).
pub async fn purge_queues(prefix: &str) {
    use lapin::options::QueuePurgeOptions;
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for queue in [
        format!("{prefix}.sends.{ROUTE}"),
        format!("{prefix}.sends.{ROUTE}.now"),
    ] {
        channel
            .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap();
    }
    let _ = connection.close(0, "purged".into()).await;
}

/// libfaketime's preload library, where Debian's `faketime` package puts it.
pub fn libfaketime() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
}

/// `POST /login` at `base`; the answer (`data.token`, `data.user`).
pub async fn login(base: &str, username: &str, password: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{base}/login"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The first admin, registered from this machine (so without a setup token), and a session
/// token for them.
pub async fn admin_token(base: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{base}/register"))
        .json(&serde_json::json!({"username": "admin", "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    login(base, "admin", "correct-horse-battery").await["data"]["token"]
        .as_str()
        .unwrap()
        .to_string()
}
