//! Traces leave the real `heydoc` process over OTLP, with either protocol the standard
//! variables choose: an in-process OTLP receiver (gRPC through tonic, HTTP/protobuf through
//! axum) gets the gateway's request spans, named by route, under OTEL_SERVICE_NAME.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Process;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// Every export request the receiver got.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

impl Received {
    /// (service.name, span name) of every span received.
    fn spans(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for request in self.0.lock().unwrap().iter() {
            for rs in &request.resource_spans {
                let service = rs
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                    .map(|v| match v {
                        Value::StringValue(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push((service.clone(), span.name.clone()));
                    }
                }
            }
        }
        out
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver; returns its endpoint.
async fn grpc_receiver(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// An OTLP/HTTP receiver (`POST /v1/traces`, protobuf); returns its endpoint.
async fn http_receiver(received: Received) -> String {
    use axum::http::{header, HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(|headers: HeaderMap, body: axum::body::Bytes| async move {
            let protobuf = headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/x-protobuf");
            if !protobuf {
                return StatusCode::UNSUPPORTED_MEDIA_TYPE;
            }
            match ExportTraceServiceRequest::decode(body) {
                Ok(request) => {
                    received.0.lock().unwrap().push(request);
                    StatusCode::OK
                }
                Err(_) => StatusCode::BAD_REQUEST,
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `heydoc all` exporting to `endpoint` with `protocol`, makes requests, stops it with
/// SIGTERM (which flushes the exporter) and returns what the receiver got.
async fn export_through(
    protocol: &str,
    endpoint: &str,
    received: &Received,
) -> Vec<(String, String)> {
    let data = std::env::temp_dir().join(format!("heydoc-otlp-{}", uuid::Uuid::new_v4().simple()));
    let addr = format!("127.0.0.1:{}", free_port());
    let mut heydoc = Process::new(
        Command::new(env!("CARGO_BIN_EXE_heydoc"))
            .arg("all")
            .env("HEYDOC_ADMIN_ADDR", "127.0.0.1:0")
            .env("HEYDOC_DATA_DIR", &data)
            .env("HEYDOC_HTTP_ADDR", &addr)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_SERVICE_NAME", "heydoc-otlp-test")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let mut answered = 0;
    while answered < 3 {
        if let Ok(res) = reqwest::get(format!("http://{addr}/healthz")).await {
            assert_eq!(res.status(), 200);
            answered += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "heydoc never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = heydoc.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit}");
    let _ = std::fs::remove_dir_all(&data);
    received.spans()
}

/// The three requests' spans arrived, under the configured service name.
fn assert_request_spans(spans: &[(String, String)]) {
    let requests = spans
        .iter()
        .filter(|(service, name)| service == "heydoc-otlp-test" && name == "GET /healthz")
        .count();
    assert!(requests >= 3, "{spans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_grpc() {
    let received = Received::default();
    let endpoint = grpc_receiver(received.clone()).await;
    let spans = export_through("grpc", &endpoint, &received).await;
    assert_request_spans(&spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_http_protobuf() {
    let received = Received::default();
    let endpoint = http_receiver(received.clone()).await;
    let spans = export_through("http/protobuf", &endpoint, &received).await;
    assert_request_spans(&spans);
}
