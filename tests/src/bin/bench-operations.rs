//! Real-operations benchmark (`make bench`), on the release build's real processes:
//!
//! 1. Many small campaigns due together: 200 campaigns of 5 recipients due in the same second,
//!    two `heydoc scheduler` and two `heydoc sender` processes and a gateway taking the status
//!    webhooks, one number at 1,000 msg/s. Prints how late each send was (from the due second
//!    to the sandbox's accept) and how late each campaign started, against the target of a
//!    second plus the pacing floor (1,000 sends at 1,000/s take a second).
//! 2. Memory over a long campaign: one campaign at 500 msg/s for BENCH_OPS_SECS (120 by
//!    default); the sender's resident memory and the pair budgets it remembers are sampled as
//!    it runs. Target: flat (within 5%) once warm, and the budgets bounded by ~20 s of sends.
//!
//! Asserts nothing; prints figures next to their targets.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use heydoc_e2e::stack::amqp_url;
use heydoc_testkit::{Backend, TestDatabase};
use heydoc_whatsapp::sandbox::{Sandbox, SandboxConfig, SandboxKnobs};
use sea_orm::{ConnectionTrait, Statement};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NUMBER: &str = "15550005001";
const APP_SECRET: &str = "bench-operations-app-secret";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Current resident set of a process, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Deployment {
    processes: Vec<(String, Child)>,
    sandbox: Sandbox,
    db: TestDatabase,
    sender_admin: u16,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, p) in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// A gateway (taking the sandbox's status webhooks), `schedulers` schedulers and `senders`
/// senders at `mps`, on a fresh database.
async fn deploy(
    heydoc: &str,
    mps: u32,
    schedulers: usize,
    senders: usize,
    webhooks: bool,
) -> anyhow::Result<Deployment> {
    let prefix = format!("heydoc-bench-ops-{}-{mps}", std::process::id());
    let gateway_port = free_port()?;
    let sender_admin = free_port()?;
    let sandbox = Sandbox::new(SandboxConfig {
        webhook_url: webhooks.then(|| format!("http://127.0.0.1:{gateway_port}/webhooks/whatsapp")),
        app_secret: secrecy::SecretString::from(APP_SECRET),
        display_phone_number: NUMBER.into(),
        knobs: SandboxKnobs {
            status_webhooks: webhooks,
            ..SandboxKnobs::default()
        },
    });
    let sandbox_url = format!("http://{}", sandbox.clone().spawn("127.0.0.1:0").await?);
    let db = TestDatabase::create(Backend::Postgres).await?;
    heydoc_store::migrate(&db.conn).await?;
    let spawn = |role: &str, admin: u16| -> anyhow::Result<Child> {
        Command::new(heydoc)
            .arg(role)
            .env("DATABASE_URL", &db.url)
            .env("AMQP_URL", amqp_url())
            .env("JWT_SECRET", "bench-operations-secret-0123456789")
            .env("WHATSAPP_ACCESS_TOKEN", "bench")
            .env("WHATSAPP_APP_SECRET", APP_SECRET)
            .env("WHATSAPP_API_URL", &sandbox_url)
            .env("WHATSAPP_PHONE_NUMBER_ID", NUMBER)
            .env("WHATSAPP_MPS", mps.to_string())
            .env("HEYDOC_HTTP_ADDR", format!("127.0.0.1:{gateway_port}"))
            .env("HEYDOC_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
            .env("HEYDOC_SENDER__AMQP_PREFIX", &prefix)
            .env("HEYDOC_SENDER__AMQP_QUEUE_EXPIRY_SECS", "600")
            .env("HEYDOC_WHATSAPP__TEMPLATE_SYNC_SECS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {heydoc} {role} (cargo build --release -p heydoc)"))
    };
    let mut processes = vec![("gateway".to_string(), spawn("gateway", 0)?)];
    for i in 0..schedulers {
        processes.push((format!("scheduler {}", i + 1), spawn("scheduler", 0)?));
    }
    for i in 0..senders {
        let admin = if i == 0 { sender_admin } else { 0 };
        processes.push((format!("sender {}", i + 1), spawn("sender", admin)?));
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{gateway_port}/healthz"))
        .send()
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Deployment {
        processes,
        sandbox,
        db,
        sender_admin,
    })
}

