//! `/metrics` in Prometheus format, and the counters moving when a send and a campaign happen.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_testkit::{json, Backend};

const LIMIT: Duration = Duration::from_secs(60);

/// The sum of the samples of `name` whose labels include `labels` (0 when there is none).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

async fn scrape(stack: &Stack) -> String {
    let res = reqwest::get(stack.app.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_a_send_and_a_campaign_happen() {
    // The processes serve /metrics on their admin address; this stack's gateway serves it on its
    // own address too (the setting), so the test scrapes one place.
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |s| {
        s.metrics_on_http_addr = true;
    })
    .await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let before = scrape(&stack).await;

    let (status, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "15550903333", "message": "counted"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "campaign", "recipients": ["15550903334"],
                    "scheduled_time": (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Both sends read (the sandbox's webhooks), and the reconciler has sampled nothing in flight.
    let after = eventually(LIMIT, "both sends read and sampled", || {
        let stack = &stack;
        async move {
            let now = scrape(stack).await;
            (sample(
                &now,
                "heydoc_webhook_events_total",
                &[("kind", "status"), ("status", "read")],
            ) >= 2.0
                && now.contains("heydoc_deliveries{status=\"queued\"} 0")
                && now.contains("heydoc_deliveries{status=\"sending\"} 0"))
            .then_some(now)
        }
    })
    .await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };

    assert_eq!(
        moved(
            "http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/send_message"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert!(
        moved(
            "http_request_duration_seconds_count",
            &[("route", "/api/scheduled-messages")]
        ) >= 1.0
    );
    assert_eq!(moved("heydoc_sends_total", &[("outcome", "sent")]), 2.0);
    assert_eq!(
        moved("heydoc_whatsapp_request_duration_seconds_count", &[]),
        2.0
    );
    assert!(moved("heydoc_pacing_wait_seconds_count", &[]) >= 2.0);
    assert!(moved("heydoc_queue_published_total", &[]) >= 2.0);
    assert!(moved("heydoc_queue_publish_seconds_count", &[]) >= 1.0);
    assert!(
        moved(
            "heydoc_webhook_events_total",
            &[("kind", "status"), ("status", "delivered")]
        ) >= 2.0
    );
    assert_eq!(
        moved("heydoc_occurrences_total", &[("state", "fanning_out")]),
        1.0
    );
    assert_eq!(moved("heydoc_scheduler_lateness_seconds_count", &[]), 1.0);
    assert_eq!(moved("heydoc_fanout_deliveries_total", &[]), 1.0);
    assert!(sample(&after, "heydoc_db_pool_max_connections", &[]) >= 1.0);
    assert!(after.contains("heydoc_db_pool_connections{state=\"in_use\"}"));
    assert!(after.contains("# TYPE http_request_duration_seconds histogram"));
}
