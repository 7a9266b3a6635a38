//! The template catalog of each WhatsApp Business Account: read from Meta (on demand, and
//! every `template_sync_secs` by each gateway), changed by Meta's template webhooks at once,
//! and the check every send and campaign naming a template passes before anything is queued.
//! A template Meta pauses or disables pauses the campaigns using it; its re-approval resumes
//! the ones that pause stopped.

use chrono::{DateTime, Utc};
use heydoc_store::templates::{self as store, CatalogEntry, Template};
use heydoc_whatsapp::templates::{given_params, TemplateInfo};
use heydoc_whatsapp::webhook::{TemplateQualityUpdate, TemplateStatusUpdate};
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
            return Err(ApiError::validation("template needs a name and a language"));
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

/// A send or campaign from `number` naming `spec`: refused (422) when the account's synced
/// catalog does not have it approved in that language with that many parameters. An account
/// never synced is not checked (Meta's answer still pauses a campaign whose template fails).
pub async fn check(
    state: &AppState,
    number: Option<&str>,
    spec: &TemplateSpec,
) -> ApiResult<Option<Template>> {
    let waba_id = waba_of(state, number).await?;
    let synced = store::catalog(&state.db, &waba_id)
        .await?
        .is_some_and(|c| c.synced_at.is_some());
    if !synced {
        return Ok(None);
    }
    let name = spec.name.trim();
    let language = spec.language.trim();
    let Some(found) = store::find(&state.db, &waba_id, name, language).await? else {
        let languages: Vec<String> = store::list(&state.db, &waba_id, None)
            .await?
            .into_iter()
            .filter(|t| t.name == name)
            .map(|t| t.language)
            .collect();
        return Err(ApiError::validation(if languages.is_empty() {
            format!("template.name: {name:?} is not a template of this WhatsApp Business Account (see GET /api/templates)")
        } else {
            format!(
                "template.language: {name:?} has no {language:?} version; it has {}",
                languages.join(", ")
            )
        }));
    };
    if found.status != APPROVED {
        return Err(ApiError::validation(format!(
            "template.name: {name:?} ({language}) is {} at Meta{} and cannot be sent",
            found.status,
            found
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )));
    }
    for (kind, wanted) in [("BODY", found.body_params), ("HEADER", found.header_params)] {
        let given = given_params(spec.components.as_ref(), kind);
        if i32::try_from(given).unwrap_or(i32::MAX) != wanted {
            return Err(ApiError::validation(format!(
                "template.components: {name:?} ({language}) takes {wanted} {} parameter{}; {given} given",
                kind.to_ascii_lowercase(),
                if wanted == 1 { "" } else { "s" }
            )));
        }
    }
    Ok(Some(found))
}

/// What the patient reads of a template send: the body with the send's parameters in place
/// of its variables (`{{1}}` is the first), and the header's text above it. The chat records
/// this as the message.
pub fn rendered(template: &Template, spec: &TemplateSpec) -> String {
    // One pass over the text: `{{1}}` is the first parameter, `{{name}}` the one with that
    // `parameter_name`; a value is never read again for variables.
    let fill = |kind: &str, text: &str| -> String {
        let given: Vec<(String, Option<String>)> = spec
            .components
            .as_ref()
            .and_then(|c| heydoc_whatsapp::templates::component(c, kind))
            .and_then(|c| c.get("parameters"))
            .and_then(|p| p.as_array())
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let text = p.get("text").and_then(|t| t.as_str()).unwrap_or_default();
                        let name = p.get("parameter_name").and_then(|n| n.as_str());
                        (text.to_string(), name.map(str::to_string))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            let key = rest[start + 2..start + 2 + len].trim();
            let value = match key.parse::<usize>() {
                Ok(n) if n >= 1 => given.get(n - 1).map(|(t, _)| t.as_str()),
                _ => given
                    .iter()
                    .find(|(_, name)| name.as_deref() == Some(key))
                    .map(|(t, _)| t.as_str()),
            };
            match value {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[start..start + 2 + len + 2]),
            }
            rest = &rest[start + 2 + len + 2..];
        }
        out.push_str(rest);
        out
    };
    let text_of = |kind: &str| {
        heydoc_whatsapp::templates::component(&template.components, kind)
            .and_then(|c| c.get("text"))
            .and_then(|t| t.as_str())
            .map(|t| fill(kind, t))
    };
    let mut parts = Vec::new();
    if let Some(header) = text_of("HEADER") {
        parts.push(header);
    }
    parts.push(text_of("BODY").unwrap_or_default());
    if let Some(footer) = text_of("FOOTER") {
        parts.push(footer);
    }
    parts.retain(|p| !p.is_empty());
    parts.join("\n")
}

