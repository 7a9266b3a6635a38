//! Liveness and readiness.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive) or `ready` (database reachable).
    pub status: String,
}

/// The process is alive.
#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// The database answers, and so does the job bus when one is configured.
#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody))
)]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    // The cause goes to the log; anonymous callers learn only which part is down.
    heydoc_store::ping(&state.db).await.map_err(|e| {
        tracing::warn!(error = %e, "readiness: the database does not answer");
        ApiError::Unavailable("the database does not answer".into())
    })?;
    if let Some(outbox) = &state.outbox {
        if !outbox.bus.is_ready() {
            return Err(ApiError::Unavailable("the job bus is not connected".into()));
        }
    }
    Ok(axum::Json(Health {
        status: "ready".into(),
    }))
}
