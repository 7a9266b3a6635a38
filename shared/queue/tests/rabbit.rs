//! The RabbitMQ backend against a real broker (`TEST_AMQP_URL`, default the local one), with
//! queue names of its own per test.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use heydoc_queue::rabbit::{RabbitBus, RabbitConfig};
use heydoc_queue::{Job, JobBus};

fn config(delivery_limit: u32) -> RabbitConfig {
    RabbitConfig {
        url: std::env::var("TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        prefix: format!(
            "heydoc-test-{}",
            std::process::id() as u64 * 1000 + rand_suffix()
        ),
        delivery_limit,
        queue_expiry_secs: 600,
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 1000
}

async fn recv(rx: &mut heydoc_queue::JobStream) -> heydoc_queue::Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a job within 10 s")
        .expect("stream open")
}

#[tokio::test]
async fn confirmed_jobs_arrive_and_unsettled_ones_come_back() {
    let bus = RabbitBus::connect(config(5)).await;
    assert!(bus.is_ready());
    bus.publish("15550001111", &[Job::new(1), Job::new(2)])
        .await
        .unwrap();
    let mut rx = bus.consume("15550001111", 10).await.unwrap();
    let first = recv(&mut rx).await;
    assert_eq!(first.job.as_ref().unwrap().delivery_id, 1);
    first.ack().await;
    let second = recv(&mut rx).await;
    assert_eq!(second.job.as_ref().unwrap().delivery_id, 2);
    drop(second); // dropped unsettled: RabbitMQ delivers it again
    let again = recv(&mut rx).await;
    assert_eq!(again.job.as_ref().unwrap().delivery_id, 2);
    assert!(again.redelivered);
    again.ack().await;
}

#[tokio::test]
async fn trace_headers_ride_along() {
    let bus = RabbitBus::connect(config(5)).await;
    let mut job = Job::new(9);
    job.headers.insert(
        "traceparent".into(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    );
    bus.publish("r", std::slice::from_ref(&job)).await.unwrap();
    let mut rx = bus.consume("r", 1).await.unwrap();
    let got = recv(&mut rx).await;
    assert_eq!(got.job.as_ref().unwrap(), &job);
    got.ack().await;
}

#[tokio::test]
async fn rejected_and_overdelivered_jobs_are_dead_lettered() {
    let bus = RabbitBus::connect(config(2)).await;
    bus.publish("r", &[Job::new(1), Job::new(2)]).await.unwrap();
    let mut rx = bus.consume("r", 1).await.unwrap();
    recv(&mut rx).await.reject().await;
    // Job 2 is given back until the delivery limit sends it to the dead letters.
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            Ok(Some(r)) => r.requeue().await,
            _ => break,
        }
    }
    let mut dead = 0;
    for _ in 0..50 {
        dead = bus.dead_letters().await.unwrap();
        if dead == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead, 2);
}

/// A broker that accepts the TCP connection and never speaks (one starting up or half dead):
/// publishing fails within the operation timeout instead of hanging, and holds nothing up.
#[tokio::test]
async fn a_silent_broker_fails_the_publish_instead_of_hanging() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = config(5);
    config.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let bus = tokio::time::timeout(Duration::from_secs(60), RabbitBus::connect(config))
        .await
        .expect("connect returns while the broker is silent");
    let published = tokio::time::timeout(
        Duration::from_secs(60),
        bus.publish("silent", &[Job::new(1)]),
    )
    .await
    .expect("publish returns while the broker is silent");
    assert!(published.is_err(), "nothing was confirmed");
    assert!(!bus.is_ready());
}