/// Meta's `message_template_status_update`: the catalog changes; a pause or a disable pauses
/// the campaigns sending it from this account, an approval resumes those it paused.
pub async fn apply_status(
    state: &AppState,
    waba_id: &str,
    update: &TemplateStatusUpdate,
) -> ApiResult<()> {
    // Meta's events, as the template's status; the others (FLAGGED, IN_APPEAL, ...) leave a
    // template that can still be sent as it is.
    let status = match update.event.as_str() {
        "APPROVED" | "REINSTATED" => APPROVED,
        s @ ("PAUSED" | "DISABLED" | "REJECTED" | "PENDING_DELETION" | "PENDING") => s,
        other => {
            tracing::info!(waba_id, template = %update.name, event = other, "template event noted; its status is unchanged");
            return Ok(());
        }
    };
    let now = Utc::now();
    let txn = heydoc_store::begin(&state.db).await?;
    let known = store::set_status(
        &txn,
        waba_id,
        &update.name,
        &update.language,
        status,
        update.reason.as_deref(),
        now,
    )
    .await?;
    let numbers: Vec<heydoc_store::numbers::Number> = heydoc_store::numbers::all(&txn)
        .await?
        .into_iter()
        .filter(|n| n.waba_id == waba_id)
        .collect();
    let includes_default =
        numbers.iter().any(|n| n.is_default) || state.settings.whatsapp.waba_id.trim() == waba_id;
    let ids: Vec<String> = numbers.into_iter().map(|n| n.phone_number_id).collect();
    let mut resumed = Vec::new();
    let mut paused = Vec::new();
    match status {
        "PAUSED" | "DISABLED" | "REJECTED" | "PENDING_DELETION" => {
            let why = format!(
                "WhatsApp {} the template {} ({}){}",
                match status {
                    "PAUSED" => "paused",
                    "DISABLED" => "disabled",
                    "REJECTED" => "rejected",
                    _ => "is deleting",
                },
                update.name,
                update.language,
                update
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            paused = store::pause_campaigns_using(
                &txn,
                waba_id,
                &update.name,
                &update.language,
                &ids,
                includes_default,
                &why,
                now,
            )
            .await?;
        }
        APPROVED => {
            for schedule in store::paused_by(&txn, waba_id, &update.name, &update.language).await? {
                let existing = schedule.clone();
                let (id, paused_at) = (schedule.id, schedule.paused_at);
                heydoc_store::schedules::set_status(
                    &txn,
                    existing,
                    heydoc_domain::ScheduleStatus::Paused,
                    heydoc_domain::ScheduleStatus::Pending,
                    now,
                )
                .await?;
                heydoc_store::deliveries::resume_schedule(&txn, id, paused_at, now).await?;
                resumed.push(id);
            }
        }
        _ => {}
    }
    heydoc_store::commit(txn).await?;
    tracing::info!(
        waba_id,
        template = %update.name,
        language = %update.language,
        event = %update.event,
        known,
        campaigns_paused = paused.len(),
        campaigns_resumed = resumed.len(),
        "template status changed at Meta"
    );
    if !resumed.is_empty() {
        if let Some(wake) = &state.scheduler_wake {
            wake.notify_waiters();
        }
    }
    if !known && status == APPROVED {
        // A template the catalog has not seen yet (created after the last sync): read the
        // account again so sends may name it at once.
        let state = state.clone();
        let waba_id = waba_id.to_string();
        tokio::spawn(async move {
            let _ = sync_account(&state, &waba_id).await;
        });
    }
    Ok(())
}

pub async fn apply_quality(
    state: &AppState,
    waba_id: &str,
    update: &TemplateQualityUpdate,
) -> ApiResult<()> {
    store::set_quality(
        &state.db,
        waba_id,
        &update.name,
        &update.language,
        &update.quality,
        Utc::now(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(components: serde_json::Value) -> Template {
        Template {
            id: 1,
            waba_id: "waba".into(),
            meta_id: None,
            name: "visit".into(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            status: APPROVED.into(),
            quality: None,
            reason: None,
            components,
            header_params: 0,
            body_params: 2,
            synced_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn spec(parameters: serde_json::Value) -> TemplateSpec {
        serde_json::from_value(json!({"name": "visit", "language": "en_US",
            "components": [{"type": "body", "parameters": parameters}]}))
        .expect("spec")
    }

    #[test]
    fn the_history_shows_what_the_patient_reads() {
        let t = template(json!([
            {"type": "HEADER", "format": "TEXT", "text": "Clinic"},
            {"type": "BODY", "text": "Hi {{1}}, see you {{2}}. {{3}} stays."},
        ]));
        let text = rendered(
            &t,
            &spec(
                json!([{"type": "text", "text": "Ana {{2}}"}, {"type": "text", "text": "Monday"}]),
            ),
        );
        // A value is not read again for variables; a variable without a value stays.
        assert_eq!(text, "Clinic\nHi Ana {{2}}, see you Monday. {{3}} stays.");
        let named = template(json!([{"type": "BODY", "text": "Hello {{first_name}}"}]));
        let text = rendered(
            &named,
            &spec(json!([{"type": "text", "parameter_name": "first_name", "text": "Ravi"}])),
        );
        assert_eq!(text, "Hello Ravi");
    }
}
