//! Outbound event endpoints (admins, from a session): register URLs that receive signed JSON
//! events, see each endpoint's state and delivery log, enable or disable them.

use chrono::{DateTime, Utc};
use heydoc_store::endpoints::{self as store, Endpoint};
use heydoc_store::events::EVENT_TYPES;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::core::audit;
use crate::error::{ApiError, ApiResult};
use crate::routes::page_size;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewEndpoint {
    /// Where the events are POSTed: `https://...` (or `http://` for a local receiver).
    #[schema(example = "https://crm.example.com/heydoc-events")]
    #[schema(pattern = r"^\s*https?://\S{1,2040}\s*$", max_length = 2048)]
    pub url: String,
    /// The event types wanted: `message.received`, `message.status`,
    /// `campaign.occurrence.completed`; empty or absent means all.
    #[serde(default)]
    #[schema(value_type = Vec<EventTypeName>)]
    pub events: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointChange {
    /// `true` re-enables a disabled endpoint (its waiting events go out), `false` pauses it.
    pub enabled: bool,
}

/// The event types, as the document lists them (`heydoc_store::events::EVENT_TYPES`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // the document's enum; the handler reads the strings and says what is wrong
pub enum EventTypeName {
    #[schema(rename = "message.received")]
    MessageReceived,
    #[schema(rename = "message.status")]
    MessageStatus,
    #[schema(rename = "campaign.occurrence.completed")]
    CampaignOccurrenceCompleted,
    #[schema(rename = "conversation.updated")]
    ConversationUpdated,
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
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<i64>,
    /// Only deliveries older than this id.
    pub before: Option<i64>,
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

/// Refuses a URL whose host is, or resolves to, a non-public address (unless the deployment
/// allows private targets). The error says no more than that: it must not tell an admin what
/// answers inside the network. The sender checks again at every call (names can change).
async fn public_target(state: &AppState, url: &str) -> ApiResult<()> {
    if state.settings.sender.event_private_targets {
        return Ok(());
    }
    let parsed = url::Url::parse(url)
        .map_err(|_| ApiError::validation(format!("url {url:?} is not a valid address")))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let refused = || {
        ApiError::validation(
            "url must be on the public internet: loopback, private, link-local and similar \
             addresses are not allowed",
        )
    };
    let Some(host) = parsed.host_str() else {
        return Err(refused());
    };
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<std::net::IpAddr> = match literal.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| ApiError::validation(format!("url's host {host:?} does not resolve")))?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty()
        || !addresses
            .iter()
            .all(|ip| heydoc_domain::public_address::is_public(*ip))
    {
        return Err(refused());
    }
    Ok(())
}

async fn out(state: &AppState, e: Endpoint) -> ApiResult<EndpointOut> {
    let pending = store::pending_count(&state.db, e.id).await?;
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

pub async fn create(
    state: &AppState,
    me: &AuthUser,
    body: NewEndpoint,
) -> ApiResult<CreatedEndpoint> {
    me.require_admin_session()?;
    let url = valid_url(&body.url)?;
    public_target(state, &url).await?;
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
    let created = store::insert(
        &state.db,
        url,
        secret.clone(),
        &events,
        me.user_id,
        Utc::now(),
    )
    .await?;
    tracing::info!(endpoint_id = created.id, by = %me.username, "event endpoint registered");
    audit::record(
        state,
        me,
        audit::action::ENDPOINT_CREATE,
        created.url.clone(),
        None,
    )
    .await;
    Ok(CreatedEndpoint {
        endpoint: out(state, created).await?,
        secret,
    })
}

pub async fn list(state: &AppState, me: &AuthUser) -> ApiResult<Vec<EndpointOut>> {
    me.require_admin_session()?;
    let rows = store::all(&state.db).await?;
    let mut list = Vec::with_capacity(rows.len());
    for e in rows {
        list.push(out(state, e).await?);
    }
    Ok(list)
}

pub async fn update(
    state: &AppState,
    me: &AuthUser,
    id: i32,
    body: EndpointChange,
) -> ApiResult<EndpointOut> {
    me.require_admin_session()?;
    store::get(&state.db, id).await?;
    let reason = (!body.enabled).then(|| format!("disabled by {}", me.username));
    store::set_enabled(&state.db, id, body.enabled, reason).await?;
    let now = store::get(&state.db, id).await?;
    let detail = serde_json::json!({"enabled": body.enabled});
    audit::record(
        state,
        me,
        audit::action::ENDPOINT_UPDATE,
        now.url.clone(),
        Some(detail),
    )
    .await;
    out(state, now).await
}

pub async fn delete(state: &AppState, me: &AuthUser, id: i32) -> ApiResult<()> {
    me.require_admin_session()?;
    let gone = store::get(&state.db, id).await?;
    store::delete(&state.db, id).await?;
    audit::record(state, me, audit::action::ENDPOINT_DELETE, gone.url, None).await;
    Ok(())
}

pub async fn deliveries(
    state: &AppState,
    me: &AuthUser,
    id: i32,
    params: LogParams,
) -> ApiResult<Vec<EventDeliveryOut>> {
    me.require_admin_session()?;
    store::get(&state.db, id).await?;
    let rows = store::log(
        &state.db,
        id,
        params.before,
        page_size(params.limit, 100, 500),
    )
    .await?;
    Ok(rows
        .into_iter()
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
        .collect())
}
