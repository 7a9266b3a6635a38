//! Paced benchmark (`make bench`): sending at Meta's real pace, the way it runs at scale.
//! Four business numbers at 250 msg/s each, two campaigns per number (BENCH_PACED_AUDIENCE
//! deliveries in all, 200,000 by default, after a first run with a tenth of it) plus a trickle
//! of API sends, through real `heydoc gateway`, `heydoc scheduler` and `heydoc sender`
//! processes on PostgreSQL and RabbitMQ, to the sandbox. Prints, per number, the achieved rate
//! against its limit and its busiest wall-clock second; the bus's peak depth against the
//! window; jobs published per send; the API sends' latency; and each process's peak RSS at both
//! backlog sizes. Asserts nothing.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use heydoc_e2e::peak_rss_kb;
use heydoc_e2e::stack::amqp_url;
use heydoc_queue::rabbit::{RabbitBus, RabbitConfig};
use heydoc_queue::JobBus;
use heydoc_testkit::{Backend, TestDatabase};
use heydoc_whatsapp::sandbox::{Sandbox, SandboxConfig, SandboxKnobs};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NUMBERS: [&str; 4] = ["15550004001", "15550004002", "15550004003", "15550004004"];
const MPS: u32 = 250;
/// The sender's window: WINDOW_SECS of the rate (the default).
const WINDOW_SECS: u32 = 5;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let heydoc = std::env::var("HEYDOC_BIN").unwrap_or_else(|_| "target/release/heydoc".into());
    let audience: i64 = std::env::var("BENCH_PACED_AUDIENCE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    println!(
        "\nPaced sending: {} numbers at {MPS}/s each, PostgreSQL + RabbitMQ + separate gateway, scheduler and sender processes:",
        NUMBERS.len()
    );
    let small = run(&heydoc, (audience / 10).max(8_000)).await?;
    let large = run(&heydoc, audience).await?;
    println!("\n  peak RSS as the backlog grows (target: flat):");
    for (name, (a, b)) in ["gateway", "scheduler", "sender"]
        .iter()
        .zip(small.rss_mb.iter().zip(large.rss_mb.iter()))
    {
        println!(
            "    {name:<10} {a:>6.1} MB at {:>7} deliveries, {b:>6.1} MB at {:>7} ({:+.1} MB)",
            small.deliveries,
            large.deliveries,
            b - a
        );
    }
    Ok(())
}

struct Figures {
    deliveries: i64,
    rss_mb: [f64; 3],
}

