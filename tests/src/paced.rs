//! What the tests of sending at a real pace share: a paced stack (PostgreSQL, RabbitMQ, a
//! scheduler and the sender), audiences made in one statement, campaigns, and counts read from
//! the sandbox (what reached "WhatsApp") and the database.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use heydoc_testkit::{json, Api, Backend};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};

use crate::stack::{eventually, BusKind, Stack};

pub const LIMIT: Duration = Duration::from_secs(120);

pub async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// SQL (PostgreSQL) adding `n` contacts with phones `first + 1 ..= first + n`.
pub fn contacts_sql(first: i64, n: i64) -> String {
    format!(
        "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
         SELECT ({first} + g)::text, '', false, '{{}}'::json, now(), 0, 0, now(), now() FROM generate_series(1, {n}) g;"
    )
}

/// `n` contacts with phones `first + 1 ..= first + n`, all carrying a new tag; returns its id.
pub async fn audience(stack: &Stack, api: &Api, tag: &str, first: i64, n: i64) -> i64 {
    let (s, body) = api.post("/api/tags", &json!({"name": tag})).await;
    assert_eq!(s, 201, "{body}");
    let tag_id = body["data"]["id"].as_i64().unwrap();
    let db = &stack.app.db.conn;
    let sql = match db.get_database_backend() {
        DatabaseBackend::Postgres => format!(
            "{}
             INSERT INTO contact_tags (contact_id, tag_id)
             SELECT id, {tag_id} FROM contacts WHERE phone::bigint BETWEEN {first} + 1 AND {first} + {n};",
            contacts_sql(first, n)
        ),
        _ => format!(
            "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {n})
             INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
             SELECT CAST({first} + g AS TEXT), '', 0, '{{}}', strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), 0, 0,
                    strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now') FROM seq;
             INSERT INTO contact_tags (contact_id, tag_id)
             SELECT id, {tag_id} FROM contacts WHERE CAST(phone AS INTEGER) BETWEEN {first} + 1 AND {first} + {n};"
        ),
    };
    db.execute_unprepared(&sql).await.unwrap();
    tag_id
}

/// A text campaign, due now, to `n` new contacts carrying a new tag `tag`.
pub async fn tagged_campaign(
    stack: &Stack,
    api: &Api,
    tag: &str,
    first: i64,
    n: i64,
    message: &str,
) -> i64 {
    let tag = audience(stack, api, tag, first, n).await;
    campaign(
        api,
        json!({"message": message, "tag_ids": [tag], "scheduled_time": soon()}),
    )
    .await
}

pub async fn campaign(api: &Api, body: serde_json::Value) -> i64 {
    let (s, created) = api.post("/api/scheduled-messages", &body).await;
    assert_eq!(s, 201, "{created}");
    created["data"]["id"].as_i64().unwrap()
}

/// PostgreSQL, RabbitMQ, a scheduler and the sender at `mps` messages per second.
/// These tests measure sending rates, so they run one at a time: two at once share the
/// machine's two cores with each other's gateway, scheduler, sender and broker traffic, and
/// each then measures the other's load instead of its own pacing.
pub static PACE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    PACE.lock().await
}

pub async fn paced(mps: u32, configure: impl FnOnce(&mut heydoc_config::Settings)) -> (Stack, Api) {
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.sender.mps = mps;
        configure(s);
    })
    .await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    (stack, api)
}

pub fn soon() -> String {
    (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()
}

pub async fn set_status(api: &Api, id: i64, status: &str) {
    let (s, body) = api
        .put(
            &format!("/api/scheduled-messages/{id}/status"),
            &json!({"status": status}),
        )
        .await;
    assert_eq!(s, 200, "{status}: {body}");
}

/// Messages the sandbox accepted to phones `first + 1 ..= first + n`.
pub fn accepted_in(stack: &Stack, first: i64, n: i64) -> u64 {
    stack
        .sandbox
        .stats()
        .by_recipient
        .iter()
        .filter(|(phone, _)| {
            phone
                .parse::<i64>()
                .is_ok_and(|p| p > first && p <= first + n)
        })
        .map(|(_, n)| *n)
        .sum()
}

pub async fn wait_accepted(stack: &Stack, at_least: u64) {
    eventually(LIMIT, &format!("{at_least} sends accepted"), || async {
        (stack.sandbox.stats().accepted >= at_least).then_some(())
    })
    .await;
}

/// Sends per second accepted over `span`, measured by the sandbox.
pub async fn rate_over(stack: &Stack, span: Duration) -> f64 {
    let (t0, n0) = (Instant::now(), stack.sandbox.stats().accepted);
    tokio::time::sleep(span).await;
    let n1 = stack.sandbox.stats().accepted;
    (n1 - n0) as f64 / t0.elapsed().as_secs_f64()
}

pub fn no_double_sends(stack: &Stack) {
    let stats = stack.sandbox.stats();
    let doubles: Vec<_> = stats.by_callback.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubles.is_empty(), "sent twice: {doubles:?}");
}
