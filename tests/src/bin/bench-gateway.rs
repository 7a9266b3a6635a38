//! Gateway benchmark (`make bench`): PostgreSQL with 10,000 contacts and 1,000,000 messages;
//! requests/s and p50/p99 for `GET /api/contacts?limit=50`, `GET /api/messages/{phone}?limit=20`
//! and the team inbox's conversation list in each of its views (all, mine, unassigned, needs
//! reply, by tag, searching a name and searching message text) at 64 connections, next to a
//! trivial axum handler in the same process (the framework ceiling). Prints figures and the
//! ratio to the ceiling; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::Context;
use heydoc_e2e::load::{run_get, LoadReport};
use heydoc_testkit::{Backend, TestApp};
use sea_orm::ConnectionTrait;

/// The same allocator as the `heydoc` binary, so the figures are the production build's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONTACTS: i64 = 10_000;
const MESSAGES: i64 = 1_000_000;
const CONNECTIONS: usize = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let duration = Duration::from_secs(seconds);
    let warmup = Duration::from_secs(2);

    let app = TestApp::spawn_with(Backend::Postgres, |s| s.db_max_connections = 32).await;
    let started = Instant::now();
    seed(&app.db.conn).await.context("seeding")?;
    println!(
        "seeded {CONTACTS} contacts and {MESSAGES} messages on PostgreSQL in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let api = app.admin().await;
    let token = api_token(&app).await;
    drop(api);
    // The team's work on top: a fifth of the conversations are the admin's, a quarter wait
    // for a reply, some are pending.
    app.db
        .conn
        .execute_unprepared(
            "UPDATE contacts SET conversation_at = last_message_at,
                    awaiting_reply = (id % 4 = 0),
                    assignee_id = CASE WHEN id % 5 = 0 THEN (SELECT min(id) FROM users) END,
                    conversation_status = CASE WHEN id % 11 = 0 THEN 'pending' ELSE 'open' END;
             ANALYZE contacts",
        )
        .await
        .context("the conversations")?;

    let ceiling_addr = spawn_trivial_axum().await?;
    let ceiling = run_get(
        &format!("http://{ceiling_addr}/"),
        None,
        CONNECTIONS,
        warmup,
        duration,
    )
    .await;
    // The busiest chat: 1,000,000 / 10,000 = 100 messages each; any phone will do.
    let phone = "15550005000";
    let messages = run_get(
        &app.url(&format!("/api/messages/{phone}?limit=20")),
        Some(&token),
        CONNECTIONS,
        warmup,
        duration,
    )
    .await;
    let contacts = run_get(
        &app.url("/api/contacts?limit=50"),
        Some(&token),
        CONNECTIONS,
        warmup,
        duration,
    )
    .await;

    let views = [
        ("all", "/api/conversations?limit=50"),
        ("mine", "/api/conversations?view=mine&limit=50"),
        ("unassigned", "/api/conversations?view=unassigned&limit=50"),
        (
            "needs reply",
            "/api/conversations?view=needs_reply&limit=50",
        ),
        ("by tag", "/api/conversations?tag=1&limit=50"),
        ("name search", "/api/conversations?q=Contact%20123&limit=50"),
        (
            "text search",
            "/api/conversations?q=number%20999999&limit=50",
        ),
        ("view counts", "/api/conversations/counts"),
    ];
    let mut conversation_reports = Vec::new();
    for (name, path) in views {
        let report = run_get(&app.url(path), Some(&token), CONNECTIONS, warmup, duration).await;
        conversation_reports.push((name, path, report));
    }

    println!("\n{CONNECTIONS} connections, {seconds} s each, client and server on this machine:");
    println!("{}", ceiling.line("trivial axum handler (ceiling)"));
    println!("{}", messages.line("GET /api/messages/{phone}?limit=20"));
    println!("{}", contacts.line("GET /api/contacts?limit=50"));
    for (_, path, report) in &conversation_reports {
        println!("{}", report.line(&format!("GET {path}")));
    }
    println!();
    report_ratio("messages", &messages, &ceiling);
    report_ratio("contacts", &contacts, &ceiling);
    for (name, _, report) in &conversation_reports {
        report_ratio(&format!("conversations, {name}"), report, &ceiling);
    }
    println!("targets: p99 under 20 ms; messages at least 1/3 of the ceiling's requests/s;");
    println!("         the conversation list and its views at least 10,000 requests/s");
    app.stop().await;
    Ok(())
}

fn report_ratio(name: &str, r: &LoadReport, ceiling: &LoadReport) {
    println!(
        "{name}: {:.2}x the ceiling's requests/s (1/{:.1}), p99 {:.2} ms",
        r.rps() / ceiling.rps(),
        ceiling.rps() / r.rps().max(1.0),
        r.p99.as_secs_f64() * 1000.0
    );
}

async fn api_token(app: &TestApp) -> String {
    app.login("admin", "correct-horse-battery").await
}

/// Bulk-loads contacts and messages with set-based SQL (the benchmark measures reads).
async fn seed(db: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared(&format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_message, last_message_at, last_activity_at,
                               message_count, unread_count, created_at, updated_at)
         SELECT (15550000000 + g)::text, 'Contact ' || g, false, '{{}}'::json, 'message ' || g,
                now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval,
                {per}, g % 3, now(), now()
         FROM generate_series(0, {last}) AS g",
        per = MESSAGES / CONTACTS,
        last = CONTACTS - 1
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO messages (contact_id, message_id, direction, sender_phone, receiver_phone, message_type,
                               message_text, timestamp, is_read, status, attempts, origin, updated_at)
         SELECT c.id, 'wamid.bench' || g, CASE WHEN g % 2 = 0 THEN 'incoming' ELSE 'outgoing' END,
                c.phone, '15550001111', 'text', 'Benchmark message number ' || g,
                now() - ((({total} - g)) || ' seconds')::interval, true, 'read', 0, 'api', now()
         FROM generate_series(0, {last}) AS g
         JOIN contacts c ON c.id = 1 + (g % {contacts})",
        total = MESSAGES,
        last = MESSAGES - 1,
        contacts = CONTACTS
    ))
    .await?;
    db.execute_unprepared(
        "INSERT INTO tags (name, color, created_at) VALUES ('VIP', '#ff4444', now())",
    )
    .await?;
    db.execute_unprepared(
        "INSERT INTO contact_tags (contact_id, tag_id) SELECT id, 1 FROM contacts WHERE id % 7 = 0",
    )
    .await?;
    db.execute_unprepared("ANALYZE").await?;
    Ok(())
}

async fn spawn_trivial_axum() -> anyhow::Result<std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::Json(serde_json::json!([{"ok": true}])) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