fn pct(v: &[i64], p: f64) -> i64 {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

async fn due_together(heydoc: &str) -> anyhow::Result<()> {
    const CAMPAIGNS: i64 = 200;
    const EACH: i64 = 5;
    let d = deploy(heydoc, 1_000, 2, 2, true).await?;
    let db = &d.db.conn;
    // Give the senders a moment to take their queues.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let due_ms: i64 = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(EXTRACT(EPOCH FROM date_trunc('second', now()) + interval '3 seconds') * 1000 AS BIGINT)",
        ))
        .await?
        .context("now")?
        .try_get_by_index(0)?;
    db.execute_unprepared(&format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT (919760000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {n}) g;
         INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                         occurrence_count, status, next_run_at, created_by, created_at, updated_at)
         SELECT 'Reminder ' || g,
                (SELECT json_agg((919760000000 + (g - 1) * {EACH} + k)::text) FROM generate_series(1, {EACH}) k),
                '[]', to_timestamp({due_ms} / 1000.0), NULL, 'UTC', 0, 'pending', to_timestamp({due_ms} / 1000.0),
                'bench', now(), now()
         FROM generate_series(1, {CAMPAIGNS}) g;",
        n = CAMPAIGNS * EACH
    ))
    .await?;
    let started = Instant::now();
    while d.sandbox.stats().accepted < (CAMPAIGNS * EACH) as u64 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {} sent after two minutes",
            d.sandbox.stats().accepted,
            CAMPAIGNS * EACH
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = d.sandbox.stats();
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT m.id, o.schedule_id FROM messages m JOIN occurrences o ON o.id = m.occurrence_id",
        ))
        .await?;
    let mut sends = Vec::new();
    let mut first: std::collections::HashMap<i32, i64> = Default::default();
    for r in rows {
        let id: i64 = r.try_get_by_index(0)?;
        let schedule: i32 = r.try_get_by_index(1)?;
        let at = stats
            .first_accepted_ms
            .get(&id.to_string())
            .copied()
            .context("an accepted send")?;
        sends.push(at - due_ms);
        let f = first.entry(schedule).or_insert(at);
        *f = (*f).min(at);
    }
    sends.sort_unstable();
    let mut starts: Vec<i64> = first.values().map(|at| at - due_ms).collect();
    starts.sort_unstable();
    println!(
        "\n  {CAMPAIGNS} campaigns of {EACH} due in one second (2 schedulers, 2 senders, 1,000/s, status webhooks to the gateway):"
    );
    println!(
        "    send lateness: p50 {} ms, p99 {} ms, max {} ms (target p99 < 2,000 ms: 1 s plus the 1 s pacing floor)",
        pct(&sends, 0.5),
        pct(&sends, 0.99),
        sends[sends.len() - 1]
    );
    println!(
        "    campaign start: p50 {} ms, p99 {} ms, max {} ms; {} of {CAMPAIGNS} started; sent twice: {}",
        pct(&starts, 0.5),
        pct(&starts, 0.99),
        starts[starts.len() - 1],
        starts.len(),
        stats.by_callback.values().filter(|&&n| n > 1).count()
    );
    Ok(())
}

async fn gauge(client: &reqwest::Client, url: &str, name: &str) -> f64 {
    let Ok(page) = client.get(url).send().await else {
        return f64::NAN;
    };
    let text = page.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn memory_over_a_long_campaign(heydoc: &str) -> anyhow::Result<()> {
    const MPS: u32 = 500;
    let secs: u64 = std::env::var("BENCH_OPS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let audience = i64::from(MPS) * secs as i64;
    let d = deploy(heydoc, MPS, 1, 1, false).await?;
    let db = &d.db.conn;
    db.execute_unprepared(&format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT (17100000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {audience}) g;
         INSERT INTO tags (name, color, created_at) VALUES ('All', '#888888', now());
         INSERT INTO contact_tags (contact_id, tag_id) SELECT id, 1 FROM contacts;
         ANALYZE;
         INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                         occurrence_count, status, next_run_at, created_by, created_at, updated_at)
         VALUES ('Flu shots are in', '[]', '[1]', now(), NULL, 'UTC', 0, 'pending', now(), 'bench', now(), now());"
    ))
    .await?;
    let sender = d
        .processes
        .iter()
        .find(|(n, _)| n == "sender 1")
        .map(|(_, p)| p.id())
        .context("the sender")?;
    let metrics = format!("http://127.0.0.1:{}/metrics", d.sender_admin);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut samples: Vec<(u64, f64, f64)> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let accepted = d.sandbox.stats().accepted;
        let rss = rss_kb(sender).unwrap_or(0) as f64 / 1024.0;
        let budgets = gauge(&client, &metrics, "heydoc_pair_budgets").await;
        samples.push((started.elapsed().as_secs(), rss, budgets));
        if accepted >= audience as u64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(secs * 3 + 60),
            "only {accepted} of {audience} sent"
        );
    }
    println!("\n  memory over a campaign of {audience} at {MPS}/s ({secs} s):");
    let warm: Vec<&(u64, f64, f64)> = samples.iter().filter(|(t, _, _)| *t >= 20).collect();
    if let (Some(first), Some(last)) = (warm.first(), warm.last()) {
        let max = warm.iter().map(|s| s.1).fold(0.0, f64::max);
        println!(
            "    sender RSS: {:.1} MB at {} s, {:.1} MB at {} s ({:+.1}%), at most {:.1} MB (target: within 5%)",
            first.1,
            first.0,
            last.1,
            last.0,
            (last.1 / first.1 - 1.0) * 100.0,
            max
        );
        let peak = warm.iter().map(|s| s.2).fold(0.0, f64::max);
        println!(
            "    pair budgets remembered: at most {peak:.0} (recipients of the last ~20 s: {}; the campaign's {audience} if never forgotten)",
            MPS * 20
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let heydoc = std::env::var("HEYDOC_BIN").unwrap_or_else(|_| "target/release/heydoc".into());
    println!("\nReal operations, separate release processes on PostgreSQL and RabbitMQ:");
    due_together(&heydoc).await?;
    memory_over_a_long_campaign(&heydoc).await?;
    Ok(())
}
