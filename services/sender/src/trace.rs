//! The sender's spans (OpenTelemetry messaging and database conventions) and its send metrics.

use std::collections::HashMap;

use heydoc_queue::Received;
use heydoc_store::deliveries::Outcome;
use heydoc_store::messages::Message;
use heydoc_store::Db;

/// The span of one job, from its receipt to its result: a child of the context its headers
/// carry (the API request, or the previous attempt), or a new trace.
pub fn delivery_span(route: &str, received: &Received) -> tracing::Span {
    let delivery_id = received
        .job
        .as_ref()
        .map(|j| j.delivery_id)
        .unwrap_or_default();
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("process {route}"),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %route,
        messaging.message.id = delivery_id,
        heydoc.delivery_id = delivery_id,
        heydoc.redelivered = received.redelivered,
        heydoc.outcome = tracing::field::Empty,
        heydoc.duplicate = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Ok(job) = &received.job {
        heydoc_telemetry::propagation::set_parent(&span, &job.headers);
    }
    span
}

/// One child span per parent, for a step taken for the whole batch at once (the spans end when
/// the returned vector is dropped).
pub fn children(
    parents: &[tracing::Span],
    make: impl Fn(&tracing::Span) -> tracing::Span,
) -> Vec<tracing::Span> {
    parents.iter().map(make).collect()
}

pub fn claim_span(parent: &tracing::Span, db: &Db) -> tracing::Span {
    tracing::info_span!(
        parent: parent,
        "claim",
        otel.name = "UPDATE messages",
        otel.kind = "client",
        db.system.name = heydoc_store::system_name(db),
        db.operation.name = "UPDATE",
        db.collection.name = "messages",
    )
}

/// (delivery id, `traceparent`) of each job's span, when traces are recorded.
pub fn contexts(received: &[Received], spans: &[tracing::Span]) -> Vec<(i64, String)> {
    if !heydoc_telemetry::enabled() {
        return Vec::new();
    }
    received
        .iter()
        .zip(spans)
        .filter_map(|(r, span)| {
            let id = r.job.as_ref().ok()?.delivery_id;
            Some((id, heydoc_telemetry::propagation::traceparent_of(span)?))
        })
        .collect()
}

/// The stored trace contexts of the claimed rows' occurrences (campaign deliveries link to
/// them); nothing is read when traces are not recorded.
pub async fn occurrence_contexts(db: &Db, rows: &[Message]) -> HashMap<i64, String> {
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.occurrence_id).collect();
    if ids.is_empty() || !heydoc_telemetry::enabled() {
        return HashMap::new();
    }
    let found = heydoc_store::occurrences::trace_contexts(db, &ids).await;
    match found {
        Ok(rows) => rows.into_iter().collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read occurrence trace contexts");
            HashMap::new()
        }
    }
}

/// Records the outcome on the delivery span and in `heydoc_sends_total{outcome,code}`.
pub fn record_outcome(span: &tracing::Span, outcome: &Outcome) {
    let label = outcome.label();
    let code = match outcome {
        Outcome::Retry { code, .. } | Outcome::Failed { code, .. } => {
            code.map_or_else(String::new, |c| c.to_string())
        }
        _ => String::new(),
    };
    span.record("heydoc.outcome", label);
    if matches!(outcome, Outcome::Failed { .. } | Outcome::Unknown { .. }) {
        span.record("otel.status_code", "ERROR");
        span.record(
            "error.type",
            if code.is_empty() {
                label
            } else {
                code.as_str()
            },
        );
    }
    metrics::counter!(heydoc_telemetry::metrics::SENDS, "outcome" => label, "code" => code)
        .increment(1);
}
