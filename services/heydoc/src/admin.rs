//! The small HTTP server `heydoc sender` and `heydoc scheduler` run beside their work, for
//! orchestrators and Prometheus: `/healthz` (alive), `/readyz` (the database answers, and the
//! broker is connected where the process needs one) and `/metrics`.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use heydoc_queue::JobBus;
use heydoc_store::Db;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What readiness depends on.
#[derive(Clone)]
pub struct Readiness {
    pub db: Db,
    pub bus: Option<Arc<dyn JobBus>>,
}

impl Readiness {
    async fn check(&self) -> Result<(), String> {
        heydoc_store::ping(&self.db)
            .await
            .map_err(|e| format!("database: {e}"))?;
        if let Some(bus) = &self.bus {
            if !bus.is_ready() {
                return Err("the job bus is not connected".into());
            }
        }
        Ok(())
    }
}

fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn readyz(State(r): State<Readiness>) -> impl IntoResponse {
    match r.check().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "unavailable", "message": why})),
        ),
    }
}

async fn metrics(State(r): State<Readiness>) -> impl IntoResponse {
    heydoc_store::record_pool_metrics(&r.db);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        heydoc_telemetry::metrics::render(),
    )
}

/// Binds `addr` (failing at once when it cannot) and serves until `stop` is cancelled.
pub async fn spawn(
    addr: &str,
    readiness: Readiness,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin address {addr} (HEYDOC_ADMIN_ADDR)"))?;
    tracing::info!(
        "health and metrics on http://{}/metrics",
        listener.local_addr()?
    );
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, router(readiness))
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin server failed");
        }
    }))
}
