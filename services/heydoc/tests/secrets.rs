//! Secrets nobody has to write in a file others read: the session-signing secret generated
//! once and shared by every replica through the database, `heydoc secrets` for what a
//! deployment's services share, and a refusal to serve other machines with a secret that is
//! published in HeyDoc's own files.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{admin_token, free_port, wait_ok, Process, APP_SECRET, ROUTE};
use heydoc_testkit::{Backend, TestDatabase};

fn gateway(db_url: &str, addr: &str, extra: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heydoc"));
    command
        .arg("gateway")
        .env("DATABASE_URL", db_url)
        .env("HEYDOC_HTTP_ADDR", addr)
        .env("HEYDOC_ADMIN_ADDR", "127.0.0.1:0")
        .env("WHATSAPP_APP_SECRET", APP_SECRET)
        .env("WHATSAPP_PHONE_NUMBER_ID", ROUTE)
        .env("HEYDOC_WHATSAPP__TEMPLATE_SYNC_SECS", "0")
        .env_remove("JWT_SECRET")
        .env("RUST_LOG", "warn");
    for (k, v) in extra {
        command.env(k, v);
    }
    command
}

/// Reachable from other machines with the compose file's old secret: it does not start, and
/// says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_secret_is_refused_beyond_loopback() {
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    let addr = format!("0.0.0.0:{}", free_port());
    let mut child = Process::new(
        gateway(
            &db.url,
            &addr,
            &[("JWT_SECRET", "compose-only-jwt-secret-0123456789abcdef")],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "it started serving with a published secret"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("published"), "{stderr}");
}

/// Two gateways on one database and no JWT_SECRET: the first to start generates the secret
/// and keeps it in the database, so a session made on one is good on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_generated_signing_secret() {
    let db = TestDatabase::create(Backend::Postgres).await.unwrap();
    heydoc_store::migrate(&db.conn).await.unwrap();
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let spawn = |addr: &str| {
        Process::new(
            gateway(&db.url, addr, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let (first, second) = (spawn(&a), spawn(&b));
    wait_ok(&format!("http://{a}/healthz"), Duration::from_secs(30)).await;
    wait_ok(&format!("http://{b}/healthz"), Duration::from_secs(30)).await;
    let token = admin_token(&format!("http://{a}")).await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{b}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "the other replica refused it");
    assert_eq!(
        heydoc_testkit::sql::scalar(
            &db.conn,
            "SELECT COUNT(*) FROM install_secrets WHERE name = 'jwt_secret'"
        )
        .await,
        1
    );
    drop((first, second));
}

/// `heydoc secrets <dir>` writes what the services share, readable by its owner only, and
/// keeps what is there on the next start.
#[test]
fn the_shared_secrets_are_generated_once() {
    let dir = std::env::temp_dir().join(format!("heydoc-secrets-{}", uuid::Uuid::new_v4()));
    let run = || {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_heydoc"))
            .arg("secrets")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
    };
    run();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let secret = read("whatsapp-app-secret");
    assert!(secret.len() >= 32, "{secret}");
    assert_ne!(secret, read("whatsapp-verify-token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("whatsapp-app-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
    }
    run();
    assert_eq!(read("whatsapp-app-secret"), secret, "kept");
    let _ = std::fs::remove_dir_all(dir);
}
