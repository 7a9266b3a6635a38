//! What WhatsApp's webhooks change: inbound messages recorded once by wamid (with STOP/START
//! applied), statuses moved only forward, each with its outbound event in the same
//! transaction, and the consequences of a failure Meta reports.

use chrono::{DateTime, Utc};
use heydoc_domain::consent::Consent;
use heydoc_domain::{MessageStatus, Phone};
use heydoc_store::chat::{self, Inbound, StatusUpdate};
use heydoc_store::events::{self, OutboundEvent};
use heydoc_store::live::LiveKind;
use heydoc_store::messages::Message;
use heydoc_store::outbound::{MessageReceived, MessageStatusChanged};
use heydoc_store::{Conn, Db};
use heydoc_telemetry::metrics::WEBHOOK_EVENTS;
use heydoc_whatsapp::webhook::{
    read_media, read_message, ChangeValue, Envelope, NumberQualityUpdate, TemplateQualityUpdate,
    TemplateStatusUpdate, WaStatus,
};
use heydoc_whatsapp::ErrorClass;
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WebhookOut {
    /// Inbound messages recorded (replays are not counted).
    pub messages: u32,
    /// Statuses that moved a message forward.
    pub statuses: u32,
}

/// Applies a verified webhook.
pub async fn receive(state: &AppState, envelope: Envelope) -> ApiResult<WebhookOut> {
    let now = Utc::now();
    let mut out = WebhookOut::default();
    for entry in &envelope.entry {
        for change in &entry.changes {
            account_change(state, &entry.id, &change.field, &change.value).await?;
        }
    }
    for value in envelope.values() {
        let business = value
            .metadata
            .as_ref()
            .map(|m| m.display_phone_number.clone())
            .unwrap_or_default();
        // Which of our numbers it reached: replies go out from it.
        let number = value
            .metadata
            .as_ref()
            .and_then(|m| m.phone_number_id.clone());
        if let (Some(id), false) = (&number, value.messages.is_empty()) {
            heydoc_store::numbers::learn_display_number(&state.db, id, &business).await?;
        }
        for msg in &value.messages {
            // A reaction, an edit or a deletion changes the message it names.
            if let Some(revision) = to_revision(msg) {
                metrics::counter!(WEBHOOK_EVENTS, "kind" => "revision").increment(1);
                let txn = heydoc_store::begin(&state.db).await?;
                let revised = chat::revise(&txn, &revision, now).await?;
                if let (Some((id, _)), chat::Revision::Revoke { .. }) = (revised, &revision) {
                    // A file the patient took back leaves the store too.
                    heydoc_store::media::remove_file_of_message(&txn, id, now).await?;
                }
                heydoc_store::commit(txn).await?;
                match revised {
                    Some((_, contact_id)) => state.live.publish(LiveKind::Message, contact_id),
                    None => tracing::info!(
                        "a reaction, edit or deletion names a message HeyDoc does not have; ignored"
                    ),
                }
                continue;
            }
            let Some(mut inbound) = to_inbound(msg, value, &business) else {
                continue;
            };
            inbound.number.clone_from(&number);
            metrics::counter!(WEBHOOK_EVENTS, "kind" => "message").increment(1);
            // The message and its event commit together.
            let txn = heydoc_store::begin(&state.db).await?;
            let recorded = chat::record_inbound(&txn, &inbound, now).await?;
            let media = read_media(msg);
            if let (Some(stored), Some(media)) = (&recorded, &media) {
                let announced = heydoc_store::media::Announced {
                    meta_media_id: media.id.clone(),
                    mime_type: media.mime_type.clone(),
                    sha256: media.sha256.clone(),
                    filename: media.filename.clone(),
                };
                heydoc_store::media::insert_pending(&txn, stored.id, &announced, now).await?;
            }
            if let Some(stored) = &recorded {
                let event = MessageReceived {
                    message_id: stored.id,
                    wamid: stored.message_id.clone(),
                    contact_id: stored.contact_id,
                    phone: stored.sender_phone.clone(),
                    profile_name: inbound.profile_name.clone(),
                    kind: stored.message_type.clone(),
                    text: stored.message_text.clone(),
                    timestamp: stored.timestamp,
                };
                events::emit(&txn, OutboundEvent::MessageReceived(event), now).await?;
            }
            heydoc_store::commit(txn).await?;
            if let Some(stored) = recorded {
                if media.is_some() {
                    crate::media::spawn_fetch(state, stored.id);
                }
                state.live.publish(LiveKind::Message, stored.contact_id);
                out.messages += 1;
                if stored.message_type == "text" {
                    apply_keyword(state, &stored, now).await?;
                }
            } else if let Some(latest) = chat::latest_inbound_if(&state.db, &inbound.wamid).await? {
                // A replay of the contact's latest message (WhatsApp retries a webhook we
                // failed): its keyword is applied again, in case the first try stopped after
                // recording the message. An older replay must not undo a newer STOP or START.
                if latest.message_type == "text" {
                    apply_keyword(state, &latest, now).await?;
                }
            }
        }
        for status in &value.statuses {
            let Some(update) = to_status_update(status) else {
                continue;
            };
            metrics::counter!(WEBHOOK_EVENTS, "kind" => "status", "status" => update.status.as_str())
                .increment(1);
            let span = status_span(&state.db, &update).await;
            // The status and its event commit together.
            let txn = heydoc_store::begin(&state.db).await?;
            let changed = chat::apply_status(&txn, &update, now)
                .instrument(span)
                .await?;
            chat::record_pricing(&txn, &update).await?;
            let message = if changed {
                chat::by_wamid(&txn, &update.wamid).await?
            } else {
                None
            };
            if let Some(m) = &message {
                let probe = chrono::Duration::seconds(
                    i64::try_from(state.settings.sender.breaker_probe_secs.max(1)).unwrap_or(30),
                );
                if failure_consequences(&txn, m, &update, probe, now).await? {
                    // Not the message's failure but the number's: it waits for the number
                    // again (no event: it has not failed).
                    heydoc_store::commit(txn).await?;
                    continue;
                }
                if update.status == heydoc_domain::MessageStatus::Failed {
                    heydoc_store::conversations::replies_failed(&txn, &[m.id]).await?;
                }
                let event = MessageStatusChanged {
                    message_id: m.id,
                    wamid: m.message_id.clone(),
                    contact_id: m.contact_id,
                    phone: Some(m.receiver_phone.clone()),
                    status: update.status.as_str(),
                    error_code: update.error_code,
                    error_reason: update.error_reason.clone(),
                    occurrence_id: m.occurrence_id,
                    pricing: update.pricing.as_ref().map(|(category, kind, billable)| {
                        let pricing = &state.settings.pricing;
                        heydoc_store::outbound::EventPricing {
                            category: category.clone(),
                            kind: kind.clone(),
                            billable: *billable,
                            estimated_cost: if *billable {
                                pricing.rate(&m.receiver_phone, category)
                            } else {
                                0.0
                            },
                            currency: pricing.currency.clone(),
                        }
                    }),
                };
                events::emit(&txn, OutboundEvent::MessageStatus(event), now).await?;
            }
            heydoc_store::commit(txn).await?;
            if changed {
                out.statuses += 1;
            }
            if let Some(m) = message {
                state.live.publish(LiveKind::Status, m.contact_id);
            }
        }
    }
    Ok(out)
}

