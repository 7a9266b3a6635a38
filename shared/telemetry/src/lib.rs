//! What operations teams watch: traces (OpenTelemetry, exported over OTLP when the standard
//! `OTEL_EXPORTER_OTLP_*` variables say where), log lines that carry the trace id, the W3C trace
//! context carried across RabbitMQ and stored with rows, and Prometheus metrics.

mod log_format;
pub mod metrics;
pub mod propagation;
mod setup;

#[cfg(feature = "testing")]
pub use setup::init_for_tests;
pub use setup::{enabled, init, Telemetry};
