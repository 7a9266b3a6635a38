//! The W3C trace context (`traceparent`, `tracestate`) between processes: into and out of AMQP
//! headers, HTTP headers, and the `trace_context` column rows keep for the relay, the webhooks
//! and the fan-out (the row outlives the request that created it).

use std::collections::BTreeMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";

struct Headers<'a>(&'a mut BTreeMap<String, String>);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

struct ReadHeaders<'a>(&'a BTreeMap<String, String>);

impl Extractor for ReadHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The trace context of `span` as headers; empty when tracing is off or the span is not sampled.
pub fn headers_of(span: &tracing::Span) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut Headers(&mut headers));
    }
    headers
}

/// The `traceparent` of `span`, for storing with a row.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    headers_of(span).remove(TRACEPARENT)
}

/// The context carried by `headers` (an empty context when they carry none).
pub fn context_from(headers: &BTreeMap<String, String>) -> Context {
    TraceContextPropagator::new().extract(&ReadHeaders(headers))
}

/// The context a stored `traceparent` names.
pub fn context_from_traceparent(traceparent: &str) -> Context {
    let headers = BTreeMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    context_from(&headers)
}

/// Makes `span` a child of the context in `headers`, if they carry one. Call it right after
/// creating the span.
pub fn set_parent(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    let cx = context_from(headers);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` a child of a stored `traceparent`.
pub fn set_parent_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let cx = context_from_traceparent(tp);
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
}

/// Links `span` to the span a stored `traceparent` names (a related trace, not a parent).
pub fn link(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let cx = context_from_traceparent(tp);
        let target = cx.span().span_context().clone();
        if target.is_valid() {
            span.add_link(target);
        }
    }
}

/// The trace id of the current span, hex, when there is one.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_traceparent_round_trips() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_from_traceparent(tp);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(!context_from_traceparent("garbage")
            .span()
            .span_context()
            .is_valid());
    }
}
