//! Outbound event endpoints: admins register URLs that receive signed JSON events, see each
//! endpoint's state and delivery log, and enable or disable them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::event_endpoints::{
    self as endpoints, CreatedEndpoint, EndpointChange, EndpointOut, EventDeliveryOut, LogParams,
    NewEndpoint,
};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

/// Registers an endpoint (admins, from a session). The answer holds its signing secret, once.
#[utoipa::path(
    post, path = "/api/event-endpoints", operation_id = "createEventEndpoint", tag = "events", security(("bearer" = []), ("cookie" = [])),
    request_body = NewEndpoint,
    responses((status = 201, body = Envelope<CreatedEndpoint>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewEndpoint>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<CreatedEndpoint>>)> {
    let created = endpoints::create(&state, &me, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(
            created,
            "Endpoint registered: store its secret now, it is not shown again",
        )),
    ))
}

/// Every endpoint with its state and how many events wait for it (admins).
#[utoipa::path(
    get, path = "/api/event-endpoints", operation_id = "listEventEndpoints", tag = "events", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<EndpointOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<Vec<EndpointOut>>> {
    Ok(axum::Json(endpoints::list(&state, &me).await?))
}

/// Enables (clearing the failure record) or disables an endpoint (admins).
#[utoipa::path(
    put, path = "/api/event-endpoints/{id}", operation_id = "updateEventEndpoint", tag = "events", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "endpoint id")),
    request_body = EndpointChange,
    responses((status = 200, body = Envelope<EndpointOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
    Json(body): Json<EndpointChange>,
) -> ApiResult<axum::Json<Envelope<EndpointOut>>> {
    let enabled = body.enabled;
    let out = endpoints::update(&state, &me, id, body).await?;
    Ok(axum::Json(Envelope::ok(
        out,
        if enabled {
            "Endpoint enabled"
        } else {
            "Endpoint disabled"
        },
    )))
}

/// Deletes an endpoint and its delivery log (admins).
#[utoipa::path(
    delete, path = "/api/event-endpoints/{id}", operation_id = "deleteEventEndpoint", tag = "events", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "endpoint id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    endpoints::delete(&state, &me, id).await?;
    Ok(axum::Json(Ack::new("Endpoint deleted")))
}

/// An endpoint's delivery log, newest first (admins).
#[utoipa::path(
    get, path = "/api/event-endpoints/{id}/deliveries", operation_id = "listEventDeliveries", tag = "events", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "endpoint id"), LogParams),
    responses((status = 200, body = Vec<EventDeliveryOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
    Query(params): Query<LogParams>,
) -> ApiResult<axum::Json<Vec<EventDeliveryOut>>> {
    Ok(axum::Json(
        endpoints::deliveries(&state, &me, id, params).await?,
    ))
}
