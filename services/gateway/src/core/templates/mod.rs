//! The template catalog of each WhatsApp Business Account: read from Meta (on demand, and
//! every `template_sync_secs` by each gateway), changed by Meta's template webhooks at once,
//! and the check every send and campaign naming a template passes before anything is queued.
//! A template Meta pauses or disables pauses the campaigns using it; its re-approval resumes
//! the ones that pause stopped.

mod check;
mod webhooks;

pub use check::*;
pub use webhooks::*;

use chrono::{DateTime, Utc};
use heydoc_domain::codes;
use heydoc_store::templates::{self as store, CatalogEntry, Template};
use heydoc_whatsapp::templates::TemplateInfo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A WhatsApp template to send instead of (or, outside the 24-hour window, in place of) text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateSpec {
    /// The approved template's name.
    #[schema(pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub name: String,
    /// Its language code, such as `en_US`.
    #[schema(pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub language: String,
    /// WhatsApp's `components` array (header, body and button parameters).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<serde_json::Value>,
}

impl TemplateSpec {
    /// A template needs both its name and its language.
    pub fn check_name(&self) -> ApiResult<()> {
        if self.name.trim().is_empty() || self.language.trim().is_empty() {
            return Err(ApiError::field(
                "template",
                codes::TEMPLATE_UNUSABLE,
                "template needs a name and a language",
            ));
        }
        Ok(())
    }
}

