//! Prometheus metrics: one process-wide recorder (the `metrics` facade), rendered at `/metrics`
//! by every service. The names are here so that the code that moves them and the dashboard in
//! `deploy/grafana/` agree.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
pub const SENDS: &str = "heydoc_sends_total";
pub const WHATSAPP_DURATION: &str = "heydoc_whatsapp_request_duration_seconds";
pub const PACING_WAIT: &str = "heydoc_pacing_wait_seconds";
pub const QUEUE_PUBLISH: &str = "heydoc_queue_publish_seconds";
pub const QUEUE_PUBLISHED: &str = "heydoc_queue_published_total";
pub const SCHEDULER_LATENESS: &str = "heydoc_scheduler_lateness_seconds";
pub const FANOUT_DELIVERIES: &str = "heydoc_fanout_deliveries_total";
pub const OCCURRENCES: &str = "heydoc_occurrences_total";
pub const DELIVERIES: &str = "heydoc_deliveries";
pub const WEBHOOK_EVENTS: &str = "heydoc_webhook_events_total";
pub const RATE_LIMIT: &str = "heydoc_rate_limit_mps";
pub const THROTTLED: &str = "heydoc_throttled_total";
pub const NUMBER_PAUSED: &str = "heydoc_number_paused";
pub const PAIR_BUDGETS: &str = "heydoc_pair_budgets";
pub const BACKLOG: &str = "heydoc_backlog";
pub const ON_BUS: &str = "heydoc_bus_window_jobs";
pub const LIVE_STREAMS: &str = "heydoc_live_streams";
pub const DB_POOL: &str = "heydoc_db_pool_connections";
pub const DB_POOL_MAX: &str = "heydoc_db_pool_max_connections";

/// Seconds: from a millisecond to a minute.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (idempotent). Call it before the first metric moves:
/// values recorded before it are lost.
pub fn install() {
    handle();
}

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = match PrometheusBuilder::new().set_buckets(BUCKETS) {
            Ok(b) => b,
            // Only an empty bucket list is refused; BUCKETS is not empty.
            Err(_) => PrometheusBuilder::new(),
        };
        let handle = match builder.install_recorder() {
            Ok(h) => h,
            Err(e) => {
                // Another recorder owns the process (a test harness): render a private one.
                tracing::warn!(error = %e, "a metrics recorder is already installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        // Histograms keep their samples until upkeep drains them: without a scrape, memory
        // would grow with every request and send.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

/// The Prometheus text exposition of every metric so far.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by route"
    );
    describe_counter!(
        SENDS,
        "Send attempts by outcome (sent, failed, retry, unknown, skipped) and Meta error code"
    );
    describe_histogram!(WHATSAPP_DURATION, Unit::Seconds, "Cloud API call latency");
    describe_histogram!(
        PACING_WAIT,
        Unit::Seconds,
        "Time a send waited for its business number's rate"
    );
    describe_histogram!(
        QUEUE_PUBLISH,
        Unit::Seconds,
        "Publishing a batch of jobs until the broker confirmed it"
    );
    describe_counter!(QUEUE_PUBLISHED, "Jobs confirmed on the job bus");
    describe_histogram!(
        SCHEDULER_LATENESS,
        Unit::Seconds,
        "How late a due run was claimed (claim time - due time)"
    );
    describe_counter!(FANOUT_DELIVERIES, "Deliveries created by fan-out");
    describe_counter!(OCCURRENCES, "Occurrences recorded, by state");
    describe_gauge!(
        DELIVERIES,
        "Outgoing messages not finished yet, by status: queued, sending, retrying (sampled by the sender's reconciler)"
    );
    describe_counter!(
        WEBHOOK_EVENTS,
        "WhatsApp webhook events by kind (status, message, bad_signature ...)"
    );
    describe_gauge!(
        RATE_LIMIT,
        "The sending limit in force for the business number (msg/s), lowered when Meta throttles"
    );
    describe_counter!(
        THROTTLED,
        "Sends Meta refused as over the number's throughput (130429 and its kin)"
    );
    describe_gauge!(
        PAIR_BUDGETS,
        "recipients whose pair-rate budget the sender remembers (pruned every 10 s)"
    );
    describe_gauge!(
        NUMBER_PAUSED,
        "1 while the business number cannot send (token, account, payment, policy)"
    );
    describe_gauge!(
        BACKLOG,
        "Sends waiting in the database (queued or retrying): the autoscaling signal"
    );
    describe_gauge!(
        ON_BUS,
        "Jobs published to the bus and not claimed yet (bounded by the window)"
    );
    describe_gauge!(LIVE_STREAMS, "Dashboard event streams open on this gateway");
    describe_gauge!(DB_POOL, "Database pool connections by state (idle, in_use)");
    describe_gauge!(DB_POOL_MAX, "Database pool size limit");
}
