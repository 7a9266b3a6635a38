//! One trace per send, through the queue hop: the spans the gateway, the bus and the sender
//! export (to the SDK's in-memory exporter) for an API send on RabbitMQ, and for a campaign.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use heydoc_e2e::stack::{eventually, BusKind, Stack};
use heydoc_testkit::{json, Backend};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

const LIMIT: Duration = Duration::from_secs(60);

/// The process's exporter; the subscriber is installed once for the whole test binary.
fn exporter() -> InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            // The provider lives for the whole process: the tests read what it exported.
            std::mem::forget(heydoc_telemetry::init_for_tests(exporter.clone()));
            exporter
        })
        .clone()
}

/// Delivery ids are per database, so two tests at once would see each other's spans: they
/// take turns.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = TURN.lock().await;
    exporter().reset();
    turn
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_i64(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Value::I64(v) => Some(*v),
        Value::String(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

fn spans() -> Vec<SpanData> {
    exporter().get_finished_spans().unwrap()
}

/// The sender's span for a delivery, once it has ended.
async fn process_span(delivery_id: i64) -> SpanData {
    eventually(LIMIT, "the sender's span", || async move {
        spans().into_iter().find(|s| {
            s.span_kind == SpanKind::Consumer
                && attr_i64(s, "heydoc.delivery_id") == Some(delivery_id)
                && attr_str(s, "heydoc.outcome").as_deref() == Some("sent")
        })
    })
    .await
}

fn in_trace(trace: TraceId) -> Vec<SpanData> {
    spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect()
}

fn child_of(spans: &[SpanData], parent: SpanId, name: &str) -> bool {
    spans
        .iter()
        .any(|s| s.parent_span_id == parent && s.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_send_is_one_trace_from_the_request_through_rabbitmq_to_the_cloud_api() {
    let _turn = one_at_a_time().await;
    let stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    let api = stack.app.admin().await;
    let (status, body) = api
        .post(
            "/api/send_message",
            &json!({"phone_number": "15550901234", "message": "traced"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["id"].as_i64().unwrap();

    let process = process_span(id).await;
    let trace = process.span_context.trace_id();
    // The status webhooks (delivered, read) continue the same trace. Waits for both (the
    // sandbox also sends `sent` first, so two status spans are not yet these two).
    let all = eventually(LIMIT, "the status webhooks' spans", || async move {
        let all = in_trace(trace);
        let seen = |status: &str| {
            all.iter().any(|s| {
                attr_i64(s, "heydoc.delivery_id") == Some(id)
                    && s.name == format!("whatsapp status {status}")
            })
        };
        (seen("delivered") && seen("read")).then_some(all)
    })
    .await;
    // ... as children of the sender's span (its context is stored when it claims the row).
    for status in ["delivered", "read"] {
        let span = all
            .iter()
            .find(|s| s.name == format!("whatsapp status {status}"))
            .unwrap_or_else(|| panic!("no {status} span"));
        assert_eq!(
            span.parent_span_id,
            process.span_context.span_id(),
            "the {status} webhook continues the send"
        );
    }

    let server = all
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Server
                && attr_str(s, "http.route").as_deref() == Some("/api/send_message")
        })
        .expect("the gateway's request span is in the sender's trace");
    assert_eq!(server.name, "POST /api/send_message");
    assert_eq!(attr_i64(server, "http.response.status_code"), Some(200));
    // The queue hop: the sender's span is a child of the gateway's publish span (or, when the
    // relay published the row, of the request span the row stored).
    let publish = all.iter().find(|s| {
        s.span_kind == SpanKind::Producer && s.parent_span_id == server.span_context.span_id()
    });
    let parent = process.parent_span_id;
    assert!(
        publish.is_some_and(|p| p.span_context.span_id() == parent)
            || parent == server.span_context.span_id(),
        "the sender's span continues the gateway's: {:?}",
        all.iter()
            .map(|s| (&s.name, s.span_context.span_id(), s.parent_span_id))
            .collect::<Vec<_>>()
    );
    assert!(
        process.parent_span_is_remote,
        "the parent came through the queue"
    );
    assert_eq!(
        attr_str(&process, "messaging.system").as_deref(),
        Some("rabbitmq")
    );
    // Inside the send: the claim, the pacing wait, and the Cloud API call as a client span.
    let process_id = process.span_context.span_id();
    assert!(child_of(&all, process_id, "UPDATE messages"), "claim span");
    assert!(child_of(&all, process_id, "pacing wait"), "pacing span");
    let call = all
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Client && s.parent_span_id == process_id && s.name == "POST"
        })
        .expect("the Cloud API call's client span");
    assert_eq!(attr_i64(call, "http.response.status_code"), Some(200));
    assert!(attr_str(call, "url.full").unwrap().ends_with("/messages"));
    // ... and its traceparent reached the Cloud API (the sandbox saw this trace).
    let seen = stack.sandbox.stats().traceparents;
    assert!(
        seen.iter().any(|tp| tp.contains(&trace.to_string())),
        "the sandbox got the trace context: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_gives_each_delivery_its_own_trace_linked_to_its_occurrence() {
    let _turn = one_at_a_time().await;
    let mut stack = Stack::spawn(Backend::Postgres, BusKind::Rabbit, |_| {}).await;
    stack.start_scheduler().await;
    let api = stack.app.admin().await;
    let recipients = ["15550902001", "15550902002", "15550902003"];
    let (status, created) = api
        .post(
            "/api/scheduled-messages",
            &json!({"message": "campaign", "recipients": recipients,
                    "scheduled_time": (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let schedule_id = created["data"]["id"].as_i64().unwrap();
    let (_, deliveries) = eventually(LIMIT, "three deliveries", || {
        let api = api.clone();
        async move {
            let (s, d) = api
                .get(&format!("/api/scheduled-messages/{schedule_id}/deliveries"))
                .await;
            (d.as_array().map(Vec::len) == Some(3)).then_some((s, d))
        }
    })
    .await;
    let ids: Vec<i64> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();

    let occurrence = eventually(LIMIT, "the occurrence span", || async move {
        spans().into_iter().find(|s| {
            attr_i64(s, "heydoc.schedule_id") == Some(schedule_id)
                && s.name.starts_with("fire schedule")
        })
    })
    .await;
    // The occurrence links to the request that created the schedule.
    let create_request = spans().into_iter().find(|s| {
        s.span_kind == SpanKind::Server
            && attr_str(s, "http.route").as_deref() == Some("/api/scheduled-messages")
            && s.links.iter().next().is_none()
            && occurrence
                .links
                .iter()
                .any(|l| l.span_context.span_id() == s.span_context.span_id())
    });
    assert!(
        create_request.is_some(),
        "the occurrence links to the creating request"
    );
    // The fan-out chunk is the occurrence's child.
    let occurrence_id = occurrence.span_context.span_id();
    assert!(
        in_trace(occurrence.span_context.trace_id())
            .iter()
            .any(|s| s.name == "fan-out chunk" && s.parent_span_id == occurrence_id),
        "fan-out chunk span under the occurrence"
    );
    // One trace per delivery, each linked to the occurrence.
    let mut traces = Vec::new();
    for id in ids {
        let process = process_span(id).await;
        assert!(
            process
                .links
                .iter()
                .any(|l| l.span_context.span_id() == occurrence_id),
            "delivery {id} links to its occurrence {occurrence_id}: {:?}",
            process
                .links
                .iter()
                .map(|l| l.span_context.clone())
                .collect::<Vec<_>>()
        );
        assert_ne!(
            process.span_context.trace_id(),
            occurrence.span_context.trace_id()
        );
        traces.push(process.span_context.trace_id());
    }
    traces.sort_by_key(|t| t.to_string());
    traces.dedup();
    assert_eq!(traces.len(), 3, "one trace per delivery");
}