/// The template a message was sent as, name and language: the message's own, or the one sent
/// instead of its text outside the window.
fn template_of(m: &Message) -> Option<(&str, &str)> {
    let payload = m.payload.as_ref()?;
    let t = payload.get("fallback_template").unwrap_or(payload);
    let name = t.get("name")?.as_str()?;
    let language = t.get("language").and_then(|l| l.as_str()).unwrap_or("?");
    Some((name, language))
}

/// A failure Meta reports in a status webhook means what the same code means in the send
/// call's answer (invariant 11): 131050 and 131026 suppress the contact for campaigns, a
/// template problem pauses the campaign that used it, and a number that cannot send (payment,
/// registration, a policy block, a locked account, the token) is held in every sender for
/// `probe`, with the reason shown on the number, while the message waits for it again as a
/// retry. Returns true in that last case: the message has not failed.
async fn failure_consequences(
    txn: &impl Conn,
    m: &Message,
    update: &StatusUpdate,
    probe: chrono::Duration,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    let (MessageStatus::Failed, Some(code)) = (update.status, update.error_code) else {
        return Ok(false);
    };
    let reason = format!(
        "{code}: {}",
        update
            .error_reason
            .as_deref()
            .unwrap_or("refused by WhatsApp")
    );
    match ErrorClass::from_code(i64::from(code)) {
        ErrorClass::NeverRetry { suppress: true } => {
            heydoc_store::failures::suppress_contact(txn, m.contact_id, &reason, now).await?;
        }
        ErrorClass::TemplateProblem => {
            if let Some(occurrence) = m.occurrence_id {
                let why = format!(
                    "WhatsApp refused the template {} ({reason})",
                    heydoc_domain::template::label(template_of(m))
                );
                if heydoc_store::failures::pause_campaign_of(txn, occurrence, &why, now).await? {
                    tracing::warn!(occurrence_id = occurrence, reason = %why, "campaign paused by a status webhook");
                }
            }
        }
        ErrorClass::StopNumber => {
            tracing::error!(code, reason = %reason, number = %m.sender_phone, "a status webhook says the business number cannot send: it is held; check the account, its payment method and the access token");
            let until = now + probe;
            heydoc_store::numbers::hold(txn, &m.sender_phone, until, &reason, now).await?;
            let waits = format!("the business number cannot send: {reason}");
            return Ok(
                heydoc_store::deliveries::refused_for_number(txn, m.id, until, &waits, now).await?,
            );
        }
        _ => {}
    }
    Ok(false)
}