async fn run(heydoc: &str, audience: i64) -> anyhow::Result<Figures> {
    let prefix = format!("heydoc-bench-paced-{}-{audience}", std::process::id());
    let sandbox = Sandbox::new(SandboxConfig {
        webhook_url: None,
        app_secret: secrecy::SecretString::from("bench"),
        display_phone_number: NUMBERS[0].into(),
        knobs: SandboxKnobs {
            status_webhooks: false,
            ..SandboxKnobs::default()
        },
    });
    let sandbox_url = format!("http://{}", sandbox.clone().spawn("127.0.0.1:0").await?);
    let db = TestDatabase::create(Backend::Postgres).await?;
    seed(&db.conn, audience).await?;

    let gateway_port = free_port()?;
    let gateway_admin = free_port()?;
    let sender_admin = free_port()?;
    let gateway_metrics_url = format!("http://127.0.0.1:{gateway_admin}/metrics");
    let sender_metrics_url = format!("http://127.0.0.1:{sender_admin}/metrics");
    let spawn = |role: &str, admin: Option<u16>| -> anyhow::Result<Child> {
        let mut cmd = Command::new(heydoc);
        cmd.arg(role)
            .env("DATABASE_URL", &db.url)
            .env("AMQP_URL", amqp_url())
            .env("JWT_SECRET", "bench-paced-secret-0123456789")
            .env("WHATSAPP_ACCESS_TOKEN", "bench")
            .env("WHATSAPP_APP_SECRET", "bench")
            .env("WHATSAPP_API_URL", &sandbox_url)
            .env("WHATSAPP_PHONE_NUMBER_ID", NUMBERS[0])
            .env("WHATSAPP_MPS", MPS.to_string())
            .env("HEYDOC_HTTP_ADDR", format!("127.0.0.1:{gateway_port}"))
            .env(
                "HEYDOC_ADMIN_ADDR",
                format!("127.0.0.1:{}", admin.unwrap_or(0)),
            )
            .env("HEYDOC_SENDER__AMQP_PREFIX", &prefix)
            .env("HEYDOC_SENDER__AMQP_QUEUE_EXPIRY_SECS", "600")
            .env("HEYDOC_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_IP", "1000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        cmd.spawn()
            .with_context(|| format!("starting {heydoc} {role} (cargo build --release -p heydoc)"))
    };
    let mut processes = vec![
        spawn("gateway", Some(gateway_admin))?,
        spawn("scheduler", None)?,
        spawn("sender", Some(sender_admin))?,
    ];
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{gateway_port}");
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .post(format!("{base}/register"))
        .json(&serde_json::json!({"username": "bench", "password": "bench-paced-pass"}))
        .send()
        .await?;
    let login: serde_json::Value = client
        .post(format!("{base}/login"))
        .json(&serde_json::json!({"username": "bench", "password": "bench-paced-pass"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["data"]["token"]
        .as_str()
        .context("a session token")?
        .to_string();
    for number in &NUMBERS[1..] {
        let answer = client
            .post(format!("{base}/api/numbers"))
            .bearer_auth(&token)
            .json(
                &serde_json::json!({"phone_number_id": number, "display_number": number,
                                      "access_token": format!("token-{number}"), "mps": MPS}),
            )
            .send()
            .await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "registering {number}: {}",
            answer.text().await?
        );
    }
    // Two campaigns per number, now: the scheduler fans them out.
    db.conn
        .execute_unprepared(&schedules(audience))
        .await
        .context("scheduling the campaigns")?;

    // A trickle of API sends (2 a second, round the numbers) while the campaigns run; the bus
    // depth and the processes' memory are sampled meanwhile.
    let bus = RabbitBus::connect(RabbitConfig {
        url: amqp_url(),
        prefix: prefix.clone(),
        delivery_limit: 10,
        queue_expiry_secs: 600,
    })
    .await;
    let total = audience + api_sends(audience);
    let mut peak_depth: BTreeMap<&str, u64> = BTreeMap::new();
    let mut rss = [0u64; 3];
    let mut api_sent = 0i64;
    let run_started = Instant::now();
    let mut last_api = Instant::now();
    let mut steady: Option<(Instant, BTreeMap<String, u64>)> = None;
    let mut steady_end: Option<(Instant, BTreeMap<String, u64>)> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (accepted, by_number) = sandbox.counts();
        // The trickle starts once every number sends (a new number's sender starts within the
        // registry's poll), so it measures the backlog, not the start.
        let all_sending = NUMBERS.iter().all(|n| by_number.contains_key(*n));
        if all_sending
            && api_sent < api_sends(audience)
            && last_api.elapsed() >= Duration::from_millis(500)
        {
            last_api = Instant::now();
            let number = NUMBERS[api_sent as usize % NUMBERS.len()];
            let _ = client
                .post(format!("{base}/api/send_message"))
                .bearer_auth(&token)
                .json(
                    &serde_json::json!({"phone_number": format!("1999{:07}", api_sent),
                                          "message": "Your report is ready", "from": number}),
                )
                .send()
                .await?;
            api_sent += 1;
        }
        for (i, p) in processes.iter().enumerate() {
            rss[i] = rss[i].max(peak_rss_kb(p.id()).unwrap_or(0));
        }
        for number in NUMBERS {
            let depth = bus.ready(number).await.ok().flatten().unwrap_or(0)
                + bus
                    .ready(&heydoc_queue::conversation_route(number))
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0);
            let peak = peak_depth.entry(number).or_default();
            *peak = (*peak).max(depth);
        }
        // The steady state: from 10 s in to 10 s before the end.
        let elapsed = run_started.elapsed();
        if steady.is_none() && elapsed >= Duration::from_secs(10) {
            steady = Some((Instant::now(), by_number.clone()));
        }
        let left = total as u64 - accepted.min(total as u64);
        if left > u64::from(MPS) * NUMBERS.len() as u64 * 10 {
            steady_end = Some((Instant::now(), by_number));
        }
        if accepted >= total as u64 {
            break;
        }
        anyhow::ensure!(
            elapsed < Duration::from_secs(3600),
            "only {accepted} of {total} sent after an hour"
        );
    }
    let elapsed = run_started.elapsed();
    for (i, p) in processes.iter().enumerate() {
        rss[i] = rss[i].max(peak_rss_kb(p.id()).unwrap_or(0));
    }
    let published = metric(&client, &sender_metrics_url, "heydoc_queue_published_total").await
        + metric(
            &client,
            &gateway_metrics_url,
            "heydoc_queue_published_total",
        )
        .await;
    for p in &mut processes {
        let _ = p.kill();
        let _ = p.wait();
    }
    let stats = sandbox.stats();
    let latency = api_latency(&db.conn).await?;

    println!(
        "\n  {audience} campaign deliveries + {} API sends in {:.0} s:",
        api_sends(audience),
        elapsed.as_secs_f64()
    );
    for number in NUMBERS {
        let rate = match (&steady, &steady_end) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                let sent =
                    n1.get(number).copied().unwrap_or(0) - n0.get(number).copied().unwrap_or(0);
                sent as f64 / (*t1 - *t0).as_secs_f64()
            }
            _ => f64::NAN,
        };
        println!(
            "    number {number}: {rate:>6.1}/s in the steady state = {:.3} of its {MPS}/s (target >= 0.95); busiest second {} (limit {MPS}); bus peak {} jobs (window {})",
            rate / f64::from(MPS),
            stats.max_per_second_by_number.get(number).copied().unwrap_or(0),
            peak_depth.get(number).copied().unwrap_or(0),
            MPS * WINDOW_SECS,
        );
    }
    println!(
        "    jobs published / sends: {:.3} (target <= 1.01); sent twice: {}",
        published / stats.accepted as f64,
        stats.by_callback.values().filter(|&&c| c > 1).count()
    );
    println!(
        "    API send latency during the backlog (queued -> result written): p50 {:.0} ms, p99 {:.0} ms (target p99 < 1,000 ms)",
        latency.0, latency.1
    );
    Ok(Figures {
        deliveries: audience,
        rss_mb: rss.map(|kb| kb as f64 / 1024.0),
    })
}

