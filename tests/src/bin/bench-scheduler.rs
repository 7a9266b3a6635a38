//! Scheduler benchmark (`make bench`): (a) one schedule with 1,000,000 recipients due now:
//! seconds until every delivery is confirmed on RabbitMQ (fan-out + outbox relay), next to the
//! same run's ceiling (lapin publishing 1,000,000 confirmed jobs alone); (b) 10,000 schedules
//! due in the same second: p50/p99/max of (occurrence time - due time). Prints figures.
//! `BENCH_RECIPIENTS`, `BENCH_SCHEDULES` and `BENCH_FANOUT_CHUNK` change the sizes.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use heydoc_queue::rabbit::{RabbitBus, RabbitConfig};
use heydoc_queue::{Job, JobBus};
use heydoc_testkit::{test_settings, Backend, TestDatabase};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUTE: &str = "15550004444";

fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

fn drop_queue(name: &str) {
    let _ = Command::new("rabbitmqctl")
        .args(["-q", "delete_queue", name])
        .output();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: i64 = std::env::var("BENCH_RECIPIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let schedules: i64 = std::env::var("BENCH_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);

    // The ceiling: lapin publishing n confirmed jobs, windows of 1,000.
    let prefix = format!("heydoc-bench-ceiling-{}", std::process::id());
    let bus = RabbitBus::connect(RabbitConfig {
        url: amqp_url(),
        prefix: prefix.clone(),
        delivery_limit: 10,
        queue_expiry_secs: 600,
    })
    .await;
    let started = Instant::now();
    let mut next = 0;
    while next < n {
        let window: Vec<Job> = (next..(next + 1000).min(n)).map(Job::new).collect();
        bus.publish(ROUTE, &window).await?;
        next += 1000;
    }
    let ceiling = n as f64 / started.elapsed().as_secs_f64();
    drop_queue(&bus.queue_name(ROUTE));

    // (a) Fan-out of one schedule to n recipients, through the relay onto RabbitMQ.
    let db = TestDatabase::create(Backend::Postgres).await?;
    db.conn
        .execute_unprepared(&format!(
            "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
             SELECT (12220000000 + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {n}) g;
             INSERT INTO tags (name, color, created_at) VALUES ('All', '#888888', now());
             INSERT INTO contact_tags (contact_id, tag_id) SELECT id, 1 FROM contacts;
             ANALYZE;"
        ))
        .await?;
    let mut settings = test_settings(&db.url);
    settings.sender.amqp_prefix = format!("heydoc-bench-fanout-{}", std::process::id());
    settings.whatsapp.phone_number_id = ROUTE.into();
    // This measures fan-out and publishing, with no sender taking jobs: the relay's window is
    // the whole audience (a sender would keep it to a few seconds of the number's rate).
    settings.sender.window_floor = 2_000_000;
    if let Some(chunk) = std::env::var("BENCH_FANOUT_CHUNK")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        settings.scheduler.fanout_chunk = chunk;
    }
    let fan_bus = RabbitBus::connect(RabbitConfig {
        url: amqp_url(),
        prefix: settings.sender.amqp_prefix.clone(),
        delivery_limit: 10,
        queue_expiry_secs: 600,
    })
    .await;
    let scheduler = heydoc_scheduler::SchedulerContext {
        db: db.conn.clone(),
        settings: settings.scheduler.clone(),
        business_number: ROUTE.into(),
        wake: Default::default(),
    };
    let relay = heydoc_sender::SenderContext {
        db: heydoc_store::connect(&db.url, 4).await?,
        bus: fan_bus.clone() as Arc<dyn JobBus>,
        api: heydoc_whatsapp::CloudApi::new(heydoc_whatsapp::CloudApiConfig {
            base_url: "http://127.0.0.1:9".into(),
            version: "v23.0".into(),
            phone_number_id: ROUTE.into(),
            access_token: secrecy::SecretString::from("unused"),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        })?,
        settings: settings.sender.clone(),
        route: ROUTE.into(),
    };
    db.conn
        .execute_unprepared(
            "INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                             occurrence_count, status, next_run_at, created_by, created_at, updated_at)
             VALUES ('Flu shots are in', '[]', '[1]', now(), NULL, 'UTC', 0, 'pending', now(), 'bench', now(), now())",
        )
        .await?;
    let started = Instant::now();
    // Progress is counted from what the relay reports confirmed, not by scanning the table
    // (a COUNT over a million rows every half second would load the machine being measured).
    let confirmed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let relay_confirmed = confirmed.clone();
    let relay_task = tokio::spawn(async move {
        let mut watch = heydoc_store::deliveries::RetryWatch::default();
        loop {
            let published = heydoc_sender::relay::relay_once(&relay, &mut watch).await;
            relay_confirmed.fetch_add(published, std::sync::atomic::Ordering::Relaxed);
            if published == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let fan_task = tokio::spawn(async move {
        loop {
            if let Err(e) = heydoc_scheduler::tick(&scheduler).await {
                eprintln!("tick: {e}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    while (confirmed.load(std::sync::atomic::Ordering::Relaxed) as i64) < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(1200) {
            anyhow::bail!("only {confirmed:?} of {n} confirmed after 20 minutes");
        }
    }
    let fan_secs = started.elapsed().as_secs_f64();
    relay_task.abort();
    fan_task.abort();
    // The database agrees: every delivery is stamped as confirmed on the bus.
    let stamped = scalar(
        &db.conn,
        "SELECT COUNT(*) FROM messages WHERE enqueued_at IS NOT NULL",
    )
    .await?;
    anyhow::ensure!(stamped >= n, "only {stamped} of {n} deliveries stamped");
    drop_queue(&fan_bus.queue_name(ROUTE));
    let fan_rate = n as f64 / fan_secs;

    // (b) Firing lateness: many schedules due in the same second.
    let late_db = TestDatabase::create(Backend::Postgres).await?;
    late_db
        .conn
        .execute_unprepared(&format!(
            "INSERT INTO scheduled_messages (message, recipients, tag_ids, scheduled_time, recurrence, timezone,
                                             occurrence_count, status, next_run_at, created_by, created_at, updated_at)
             SELECT 'hi', '[]', '[]', date_trunc('second', now()) + interval '3 seconds', 'daily', 'UTC', 0, 'pending',
                    date_trunc('second', now()) + interval '3 seconds', 'bench', now(), now()
             FROM generate_series(1, {schedules}) g"
        ))
        .await?;
    let late_ctx = heydoc_scheduler::SchedulerContext {
        db: late_db.conn.clone(),
        settings: settings.scheduler.clone(),
        business_number: ROUTE.into(),
        wake: Default::default(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(heydoc_scheduler::run(late_ctx, stop.clone()));
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if scalar(&late_db.conn, "SELECT COUNT(*) FROM occurrences").await? >= schedules {
            break;
        }
    }
    stop.cancel();
    let _ = runner.await;
    let rows = late_db
        .conn
        .query_all(Statement::from_string(
            late_db.conn.get_database_backend(),
            "SELECT (EXTRACT(EPOCH FROM (created_at - fire_at)) * 1000)::bigint FROM occurrences ORDER BY 1",
        ))
        .await?;
    let late: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect();
    let pct = |p: f64| {
        late.get(((late.len() as f64 * p) as usize).min(late.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };

    println!("\nScheduler benchmark on this machine (PostgreSQL + RabbitMQ):");
    println!("  ceiling: lapin publishing {n} confirmed jobs          {ceiling:>9.0} jobs/s");
    println!(
        "  (a) fan-out of one schedule to {n} recipients, every delivery confirmed on RabbitMQ:"
    );
    println!(
        "      {fan_secs:.1} s, {fan_rate:.0} deliveries/s, {:.2} of the ceiling (target >= 0.5)",
        fan_rate / ceiling
    );
    println!(
        "  (b) firing lateness of {schedules} schedules due in the same second (tick {} ms):",
        settings.scheduler.tick_ms
    );
    println!(
        "      p50 {} ms, p99 {} ms, max {} ms (target p99 < 1000 ms; Sidekiq polls every 5 s, sidekiq-cron every 30 s)",
        pct(0.5),
        pct(0.99),
        late.last().copied().unwrap_or(0)
    );
    Ok(())
}
