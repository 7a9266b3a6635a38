//! The test harness: the real gateway on port 0, over a database of its own (a fresh
//! PostgreSQL database or SQLite file per test), with a client that speaks to it over HTTP,
//! and WhatsApp webhook payloads in Meta's format, signed as Meta signs them.

mod database;
pub mod fixtures;
pub mod shape;
pub mod sql;

pub use database::TestDatabase;

use std::net::SocketAddr;

use heydoc_config::Settings;
use heydoc_gateway::AppState;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::Value;
use tokio::sync::oneshot;

pub use reqwest;
pub use serde_json::json;

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef";

/// Runs an `async fn name(backend: Backend)` once on PostgreSQL and once on SQLite, as
/// `name::postgres` and `name::sqlite`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The server PostgreSQL tests create their databases on (`TEST_DATABASE_URL`).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The gateway, running on a port of its own over a database of its own.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub db: TestDatabase,
    /// The gateway's state (e.g. its count of open dashboard event streams).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with settings adjusted by `configure` (after the test defaults).
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::create(backend).await.expect("test database");
        let mut settings = test_settings(&db.url);
        configure(&mut settings);
        Self::spawn_on(db, settings, None).await
    }

    /// Spawns over an existing database with these settings, publishing sends to `outbox`.
    pub async fn spawn_on(
        db: TestDatabase,
        settings: Settings,
        outbox: Option<heydoc_gateway::Outbox>,
    ) -> Self {
        let secret = settings.jwt_secret().cloned().expect("test JWT secret");
        let mut state = AppState::new(settings.clone(), db.conn.clone(), &secret);
        if let Some(outbox) = outbox {
            state = state.with_outbox(outbox);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let kept = state.clone();
        let server = tokio::spawn(async move {
            let _ = heydoc_gateway::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await;
        });
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        Self {
            addr,
            client,
            settings,
            db,
            state: kept,
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A fresh client without the shared cookie jar.
    pub fn bare_client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// Registers `username` (the first becomes admin) and logs in; returns the bearer token.
    pub async fn register_and_login(&self, username: &str, password: &str) -> String {
        let res = self
            .bare_client()
            .post(self.url("/register"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("register");
        assert!(
            res.status().is_success(),
            "register {username}: {}",
            res.status()
        );
        self.login(username, password).await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let res = self
            .bare_client()
            .post(self.url("/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 200, "login {username}");
        let body: Value = res.json().await.expect("login body");
        body["data"]["token"].as_str().expect("token").to_string()
    }

    /// A client that sends `Authorization: Bearer <token>` on every request.
    pub fn authed(&self, token: &str) -> Api {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client");
        Api {
            base: self.url(""),
            client,
        }
    }

    /// Registers the first (admin) user and returns a client logged in as them.
    pub async fn admin(&self) -> Api {
        let token = self
            .register_and_login("admin", "correct-horse-battery")
            .await;
        self.authed(&token)
    }

    /// Posts a webhook payload signed with the app secret, as Meta would.
    pub async fn post_webhook(&self, payload: &Value) -> reqwest::Response {
        let body = serde_json::to_vec(payload).expect("payload");
        self.bare_client()
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), &body))
            .body(body)
            .send()
            .await
            .expect("webhook")
    }

    /// Another gateway replica over the same database, with its own pool, caches and
    /// limiters (stopped when dropped); returns its base URL and its server task.
    pub async fn replica(&self) -> (String, tokio::task::JoinHandle<()>) {
        let db = heydoc_store::connect(&self.db.url, 4)
            .await
            .expect("replica pool");
        let secret = self
            .settings
            .jwt_secret()
            .cloned()
            .expect("test JWT secret");
        let state = AppState::new(self.settings.clone(), db, &secret);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            let _ = heydoc_gateway::serve(listener, state, std::future::pending()).await;
        });
        (format!("http://{addr}"), server)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// `sha256=<hex HMAC>` of `body`, the `X-Hub-Signature-256` header value.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    heydoc_whatsapp::webhook::sign(secret, body)
}

/// The defaults with a test database, fixed secrets, and nothing left to the environment.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::defaults().expect("embedded defaults");
    settings.set_database_url(database_url);
    settings.set_jwt_secret(JWT_SECRET.to_string().into());
    settings.whatsapp.app_secret = APP_SECRET.to_string().into();
    settings.whatsapp.verify_token = VERIFY_TOKEN.to_string().into();
    settings.whatsapp.phone_number_id = "15550001111".into();
    // The template catalog is synced when a test asks (POST /api/templates/sync), so tests
    // that name templates freely are not checked against the sandbox's starter catalog.
    settings.whatsapp.template_sync_secs = 0;
    settings.media.dir = std::env::temp_dir()
        .join(format!(
            "heydoc-test-media-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .display()
        .to_string();
    // Test receivers listen on 127.0.0.1 (the guard itself is tested with this off).
    settings.sender.event_private_targets = true;
    settings
}

/// An authenticated JSON client for one test user.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// A dashboard page's HTML, fetched with this caller's session.
    pub async fn page(&self, path: &str) -> String {
        let res = self.client.get(self.url(path)).send().await.expect("GET");
        res.text().await.expect("the page's text")
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        read(
            self.client
                .delete(self.url(path))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        read(
            self.client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        read(
            self.client
                .patch(self.url(path))
                .json(body)
                .send()
                .await
                .expect("PATCH"),
        )
        .await
    }

    /// The same client against another replica at `base` (`http://host:port`).
    pub fn at(&self, base: &str) -> Api {
        Api {
            base: base.to_string(),
            client: self.client.clone(),
        }
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        read(
            self.client
                .put(self.url(path))
                .json(body)
                .send()
                .await
                .expect("PUT"),
        )
        .await
    }
}

/// The status and JSON body of a response (`Value::Null` for an empty or non-JSON body).
pub async fn read(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
