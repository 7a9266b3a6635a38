//! The template catalog: what each WhatsApp Business Account may send, read from Meta.

use axum::extract::State;

use crate::core::templates::{self, CatalogOut, CatalogParams, SyncOut, SyncParams};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;

/// The account's templates as last read from Meta (and changed by its webhooks since), with
/// what each needs: parameters for its header and body, its category, status and quality.
#[utoipa::path(
    get, path = "/api/templates", operation_id = "listTemplates", tag = "templates", security(("bearer" = []), ("cookie" = [])),
    params(CatalogParams),
    responses((status = 200, body = CatalogOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<CatalogParams>,
) -> ApiResult<axum::Json<CatalogOut>> {
    Ok(axum::Json(templates::list(&state, params).await?))
}

/// Reads the account's whole catalog from Meta now (every page); sends and campaigns naming a
/// template are checked against it from then on.
#[utoipa::path(
    post, path = "/api/templates/sync", operation_id = "syncTemplates", tag = "templates", security(("bearer" = []), ("cookie" = [])),
    params(SyncParams),
    responses((status = 200, body = SyncOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn sync(
    State(state): State<AppState>,
    Query(params): Query<SyncParams>,
) -> ApiResult<axum::Json<SyncOut>> {
    Ok(axum::Json(
        templates::sync(&state, params.from.as_deref()).await?,
    ))
}