/// Meta's status of a template that may be sent.
const APPROVED: &str = "APPROVED";

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateOut {
    pub name: String,
    /// Its language code, such as `en_US`.
    pub language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`: what Meta charges it as.
    pub category: String,
    /// Meta's status: only `APPROVED` templates can be sent (`PAUSED`, `DISABLED`,
    /// `REJECTED`, `PENDING` cannot).
    pub status: String,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    pub quality: Option<String>,
    /// Why Meta paused, disabled or rejected it.
    pub reason: Option<String>,
    /// The header's kind when it has one: `TEXT`, or `IMAGE`, `VIDEO`, `DOCUMENT` (its one
    /// parameter is then a media link), `LOCATION`.
    pub header_format: Option<String>,
    /// Parameters a send must give the header and the body.
    pub header_params: i32,
    pub body_params: i32,
    /// The body's text with its `{{1}}` variables, for a preview.
    pub body_text: String,
    /// Meta's components (header, body, footer, buttons).
    #[schema(value_type = Vec<Object>)]
    pub components: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

impl From<Template> for TemplateOut {
    fn from(t: Template) -> Self {
        let body_text = heydoc_whatsapp::templates::component(&t.components, "BODY")
            .and_then(|b| b.get("text"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let header_format =
            heydoc_whatsapp::templates::component(&t.components, "HEADER").map(|h| {
                h.get("format")
                    .and_then(|f| f.as_str())
                    .unwrap_or("TEXT")
                    .to_ascii_uppercase()
            });
        Self {
            header_format,
            name: t.name,
            language: t.language,
            category: t.category,
            status: t.status,
            quality: t.quality,
            reason: t.reason,
            header_params: t.header_params,
            body_params: t.body_params,
            body_text,
            components: t.components,
            updated_at: t.updated_at,
        }
    }
}

/// One account's catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogOut {
    pub waba_id: String,
    /// When it was last read from Meta; null: never (sends are then not checked).
    pub synced_at: Option<DateTime<Utc>>,
    /// The last sync's error, when it failed.
    pub last_error: Option<String>,
    pub templates: Vec<TemplateOut>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncParams {
    /// The business number whose account's catalog to read (its phone number id); default:
    /// the default number's.
    pub from: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogParams {
    /// The business number whose account's catalog (its phone number id); default: the
    /// default number's.
    pub from: Option<String>,
    /// Only templates in this status (`APPROVED` for what can be sent).
    pub status: Option<String>,
}

/// The account a business number belongs to (empty when nobody said).
pub async fn waba_of(state: &AppState, number: Option<&str>) -> ApiResult<String> {
    let id = number
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(state.business_number());
    let found = heydoc_store::numbers::find(&state.db, id).await?;
    match found {
        Some(n) if !n.waba_id.is_empty() => Ok(n.waba_id),
        Some(n) if n.is_default => Ok(state.settings.whatsapp.waba_id.trim().to_string()),
        Some(_) => Ok(String::new()),
        None if number.is_some() => Err(ApiError::NotFound(format!(
            "business number {id} is not registered (see GET /api/numbers)"
        ))),
        None => Ok(state.settings.whatsapp.waba_id.trim().to_string()),
    }
}

pub async fn list(state: &AppState, params: CatalogParams) -> ApiResult<CatalogOut> {
    let waba_id = waba_of(state, params.from.as_deref()).await?;
    let catalog = store::catalog(&state.db, &waba_id).await?;
    let status = params
        .status
        .as_deref()
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty());
    let templates = store::list(&state.db, &waba_id, status.as_deref()).await?;
    Ok(CatalogOut {
        synced_at: catalog.as_ref().and_then(|c| c.synced_at),
        last_error: catalog.and_then(|c| c.last_error),
        waba_id,
        templates: templates.into_iter().map(Into::into).collect(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOut {
    pub waba_id: String,
    /// Templates the account has now.
    pub templates: usize,
}

/// Reads the account's whole catalog from Meta (every page) and makes it the stored one.
pub async fn sync(state: &AppState, from: Option<&str>) -> ApiResult<SyncOut> {
    let waba_id = waba_of(state, from).await?;
    if waba_id.is_empty() {
        return Err(ApiError::validation(
            "the number has no WhatsApp Business Account id: set WHATSAPP_WABA_ID (the default number) or the number's waba_id",
        ));
    }
    let templates = sync_account(state, &waba_id).await?;
    Ok(SyncOut { waba_id, templates })
}

async fn sync_account(state: &AppState, waba_id: &str) -> ApiResult<usize> {
    let numbers = heydoc_store::numbers::all(&state.db).await?;
    let number = numbers
        .iter()
        .filter(|n| n.waba_id == waba_id || (n.is_default && n.waba_id.is_empty()))
        .find(|n| n.access_token.is_some())
        .or_else(|| numbers.iter().find(|n| n.waba_id == waba_id));
    let Some(token) = state.token_for(number) else {
        return Err(ApiError::validation(
            "no access token for this account: set WHATSAPP_ACCESS_TOKEN or the number's access_token",
        ));
    };
    match state.graph.list_templates(waba_id, &token).await {
        Ok(found) => {
            let entries: Vec<CatalogEntry> = found.iter().map(entry).collect();
            let n = store::replace(&state.db, waba_id, &entries, Utc::now()).await?;
            tracing::info!(waba_id, templates = n, "template catalog synced");
            Ok(n)
        }
        Err(e) => {
            store::sync_failed(&state.db, waba_id, &e.message).await?;
            tracing::warn!(waba_id, error = %e.message, "template catalog sync failed");
            Err(ApiError::Unavailable(format!(
                "Meta did not give the template list: {}",
                e.message
            )))
        }
    }
}

fn entry(t: &TemplateInfo) -> CatalogEntry {
    CatalogEntry {
        meta_id: Some(t.id.clone()).filter(|i| !i.is_empty()),
        name: t.name.clone(),
        language: t.language.clone(),
        category: t.category.to_ascii_uppercase(),
        status: t.status.to_ascii_uppercase(),
        quality: t.quality(),
        components: t.components.clone(),
        header_params: i32::try_from(t.header_params()).unwrap_or(i32::MAX),
        body_params: i32::try_from(t.body_params()).unwrap_or(i32::MAX),
    }
}

/// Every account the registry names, synced in turn (the periodic sync).
pub async fn sync_all(state: &AppState) {
    let mut accounts: Vec<String> = match heydoc_store::numbers::all(&state.db).await {
        Ok(numbers) => numbers.into_iter().map(|n| n.waba_id).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the numbers to sync templates");
            return;
        }
    };
    accounts.push(state.settings.whatsapp.waba_id.trim().to_string());
    accounts.retain(|w| !w.is_empty());
    accounts.sort();
    accounts.dedup();
    for waba_id in accounts {
        // A failure is recorded on the catalog and logged; the next round tries again.
        let _ = sync_account(state, &waba_id).await;
    }
}
