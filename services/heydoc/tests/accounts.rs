//! `heydoc admin create`: the first admin of an exposed install (or a way back in) made on the
//! machine, with no web request; the account signs in and the audit log says how it was made.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Process;

fn admin_create(data: &std::path::Path, username: &str, password: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_heydoc"))
        .args(["admin", "create", "--username", username])
        .env("HEYDOC_DATA_DIR", data)
        .env("HEYDOC_ADMIN_PASSWORD", password)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_admin_made_on_the_command_line_signs_in() {
    let data =
        std::env::temp_dir().join(format!("heydoc-accounts-{}", uuid::Uuid::new_v4().simple()));
    let made = admin_create(&data, "boss", "a-long-password");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(String::from_utf8_lossy(&made.stdout).contains("Admin boss created"));
    let again = admin_create(&data, "BOSS", "another-password");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("taken"));
    let short = admin_create(&data, "second", "short");
    assert!(!short.status.success(), "the password rules hold here too");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut heydoc = Process::new(
        Command::new(env!("CARGO_BIN_EXE_heydoc"))
            .arg("all")
            .env("HEYDOC_DATA_DIR", &data)
            .env("HEYDOC_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("HEYDOC_ADMIN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "heydoc all did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login = common::login(&base, "boss", "a-long-password").await;
    assert_eq!(login["data"]["user"]["role"], "admin", "{login}");
    let token = login["data"]["token"].as_str().unwrap();
    let log: serde_json::Value = client
        .get(format!("{base}/api/audit"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made_by = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.create")
        .map(|e| e["actor"].clone());
    assert_eq!(made_by, Some("heydoc admin create".into()), "{log}");
    heydoc.terminate(Duration::from_secs(20)).await;
    let _ = std::fs::remove_dir_all(&data);
}
