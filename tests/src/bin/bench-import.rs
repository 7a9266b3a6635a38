//! Import benchmark (`make bench`): a real `heydoc gateway` process on PostgreSQL imports CSVs
//! of 100,000 and 400,000 contacts (0.3% bad rows, two tags each) through
//! `POST /api/contacts/import`; rows/s and the gateway's peak RSS after each, so that flat
//! memory shows as the same peak for four times the rows. The baseline is the database alone:
//! the same number of contacts inserted by one `INSERT ... SELECT generate_series` statement.
//! Prints figures; asserts nothing.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use heydoc_e2e::peak_rss_kb;
use heydoc_testkit::{Backend, TestDatabase};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let heydoc = std::env::var("HEYDOC_BIN").unwrap_or_else(|_| "target/release/heydoc".into());
    let db = TestDatabase::create(Backend::Postgres).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut gateway = Command::new(&heydoc)
        .arg("gateway")
        .env("DATABASE_URL", &db.url)
        .env("HEYDOC_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", "bench-import-secret")
        .env("HEYDOC_ADMIN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {heydoc} (cargo build --release -p heydoc)"))?;
    let pid = gateway.id();
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let creds = json!({"username": "admin", "password": "bench-import-pass"});
    client
        .post(format!("{base}/register"))
        .json(&creds)
        .send()
        .await?;
    let login: Value = client
        .post(format!("{base}/login"))
        .json(&creds)
        .send()
        .await?
        .json()
        .await?;
    let token = login["data"]["token"]
        .as_str()
        .context("token")?
        .to_string();
    let idle_kb = peak_rss_kb(pid).unwrap_or(0);

    println!("\nContact import through a heydoc gateway process on PostgreSQL, on this machine:");
    println!(
        "  gateway RSS before importing: {:.1} MB",
        idle_kb as f64 / 1024.0
    );
    let mut first_rate = 0.0;
    let mut offset = 0u64;
    for rows in [100_000u64, 400_000] {
        let csv = make_csv(offset, rows);
        offset += rows;
        let bytes = csv.len();
        let t = Instant::now();
        let answer: Value = client
            .post(format!("{base}/api/contacts/import"))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await?
            .json()
            .await?;
        let id = answer["data"]["id"].as_i64().context("import id")?;
        let mut peak_kb = 0u64;
        let result = loop {
            peak_kb = peak_kb.max(peak_rss_kb(pid).unwrap_or(0));
            let now: Value = client
                .get(format!("{base}/api/imports/{id}"))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            if now["status"] != "running" {
                break now;
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(900), "import too slow");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let elapsed = t.elapsed();
        peak_kb = peak_kb.max(peak_rss_kb(pid).unwrap_or(0));
        let rate = rows as f64 / elapsed.as_secs_f64();
        if first_rate == 0.0 {
            first_rate = rate;
        }
        println!(
            "  {rows:>7} rows ({:.1} MB): {:>8.0} rows/s ({:.1} s), {} created, {} rejected, status {}; peak RSS so far {:.1} MB",
            bytes as f64 / 1e6,
            rate,
            elapsed.as_secs_f64(),
            result["created"],
            result["rejected"],
            result["status"],
            peak_kb as f64 / 1024.0
        );
    }
    let _ = gateway.kill();
    let _ = gateway.wait();

    let ceiling = insert_ceiling(100_000).await?;
    println!("  baseline: PostgreSQL inserting 100,000 contacts in one INSERT ... SELECT: {ceiling:>8.0} rows/s");
    println!(
        "  ratio of the 100,000-row import to the baseline: {:.2}",
        first_rate / ceiling
    );
    println!("  flat memory: the peak after 400,000 rows should match the peak after 100,000");
    Ok(())
}

/// `rows` contacts starting at `offset`; every 333rd row has a bad phone.
fn make_csv(offset: u64, rows: u64) -> String {
    let mut csv = String::with_capacity(rows as usize * 48);
    csv.push_str("phone,name,tags,plan\n");
    for i in offset..offset + rows {
        if i % 333 == 7 {
            let _ = writeln!(csv, "12x{i},Bad {i},,");
        } else {
            let _ = writeln!(csv, "9170{i:08},Patient {i},Clinic;Batch{},basic", i % 10);
        }
    }
    csv
}

/// The database alone: `n` contacts in one statement, in a database of its own.
async fn insert_ceiling(n: u64) -> anyhow::Result<f64> {
    let db = TestDatabase::create(Backend::Postgres).await?;
    let t = Instant::now();
    db.conn
        .execute_unprepared(&format!(
            "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
             SELECT (9170000000000 + g)::text, 'Patient ' || g, false, '{{\"plan\":\"basic\"}}'::json, now(), 0, 0, now(), now()
             FROM generate_series(1, {n}) g"
        ))
        .await?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}