/// STOP or START (or a synonym) as the whole message: the contact leaves or rejoins the
/// campaigns, and gets the one-time confirmation.
async fn apply_keyword(state: &AppState, stored: &Message, now: DateTime<Utc>) -> ApiResult<()> {
    let Some(consent) = state.keywords.classify(&stored.message_text) else {
        return Ok(());
    };
    let reply = match consent {
        Consent::OptOut => &state.settings.optout.stop_reply,
        Consent::OptIn => &state.settings.optout.start_reply,
    };
    // The confirmation goes out from the number the contact wrote to.
    let number = match heydoc_store::contacts::by_id(&state.db, stored.contact_id).await? {
        Some(c) => heydoc_store::numbers::for_reply(&state.db, &c, state.business_number()).await?,
        None => state.business_number().to_string(),
    };
    let change =
        heydoc_store::consent::apply(&state.db, stored.contact_id, consent, reply, &number, now)
            .await?;
    let Some(change) = change else {
        return Ok(());
    };
    metrics::counter!(WEBHOOK_EVENTS, "kind" => consent.as_str()).increment(1);
    tracing::info!(
        contact_id = stored.contact_id,
        consent = consent.as_str(),
        "consent changed by keyword"
    );
    if let Some(id) = change.reply_id {
        state.publish_after_commit(&number, vec![id]);
    }
    state.live.publish(LiveKind::Message, stored.contact_id);
    Ok(())
}

/// A status update's span continues the trace of the send it concerns (found through the
/// delivery id WhatsApp echoes back in `biz_opaque_callback_data`, or the wamid).
async fn status_span(db: &Db, update: &StatusUpdate) -> tracing::Span {
    let span = tracing::info_span!(
        "status",
        otel.name = %format!("whatsapp status {}", update.status.as_str()),
        otel.kind = "consumer",
        heydoc.delivery_id = update.delivery_id,
        heydoc.status = update.status.as_str(),
        messaging.message.id = %update.wamid,
    );
    if !heydoc_telemetry::enabled() {
        return span;
    }
    match chat::trace_context_of(db, update.delivery_id, &update.wamid).await {
        Ok(tc) => heydoc_telemetry::propagation::set_parent_traceparent(&span, tc.as_deref()),
        Err(e) => tracing::debug!(error = %e, "cannot read the send's trace context"),
    }
    span
}

