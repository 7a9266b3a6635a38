//! What the gateway tells operations: a server span per request (OpenTelemetry HTTP
//! conventions, continuing an incoming `traceparent`), request metrics by route and status,
//! and `/metrics`.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Response};
use axum::middleware::Next;
use axum::response::IntoResponse;
use heydoc_telemetry::metrics::{HTTP_DURATION, HTTP_REQUESTS};

use crate::state::AppState;

/// The route template (`/api/messages/{phone}`), never the raw path: labels stay few.
fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string())
}

/// The method, or `_OTHER` for a non-standard one (any token is a valid method: labels and
/// span names must not grow with what clients make up).
fn method_of(req: &Request) -> &'static str {
    use axum::http::Method;
    match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `TraceLayer`'s span for one request. The raw path is left out: it can hold phone numbers.
pub fn request_span(req: &Request) -> tracing::Span {
    let route = route_of(req);
    let method = method_of(req);
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    heydoc_telemetry::propagation::set_parent(&span, &trace_headers(req.headers()));
    span
}

/// `TraceLayer`'s response hook: the status on the span.
pub fn record_response<B>(res: &Response<B>, _latency: std::time::Duration, span: &tracing::Span) {
    let status = res.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

fn trace_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    ["traceparent", "tracestate"]
        .iter()
        .filter_map(|k| {
            headers
                .get(*k)
                .and_then(|v| v.to_str().ok())
                .map(|v| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Counts every request and times it, by method, route and status.
pub async fn track(req: Request, next: Next) -> axum::response::Response {
    let route = route_of(&req);
    let method = method_of(&req);
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    res
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    heydoc_store::record_pool_metrics(&state.db);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        heydoc_telemetry::metrics::render(),
    )
}
