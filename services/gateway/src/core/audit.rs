//! The audit log: who did what, to what, when and from where, for security-relevant and bulk
//! actions. Admins read it through the API and the dashboard.

use chrono::{DateTime, Utc};
use heydoc_store::audit::{self as store, NewEntry};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::routes::page_size;
use crate::state::AppState;

/// The actions recorded, by name.
pub mod action {
    pub const LOGIN: &str = "login";
    pub const LOGOUT_EVERYWHERE: &str = "sessions.revoke_all";
    pub const USER_CREATE: &str = "user.create";
    pub const USER_ROLE: &str = "user.role";
    pub const USER_DISABLE: &str = "user.disable";
    pub const USER_ENABLE: &str = "user.enable";
    pub const USER_DELETE: &str = "user.delete";
    pub const PASSWORD_CHANGE: &str = "user.password_change";
    pub const PASSWORD_RESET: &str = "user.password_reset";
    pub const API_KEY_CREATE: &str = "api_key.create";
    pub const API_KEY_REVOKE: &str = "api_key.revoke";
    pub const ENDPOINT_CREATE: &str = "event_endpoint.create";
    pub const ENDPOINT_UPDATE: &str = "event_endpoint.update";
    pub const ENDPOINT_DELETE: &str = "event_endpoint.delete";
    pub const CONTACTS_EXPORT: &str = "contacts.export";
    pub const CONTACTS_IMPORT: &str = "contacts.import";
    pub const CONTACT_DELETE: &str = "contact.delete";
    pub const CONTACT_OPT_IN: &str = "contact.opt_in";
    pub const CAMPAIGN_CREATE: &str = "campaign.create";
    pub const CAMPAIGN_STATUS: &str = "campaign.status";
    pub const CAMPAIGN_DELETE: &str = "campaign.delete";
    pub const TAG_DELETE: &str = "tag.delete";
    pub const CANNED_REPLY_DELETE: &str = "canned_reply.delete";
    pub const NUMBER_CREATE: &str = "number.create";
    pub const NUMBER_UPDATE: &str = "number.update";
    pub const DELIVERIES_EXPORT: &str = "campaign.deliveries_export";
}

/// Records what `me` did. An audit write that fails is logged and does not undo the action
/// (which has happened).
pub async fn record(
    state: &AppState,
    me: &AuthUser,
    action: &'static str,
    target: impl Into<Option<String>>,
    detail: Option<serde_json::Value>,
) {
    let entry = NewEntry {
        actor_id: Some(me.user_id),
        actor: me.username.clone(),
        action,
        target: target.into(),
        detail: detail.map(|mut d| {
            if let (Some(key), Some(map)) = (me.key, d.as_object_mut()) {
                map.insert("api_key_id".into(), key.id.into());
            }
            d
        }),
        address: me.address.map(|a| a.to_string()),
    };
    if let Err(e) = store::record(&state.db, entry, Utc::now()).await {
        tracing::warn!(error = %e, action, "could not write the audit log");
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The account that acted (it may since have been deleted).
    pub actor_id: Option<i32>,
    /// Its username at the time.
    pub actor: String,
    /// What was done, e.g. `user.disable`, `contacts.export`, `campaign.status`.
    pub action: String,
    /// What it was done to (a username, a phone, a campaign id, ...).
    pub target: Option<String>,
    /// The particulars (counts, the new role, the API key used, ...).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// The client address it came from.
    pub address: Option<String>,
}

impl From<store::AuditEntry> for AuditOut {
    fn from(e: store::AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor_id: e.actor_id,
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail.and_then(|d| serde_json::from_str(&d).ok()),
            address: e.address,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries older than this id (the `id` of the last entry of the previous page).
    pub before: Option<i64>,
    /// Only what this user did.
    pub user_id: Option<i32>,
    /// Entries per page (default 100; asked for outside 1 to 500, the nearest of the two).
    pub limit: Option<i64>,
}

/// A page of the log, newest first (admins only).
pub async fn list(
    state: &AppState,
    me: &AuthUser,
    params: AuditParams,
) -> ApiResult<Vec<AuditOut>> {
    me.require_admin_session()?;
    let limit = page_size(params.limit, 100, 500);
    Ok(store::page(&state.db, params.before, params.user_id, limit)
        .await?
        .into_iter()
        .map(AuditOut::from)
        .collect())
}
