//! The process's tracing subscriber: an env filter, log lines (text or JSON) with trace ids,
//! and, when an OTLP endpoint is configured, the OpenTelemetry layer exporting spans.

use std::env;

use anyhow::Context as _;
use heydoc_config::LogFormat;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::log_format::{JsonWithTrace, TextWithTrace};

const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,tower_http=info";
/// What becomes a span: our own spans, not the libraries' (the exporter's own HTTP/2 traffic
/// would trace itself, and every SQL statement would become an event on the hot paths).
const TRACE_FILTER: &str = "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,reqwest=off,\
    sqlx=off,sea_orm=off,lapin=off,opentelemetry=off,opentelemetry_sdk=off,tokio_cron_scheduler=off";

static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are recorded and exported in this process. Work done only for traces (reading
/// a stored trace context) is skipped when they are not.
pub fn enabled() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Keeps the tracer provider alive; `shutdown` flushes the spans still buffered.
#[must_use = "dropping it without shutdown loses the last spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                eprintln!("telemetry: flushing the last spans failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber. `service` names the process in traces unless
/// `OTEL_SERVICE_NAME` does. Spans are exported when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not `true`;
/// `OTEL_EXPORTER_OTLP_PROTOCOL` picks `grpc` (the default) or `http/protobuf`, and
/// `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` the sampler. Call it inside a tokio runtime
/// (the gRPC exporter needs one).
pub fn init(service: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    let provider = match otlp_protocol()? {
        None => None,
        Some(protocol) => Some(otlp_provider(service, protocol)?),
    };
    install(format, provider.clone());
    crate::metrics::install();
    if let Some(endpoint) = otlp_endpoint() {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// For tests: spans go to `exporter` as each one ends (no batching), logs as text.
#[cfg(feature = "testing")]
pub fn init_for_tests(exporter: opentelemetry_sdk::trace::InMemorySpanExporter) -> Telemetry {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("heydoc-test").build())
        .build();
    install(LogFormat::Text, Some(provider.clone()));
    Telemetry {
        provider: Some(provider),
    }
}

fn install(format: LogFormat, provider: Option<SdkTracerProvider>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(JsonWithTrace)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .event_format(TextWithTrace::default())
            .boxed(),
    };
    let otel = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("heydoc"))
            .with_tracked_inactivity(false)
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    let exporting = otel.is_some();
    // A second init (tests start several stacks in one process) keeps the first subscriber.
    if tracing_subscriber::registry()
        .with(otel)
        .with(logs.with_filter(filter))
        .try_init()
        .is_ok()
    {
        EXPORTING.store(exporting, std::sync::atomic::Ordering::Relaxed);
    }
}

fn otlp_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|k| env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

/// The protocol to export with, or `None` when tracing export is off.
fn otlp_protocol() -> anyhow::Result<Option<Protocol>> {
    if env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || otlp_endpoint().is_none()
    {
        return Ok(None);
    }
    let wanted = env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|_| "grpc".into());
    match wanted.trim() {
        "grpc" => Ok(Some(Protocol::Grpc)),
        "http/protobuf" => Ok(Some(Protocol::HttpBinary)),
        other => anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: use grpc or http/protobuf"
        ),
    }
}

fn otlp_provider(service: &str, protocol: Protocol) -> anyhow::Result<SdkTracerProvider> {
    // The exporters read the endpoint, headers and timeout from the OTEL_* variables.
    let exporter = match protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build(),
        _ => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build(),
    }
    .context("building the OTLP span exporter")?;
    // OTEL_SERVICE_NAME, when set, wins over the default name (the SDK reads it).
    let mut resource = Resource::builder();
    if env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_string());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}
