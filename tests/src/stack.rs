//! The whole sending path in one test process: the gateway on port 0 publishing to a real bus
//! (RabbitMQ with queue names of its own, or in-process), the sender and its relay, and the
//! sandbox standing in for WhatsApp, posting signed webhooks back to the gateway.

use std::sync::Arc;
use std::time::Duration;

use heydoc_config::Settings;
use heydoc_gateway::Outbox;
use heydoc_queue::memory::MemoryBus;
use heydoc_queue::rabbit::{RabbitBus, RabbitConfig};
use heydoc_queue::JobBus;
use heydoc_testkit::{test_settings, Backend, TestApp, TestDatabase, APP_SECRET};
use heydoc_whatsapp::sandbox::{Sandbox, SandboxConfig, SandboxKnobs};
use heydoc_whatsapp::CloudApiConfig;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    Rabbit,
    Memory,
}

pub struct Stack {
    pub app: TestApp,
    pub sandbox: Sandbox,
    pub sandbox_url: String,
    pub bus: Arc<dyn JobBus>,
    pub rabbit: Option<Arc<RabbitBus>>,
    pub route: String,
    pub settings: Settings,
    api_config: CloudApiConfig,
    sender: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    schedulers: Vec<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

impl Stack {
    pub async fn spawn(
        backend: Backend,
        kind: BusKind,
        configure: impl FnOnce(&mut Settings),
    ) -> Stack {
        // RUST_LOG=debug shows the services' logs in a failing test's output.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let db = TestDatabase::create(backend).await.expect("test database");
        let mut settings = test_settings(&db.url);
        settings.sender.mps = 0;
        settings.sender.relay_interval_ms = 100;
        settings.sender.retry_base_ms = 50;
        settings.sender.request_timeout_secs = 2;
        settings.sender.amqp_prefix = format!("heydoc-test-{}", uuid::Uuid::new_v4().simple());
        settings.sender.amqp_queue_expiry_secs = 600;
        settings.scheduler.tick_ms = 100;
        configure(&mut settings);
        let route = settings.whatsapp.phone_number_id.clone();
        // The sandbox first: the gateway's Graph API calls (templates, media, read receipts)
        // go to it, and its webhooks go to the gateway once that listens.
        let knobs = SandboxKnobs {
            status_delay_ms: 20,
            // Tests name templates freely unless they test the catalog.
            enforce_templates: false,
            ..SandboxKnobs::default()
        };
        let sandbox = Sandbox::new(SandboxConfig {
            webhook_url: None,
            app_secret: SecretString::from(APP_SECRET),
            display_phone_number: route.clone(),
            knobs,
        });
        let addr = sandbox.clone().spawn("127.0.0.1:0").await.expect("sandbox");
        let sandbox_url = format!("http://{addr}");
        settings.whatsapp.api_url = sandbox_url.clone();
        settings.whatsapp.access_token = SecretString::from("test-token");
        if settings.whatsapp.waba_id.is_empty() {
            settings.whatsapp.waba_id = heydoc_whatsapp::sandbox::SANDBOX_WABA.to_string();
        }
        let (bus, rabbit): (Arc<dyn JobBus>, Option<Arc<RabbitBus>>) = match kind {
            BusKind::Rabbit => {
                let rabbit = RabbitBus::connect(RabbitConfig {
                    url: amqp_url(),
                    prefix: settings.sender.amqp_prefix.clone(),
                    delivery_limit: settings.sender.delivery_limit,
                    queue_expiry_secs: settings.sender.amqp_queue_expiry_secs,
                })
                .await;
                (rabbit.clone(), Some(rabbit))
            }
            BusKind::Memory => (
                Arc::new(MemoryBus::new(settings.sender.delivery_limit)),
                None,
            ),
        };
        let app = TestApp::spawn_on(
            db,
            settings.clone(),
            Some(Outbox {
                bus: bus.clone(),
                route: route.clone(),
            }),
        )
        .await;
        sandbox.set_webhook_url(app.url("/webhooks/whatsapp"));
        let api_config = CloudApiConfig {
            base_url: sandbox_url.clone(),
            version: "v23.0".into(),
            phone_number_id: route.clone(),
            access_token: SecretString::from("test-token"),
            timeout: Duration::from_secs(settings.sender.request_timeout_secs),
            connect_timeout: Duration::from_secs(2),
        };
        let mut stack = Stack {
            app,
            sandbox,
            sandbox_url,
            bus,
            rabbit,
            route,
            settings,
            api_config,
            sender: None,
            schedulers: Vec::new(),
        };
        stack.start_sender();
        stack
    }

    /// Starts the sender for every registered number (the default one is the stack's route).
    pub fn start_sender(&mut self) {
        let stop = CancellationToken::new();
        let registry = heydoc_sender::Registry {
            db: self.app.db.conn.clone(),
            bus: self.bus.clone(),
            settings: self.settings.sender.clone(),
            default_number: self.route.clone(),
            api: self.api_config.clone(),
        };
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = heydoc_sender::run_registry(registry, token).await {
                panic!("sender failed: {e}");
            }
        });
        self.sender = Some((stop, handle));
    }

    /// Starts a scheduler with a connection pool of its own (as a separate process would have).
    pub async fn start_scheduler(&mut self) {
        let db = heydoc_store::connect(&self.app.db.url, 4)
            .await
            .expect("scheduler pool");
        let ctx = heydoc_scheduler::SchedulerContext {
            db,
            settings: self.settings.scheduler.clone(),
            business_number: self.route.clone(),
            wake: Default::default(),
        };
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = heydoc_scheduler::run(ctx, token).await {
                panic!("scheduler failed: {e}");
            }
        });
        self.schedulers.push((stop, handle));
    }

    /// Another gateway on the same database and secrets, as a second replica would be; the
    /// sandbox's webhooks keep going to the first.
    pub async fn spawn_gateway_replica(&self) -> Replica {
        let db = heydoc_store::connect(&self.app.db.url, 4)
            .await
            .expect("replica pool");
        let secret = self
            .settings
            .jwt_secret()
            .cloned()
            .expect("test JWT secret");
        let state = heydoc_gateway::AppState::new(self.settings.clone(), db, &secret);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let _ = heydoc_gateway::serve(listener, state, token.cancelled_owned()).await;
        });
        Replica { addr, stop, task }
    }

    /// Pretends a patient wrote to the business: the sandbox posts Meta's signed webhook.
    pub async fn patient_writes(&self, from: &str, name: &str, text: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/sandbox/inbound", self.sandbox_url))
            .json(&serde_json::json!({"from": from, "name": name, "text": text}))
            .send()
            .await
            .expect("sandbox inbound");
        assert!(res.status().is_success(), "inbound: {}", res.status());
    }

    pub async fn stop_sender(&mut self) {
        if let Some((stop, handle)) = self.sender.take() {
            stop.cancel();
            let _ = handle.await;
        }
    }
}

/// A second gateway serving the same database.
pub struct Replica {
    pub addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit` with `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
