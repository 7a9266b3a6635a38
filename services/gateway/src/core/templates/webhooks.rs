//! Meta's template webhooks: status and quality changes, and the campaigns they pause and
//! resume.

use chrono::Utc;
use heydoc_store::templates as store;
use heydoc_whatsapp::webhook::{TemplateQualityUpdate, TemplateStatusUpdate};

use crate::error::ApiResult;
use crate::state::AppState;

use super::{sync_account, APPROVED};

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
