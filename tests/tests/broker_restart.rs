//! RabbitMQ restarts in the middle of a run: nothing is lost and the services reconnect by
//! themselves. Its own test binary, because it stops the broker every other test uses.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use heydoc_e2e::stack::{BusKind, Stack};
use heydoc_testkit::{json, Backend};
use sea_orm::{ConnectionTrait, Statement};

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl (the broker restart test needs it)");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_run_loses_nothing() {
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| s.sender.mps = 100).await;
    stack
        .sandbox
        .set_knobs(heydoc_whatsapp::sandbox::SandboxKnobs {
            status_webhooks: false,
            ..Default::default()
        });
    let api = stack.app.admin().await;
    for i in 0..150 {
        let (s, _) = api
            .post(
                "/api/send_message",
                &json!({"phone_number": format!("1555040{i:04}"), "message": "before"}),
            )
            .await;
        assert_eq!(s, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl(&["stop_app"]);
    // Sends accepted while the broker is down wait in the outbox.
    for i in 150..300 {
        let (s, _) = api
            .post(
                "/api/send_message",
                &json!({"phone_number": format!("1555040{i:04}"), "message": "during"}),
            )
            .await;
        assert_eq!(s, 200);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    let db = stack.app.db.conn.clone();
    let sent = eventually_or_report(&stack, &db).await;
    assert_eq!(sent, 300, "every send went out after the restart");
    let stats = stack.sandbox.stats();
    assert_eq!(stats.accepted, 300);
    assert!(
        stats.by_callback.values().all(|&n| n == 1),
        "a delivery was sent twice"
    );
    assert!(stack.bus.is_ready(), "the publisher reconnected");
}

/// Waits up to 90 s for the 300 sends; on timeout, says where the rest are (by status, on the
/// bus or not) and whether the publisher is connected, instead of only "timed out".
async fn eventually_or_report(stack: &Stack, db: &sea_orm::DatabaseConnection) -> i64 {
    let started = std::time::Instant::now();
    loop {
        let sent = count(db, "status = 'sent'").await;
        if sent == 300 || started.elapsed() > Duration::from_secs(90) {
            if sent != 300 {
                let rows = db
                    .query_all(Statement::from_string(
                        db.get_database_backend(),
                        "SELECT status, enqueued_at IS NOT NULL, COUNT(*) FROM messages \
                         WHERE direction = 'outgoing' GROUP BY 1, 2",
                    ))
                    .await
                    .unwrap();
                let by_status: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "{} (on bus {}): {}",
                            r.try_get_by_index::<String>(0).unwrap(),
                            r.try_get_by_index::<bool>(1).unwrap(),
                            r.try_get_by_index::<i64>(2).unwrap()
                        )
                    })
                    .collect();
                eprintln!(
                    "after 90 s: {by_status:?}; publisher ready: {}; sandbox accepted {}",
                    stack.bus.is_ready(),
                    stack.sandbox.stats().accepted
                );
            }
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(db: &sea_orm::DatabaseConnection, condition: &str) -> i64 {
    let Ok(Some(row)) = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM messages WHERE direction = 'outgoing' AND {condition}"),
        ))
        .await
    else {
        return -1;
    };
    row.try_get_by_index::<i64>(0).unwrap_or(-1)
}