fn api_sends(audience: i64) -> i64 {
    (audience / 2_000).clamp(20, 200)
}

/// `n` contacts, a tag per number and campaign half (8 tags), tagged round the numbers.
async fn seed(db: &DatabaseConnection, n: i64) -> anyhow::Result<()> {
    db.execute_unprepared(&format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT (17000000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {n}) g;
         INSERT INTO tags (name, color, created_at) SELECT 'bench-' || g, '#888888', now() FROM generate_series(1, 8) g;
         INSERT INTO contact_tags (contact_id, tag_id) SELECT id, 1 + (id % 8) FROM contacts;
         ANALYZE;"
    ))
    .await?;
    Ok(())
}

/// Two campaigns per number: tag t goes from number (t - 1) / 2.
fn schedules(_audience: i64) -> String {
    (1..=8)
        .map(|tag| {
            let number = NUMBERS[(tag - 1) / 2];
            format!(
                "INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                     occurrence_count, status, next_run_at, created_by, created_at, updated_at, sender_number)
                 VALUES ('Campaign {tag}: flu shots are in', '[]', '[{tag}]', now(), NULL, 'UTC', 0, 'pending', now(),
                         'bench', now(), now(), '{number}');"
            )
        })
        .collect()
}

/// A counter's value in a Prometheus text page (0 when absent).
async fn metric(client: &reqwest::Client, url: &str, name: &str) -> f64 {
    let Ok(page) = client.get(url).send().await else {
        return 0.0;
    };
    let text = page.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// p50 and p99 of the API sends' time from queued to result written (ms).
async fn api_latency(db: &DatabaseConnection) -> anyhow::Result<(f64, f64)> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
             FROM (SELECT EXTRACT(EPOCH FROM (updated_at - timestamp)) * 1000 AS ms FROM messages
                   WHERE origin = 'api' AND status = 'sent') t",
        ))
        .await?
        .context("latency")?;
    Ok((
        row.try_get_by_index::<Option<f64>>(0)?.unwrap_or(f64::NAN),
        row.try_get_by_index::<Option<f64>>(1)?.unwrap_or(f64::NAN),
    ))
}
