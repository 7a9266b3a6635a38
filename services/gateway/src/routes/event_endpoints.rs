//! Outbound event endpoints: admins register URLs that receive signed JSON events, see each
//! endpoint's state and delivery log, and enable or disable them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use chrono::{DateTime, Utc};
use heydoc_entity::{event_delivery, event_endpoint};
use heydoc_store::events::EVENT_TYPES;
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::{page_size, Ack, Envelope};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewEndpoint {
    /// Where the events are POSTed: `https://...` (or `http://` for a local receiver).
    #[schema(example = "https://crm.example.com/heydoc-events")]
    pub url: String,
    /// The event types wanted: `message.received`, `message.status`,
    /// `campaign.occurrence.completed`; empty or absent means all.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointChange {
    /// `true` re-enables a disabled endpoint (its waiting events go out), `false` pauses it.
    pub enabled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    pub id: i32,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled, when it was.
    pub disabled_reason: Option<String>,
    /// When its current run of failures began.
    pub failing_since: Option<DateTime<Utc>>,
    /// Events waiting for it.
    pub pending: i64,
    pub created_at: DateTime<Utc>,
}

/// A new endpoint with its signing secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    /// Verify `X-HeyDoc-Signature: t=<unix>,v1=<hex>` as HMAC-SHA256 of `"<t>.<body>"` with it.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDeliveryOut {
    pub id: i64,
    pub event_type: String,
    /// `pending` or `delivered`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// The endpoint's last HTTP status, if it answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The event as sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LogParams {
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u64>,
    /// Only deliveries older than this id.
    pub before: Option<i64>,
}

fn require_admin_session(me: &AuthUser) -> ApiResult<()> {
    me.require_session()?;
    me.require_admin()
}

fn valid_url(url: &str) -> ApiResult<String> {
    let url = url.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url.len() > "http://".len()
        && !url.chars().any(char::is_whitespace);
    if ok {
        Ok(url.to_string())
    } else {
        Err(ApiError::validation(format!(
            "url {url:?} must be an http:// or https:// address of at most 2048 characters"
        )))
    }
}

async fn out(state: &AppState, e: event_endpoint::Model) -> ApiResult<EndpointOut> {
    let pending: i64 = event_delivery::Entity::find()
        .select_only()
        .column_as(event_delivery::Column::Id.count(), "n")
        .filter(event_delivery::Column::EndpointId.eq(e.id))
        .filter(event_delivery::Column::Status.eq(heydoc_store::events::PENDING))
        .into_tuple()
        .one(&state.db)
        .await?
        .unwrap_or(0);
    Ok(EndpointOut {
        id: e.id,
        url: e.url,
        events: serde_json::from_value(e.events).unwrap_or_default(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason,
        failing_since: e.failing_since,
        pending,
        created_at: e.created_at,
    })
}

/// Registers an endpoint (admins, from a session). The answer holds its signing secret, once.
#[utoipa::path(
    post, path = "/api/event-endpoints", tag = "events", security(("bearer" = []), ("cookie" = [])),
    request_body = NewEndpoint,
    responses((status = 201, body = Envelope<CreatedEndpoint>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewEndpoint>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<CreatedEndpoint>>)> {
    require_admin_session(&me)?;
    let url = valid_url(&body.url)?;
    let mut events = Vec::new();
    for e in body.events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(ApiError::validation(format!(
                "unknown event type {e:?}: use {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !events.contains(&e) {
            events.push(e);
        }
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("whsec_{}", hex::encode(bytes));
    let created = event_endpoint::Entity::insert(event_endpoint::ActiveModel {
        url: Set(url),
        secret: Set(secret.clone()),
        events: Set(serde_json::json!(events)),
        enabled: Set(true),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_by: Set(me.user_id),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec_with_returning(&state.db)
    .await?;
    tracing::info!(endpoint_id = created.id, by = %me.username, "event endpoint registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(
            CreatedEndpoint {
                endpoint: out(&state, created).await?,
                secret,
            },
            "Endpoint registered: store its secret now, it is not shown again",
        )),
    ))
}

/// Every endpoint with its state and how many events wait for it (admins).
#[utoipa::path(
    get, path = "/api/event-endpoints", tag = "events", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<EndpointOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<axum::Json<Vec<EndpointOut>>> {
    require_admin_session(&me)?;
    let rows = event_endpoint::Entity::find()
        .order_by_asc(event_endpoint::Column::Id)
        .all(&state.db)
        .await?;
    let mut list = Vec::with_capacity(rows.len());
    for e in rows {
        list.push(out(&state, e).await?);
    }
    Ok(axum::Json(list))
}

async fn find(state: &AppState, id: i32) -> ApiResult<event_endpoint::Model> {
    event_endpoint::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event endpoint {id}")))
}

/// Enables (clearing the failure record) or disables an endpoint (admins).
#[utoipa::path(
    put, path = "/api/event-endpoints/{id}", tag = "events", security(("bearer" = []), ("cookie" = [])),
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
    require_admin_session(&me)?;
    find(&state, id).await?;
    let reason = (!body.enabled).then(|| format!("disabled by {}", me.username));
    event_endpoint::Entity::update_many()
        .col_expr(event_endpoint::Column::Enabled, Expr::value(body.enabled))
        .col_expr(event_endpoint::Column::DisabledReason, Expr::value(reason))
        .col_expr(
            event_endpoint::Column::FailingSince,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(event_endpoint::Column::Id.eq(id))
        .exec(&state.db)
        .await?;
    let now = find(&state, id).await?;
    Ok(axum::Json(Envelope::ok(
        out(&state, now).await?,
        if body.enabled {
            "Endpoint enabled"
        } else {
            "Endpoint disabled"
        },
    )))
}

/// Deletes an endpoint and its delivery log (admins).
#[utoipa::path(
    delete, path = "/api/event-endpoints/{id}", tag = "events", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "endpoint id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    require_admin_session(&me)?;
    find(&state, id).await?;
    event_delivery::Entity::delete_many()
        .filter(event_delivery::Column::EndpointId.eq(id))
        .exec(&state.db)
        .await?;
    event_endpoint::Entity::delete_by_id(id)
        .exec(&state.db)
        .await?;
    Ok(axum::Json(Ack::new("Endpoint deleted")))
}

/// An endpoint's delivery log, newest first (admins).
#[utoipa::path(
    get, path = "/api/event-endpoints/{id}/deliveries", tag = "events", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "endpoint id"), LogParams),
    responses((status = 200, body = Vec<EventDeliveryOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
    Query(params): Query<LogParams>,
) -> ApiResult<axum::Json<Vec<EventDeliveryOut>>> {
    require_admin_session(&me)?;
    find(&state, id).await?;
    let mut query =
        event_delivery::Entity::find().filter(event_delivery::Column::EndpointId.eq(id));
    if let Some(before) = params.before {
        query = query.filter(event_delivery::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(event_delivery::Column::Id)
        .limit(page_size(params.limit, 100, 500))
        .all(&state.db)
        .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|d| EventDeliveryOut {
                id: d.id,
                event_type: d.event_type,
                status: d.status,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at,
                last_status: d.last_status,
                last_error: d.last_error,
                created_at: d.created_at,
                delivered_at: d.delivered_at,
                payload: d.payload,
            })
            .collect(),
    ))
}