fn to_inbound(msg: &serde_json::Value, value: &ChangeValue, business: &str) -> Option<Inbound> {
    let read = read_message(msg)?;
    let Ok(from) = Phone::parse(&read.from) else {
        tracing::warn!(from = %read.from, "inbound message from an unusable number skipped");
        return None;
    };
    Some(Inbound {
        user_id: read.user_id.clone(),
        username: value.username(&read.from),
        wamid: read.wamid,
        from,
        profile_name: value.profile_name(&read.from),
        to: business.to_string(),
        number: None,
        payload: (read.kind != "text").then(|| msg.clone()),
        message_type: read.kind,
        text: read.text,
        timestamp: read.timestamp,
    })
}

/// A reaction, an edit or a revoke, as the store applies it to the message it names.
fn to_revision(msg: &serde_json::Value) -> Option<chat::Revision> {
    use heydoc_whatsapp::message_kinds::MessageChange;
    let read = read_message(msg)?;
    Some(match read.change? {
        MessageChange::Reaction { target, emoji } => chat::Revision::Reaction {
            target,
            from: read.from,
            emoji,
        },
        MessageChange::Edit { target, text } => chat::Revision::Edit { target, text },
        MessageChange::Revoke { target } => chat::Revision::Revoke { target },
    })
}

fn to_status_update(status: &WaStatus) -> Option<StatusUpdate> {
    let Some(next) = MessageStatus::from_webhook(&status.status) else {
        tracing::debug!(status = %status.status, "status webhook with an unknown status ignored");
        return None;
    };
    let error = status.error();
    Some(StatusUpdate {
        wamid: status.id.clone(),
        status: next,
        delivery_id: status.delivery_id(),
        error_code: error.as_ref().map(|e| e.0),
        error_reason: error.map(|e| e.1),
        pricing: status.pricing().map(|p| (p.category, p.kind, p.billable)),
    })
}

/// The changes about the account rather than a message: template status and quality, the
/// number's quality and messaging limit.
async fn account_change(
    state: &AppState,
    waba_id: &str,
    field: &str,
    value: &ChangeValue,
) -> ApiResult<()> {
    // Account changes name their account; one that names none cannot be placed.
    if waba_id.trim().is_empty() && field != "messages" {
        tracing::warn!(field, "a webhook change without an account id was ignored");
        return Ok(());
    }
    match field {
        TemplateStatusUpdate::FIELD => {
            if let Some(update) = TemplateStatusUpdate::read(value) {
                metrics::counter!(WEBHOOK_EVENTS, "kind" => "template_status").increment(1);
                crate::core::templates::apply_status(state, waba_id, &update).await?;
            }
        }
        TemplateQualityUpdate::FIELD => {
            if let Some(update) = TemplateQualityUpdate::read(value) {
                metrics::counter!(WEBHOOK_EVENTS, "kind" => "template_quality").increment(1);
                crate::core::templates::apply_quality(state, waba_id, &update).await?;
            }
        }
        f if NumberQualityUpdate::FIELDS.contains(&f) => {
            if let Some(update) = NumberQualityUpdate::read(value) {
                metrics::counter!(WEBHOOK_EVENTS, "kind" => "number_quality").increment(1);
                let changed = heydoc_store::numbers::set_quality(
                    &state.db,
                    waba_id,
                    update.display_phone_number.as_deref(),
                    update.messaging_limit.as_deref(),
                    update.quality(),
                    Utc::now(),
                )
                .await?;
                tracing::info!(waba_id, event = ?update.event, limit = ?update.messaging_limit, numbers = changed, "number quality or messaging limit changed at Meta");
            }
        }
        _ => {}
    }
    Ok(())
}
