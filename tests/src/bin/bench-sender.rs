//! Sender benchmark (`make bench`): 100,000 queued deliveries on PostgreSQL, relayed through
//! RabbitMQ to a real `heydoc sender` process (pacing off), sent to the sandbox, every result
//! written back; sends/s and the sender's peak RSS, next to the same run's raw ceilings:
//! lapin publish + consume of 100,000 jobs with confirms and acks alone, and the sandbox
//! answering a bare reqwest load. Prints figures; asserts nothing.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use heydoc_e2e::peak_rss_kb;
use heydoc_queue::rabbit::{RabbitBus, RabbitConfig};
use heydoc_queue::{Job, JobBus};
use heydoc_testkit::{Backend, TestDatabase};
use heydoc_whatsapp::sandbox::{Sandbox, SandboxConfig, SandboxKnobs};
use sea_orm::{ConnectionTrait, Statement};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUTE: &str = "15550003333";

fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn prefix(what: &str) -> String {
    format!("heydoc-bench-{what}-{}", std::process::id())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: i64 = std::env::var("BENCH_SENDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let heydoc = std::env::var("HEYDOC_BIN").unwrap_or_else(|_| "target/release/heydoc".into());

    let queue_rate = queue_ceiling(n as usize).await?;
    let sandbox = Sandbox::new(SandboxConfig {
        webhook_url: None,
        app_secret: secrecy::SecretString::from("bench"),
        display_phone_number: ROUTE.into(),
        knobs: SandboxKnobs {
            status_webhooks: false,
            ..SandboxKnobs::default()
        },
    });
    let sandbox_url = format!("http://{}", sandbox.clone().spawn("127.0.0.1:0").await?);
    let http_rate = sandbox_ceiling(&sandbox_url, Duration::from_secs(5)).await;

    let db = TestDatabase::create(Backend::Postgres).await?;
    seed(&db.conn, n).await?;
    let started = Instant::now();
    let mut sender = Command::new(&heydoc)
        .arg("sender")
        .env("DATABASE_URL", &db.url)
        .env("HEYDOC_ADMIN_ADDR", "127.0.0.1:0")
        .env("AMQP_URL", amqp_url())
        .env("JWT_SECRET", "bench")
        .env("WHATSAPP_ACCESS_TOKEN", "bench")
        .env("WHATSAPP_API_URL", &sandbox_url)
        .env("WHATSAPP_PHONE_NUMBER_ID", ROUTE)
        .env("WHATSAPP_MPS", "0")
        .env("HEYDOC_SENDER__AMQP_PREFIX", prefix("e2e"))
        .env("HEYDOC_SENDER__AMQP_QUEUE_EXPIRY_SECS", "600")
        .env("HEYDOC_SENDER__PREFETCH", "1000")
        .env("HEYDOC_SENDER__CONCURRENCY", "128")
        .env("HEYDOC_SENDER__RELAY_INTERVAL_MS", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!("starting {heydoc} (build it with cargo build --release -p heydoc)")
        })?;
    let pid = sender.id();
    let mut peak_kb = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak_kb = peak_kb.max(peak_rss_kb(pid).unwrap_or(0));
        let row = db
            .conn
            .query_one(Statement::from_string(
                db.conn.get_database_backend(),
                "SELECT COUNT(*) FROM messages WHERE status = 'sent'",
            ))
            .await?
            .context("count")?;
        let sent: i64 = row.try_get_by_index(0)?;
        if sent >= n {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {sent} of {n} sent after 10 minutes");
        }
    }
    let elapsed = started.elapsed();
    peak_kb = peak_kb.max(peak_rss_kb(pid).unwrap_or(0));
    let _ = sender.kill();
    let _ = sender.wait();
    let e2e_rate = n as f64 / elapsed.as_secs_f64();
    let twice = sandbox
        .stats()
        .by_callback
        .values()
        .filter(|&&c| c > 1)
        .count();

    println!("\n{n} deliveries, PostgreSQL + RabbitMQ + sandbox, pacing off, on this machine:");
    println!("  ceiling: lapin publish+consume with confirms and acks   {queue_rate:>9.0} jobs/s");
    println!(
        "  ceiling: sandbox under a bare reqwest load (64 in flight) {http_rate:>9.0} requests/s"
    );
    println!("  end to end: queued -> relay -> RabbitMQ -> sender -> sandbox -> result written");
    println!(
        "              {e2e_rate:>9.0} sends/s ({:.1} s), {twice} sent twice",
        elapsed.as_secs_f64()
    );
    println!("  sender peak RSS: {:.1} MB", peak_kb as f64 / 1024.0);
    println!(
        "  ratio to the queue ceiling: {:.2}; to a Celery worker's ~800/s: {:.1}x",
        e2e_rate / queue_rate,
        e2e_rate / 800.0
    );
    println!("  targets: >= 8,000 sends/s, >= half the queue ceiling, RSS < 100 MB");
    Ok(())
}

/// RabbitMQ alone: publish `n` jobs in confirmed windows of 1,000 while a consumer acks them.
async fn queue_ceiling(n: usize) -> anyhow::Result<f64> {
    let bus = RabbitBus::connect(RabbitConfig {
        url: amqp_url(),
        prefix: prefix("ceiling"),
        delivery_limit: 10,
        queue_expiry_secs: 600,
    })
    .await;
    let mut rx = bus.consume(ROUTE, 1000).await?;
    let consumed = Arc::new(AtomicU64::new(0));
    let counter = consumed.clone();
    let consumer = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            r.ack().await;
            if counter.fetch_add(1, Ordering::Relaxed) + 1 == n as u64 {
                return;
            }
        }
    });
    let started = Instant::now();
    let jobs: Vec<Job> = (0..n as i64).map(Job::new).collect();
    for window in jobs.chunks(1000) {
        bus.publish(ROUTE, window).await?;
    }
    consumer.await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The sandbox's own ceiling: 64 loops posting text messages for `duration`.
async fn sandbox_ceiling(base: &str, duration: Duration) -> f64 {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default();
    let url = format!("{base}/v23.0/{ROUTE}/messages");
    let done = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + duration;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (client, url, done) = (client.clone(), url.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let body = serde_json::json!({"messaging_product": "whatsapp", "to": format!("1777{i:07}"),
                    "type": "text", "text": {"body": "ceiling"}});
                if let Ok(r) = client.post(&url).bearer_auth("x").json(&body).send().await {
                    if r.bytes().await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64()
}

async fn seed(db: &sea_orm::DatabaseConnection, n: i64) -> anyhow::Result<()> {
    db.execute_unprepared(&format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT (18880000000 + g)::text, '', false, '{{}}'::json, now(), 1, 0, now(), now() FROM generate_series(1, {n}) g;
         INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                               is_read, status, attempts, origin, updated_at)
         SELECT id, 'outgoing', '{ROUTE}', phone, 'text', 'Your appointment is tomorrow', now(), true, 'queued', 0, 'api', now()
         FROM contacts;
         ANALYZE;"
    ))
    .await?;
    Ok(())
}
