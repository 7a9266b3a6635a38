//! One Cloud API call and what its answer means: the outcome to record, and what it does to
//! the number (a circuit opened, a limit lowered) or the campaign (paused).

use std::time::Duration;

use chrono::Utc;
use heydoc_store::deliveries::{self, Outcome, SendResult};
use heydoc_store::messages::Message;
use heydoc_whatsapp::{ErrorClass, Outgoing};

use super::content::{content, personalise, Known};
use crate::pacing::Pacer;
use crate::{retry, SenderContext};

/// How long a message Meta's per-user marketing limit (131049) refuses is tried again, a day
/// apart, before it fails with the reason.
const MARKETING_LIMIT_DAYS: i64 = 7;

/// How long a campaign's delivery refused for its template waits before its next claim (where
/// the campaign's pause holds it).
const TEMPLATE_HOLD_SECS: i64 = 10;

pub(super) async fn send_one(
    ctx: &SenderContext,
    pacer: &Pacer,
    row: Message,
    recipient: Known,
) -> SendResult {
    let result = |outcome, suppress| result_of(&row, outcome, suppress);
    let content = match content(&row, recipient.window(), ctx.settings.window_policy)
        .and_then(|c| personalise(c, &recipient))
    {
        Ok(c) => c,
        Err(outcome) => return result(outcome, None),
    };
    let outgoing = Outgoing {
        to: row.receiver_phone.clone(),
        content,
        callback_data: row.id.to_string(),
        reply_to: None,
    };
    let answer = ctx.api.send(&outgoing).await;
    let throttled = answer
        .as_ref()
        .err()
        .is_some_and(|e| e.class == ErrorClass::BackOffNumber);
    if !matches!(&answer, Err(e) if e.class == ErrorClass::OutcomeUnknown) {
        pacer.observe(throttled);
    }
    match answer {
        Ok(accepted) => {
            if pacer.close_circuit() {
                number_active(ctx).await;
            }
            result(
                Outcome::Sent {
                    wamid: accepted.wamid,
                },
                None,
            )
        }
        Err(e) => {
            let opens = e.class == ErrorClass::StopNumber;
            let template = match &outgoing.content {
                heydoc_whatsapp::Content::Template { name, language, .. } => {
                    Some((name.as_str(), language.as_str()))
                }
                _ => None,
            };
            let r = failed(ctx, pacer, &row, template, e);
            if let (true, Some(why), Some(until)) = (opens, pacer.circuit(), pacer.paused_until()) {
                // The refused row waits again before the hold is shown: a sender killed once
                // the number is held leaves it waiting, not `unknown` (Meta took nothing). The
                // writer's copy of the result then changes nothing.
                if let Err(e) =
                    deliveries::record(&ctx.db, std::slice::from_ref(&r), Utc::now()).await
                {
                    tracing::debug!(error = %e, "cannot record a refused send now; the writer will");
                }
                hold_number(ctx, &why, until).await;
            }
            r
        }
    }
}

/// Shows the number active again in the registry (`GET /api/numbers`), its hold lifted.
async fn number_active(ctx: &SenderContext) {
    if let Err(e) = heydoc_store::numbers::set_state(&ctx.db, &ctx.route, None, Utc::now()).await {
        tracing::warn!(error = %e, "cannot record the number's state");
    }
}

/// Holds the number in the registry until `until`, with the reason: every sender of it (and
/// this one after a restart) waits for it, and `GET /api/numbers` shows why.
async fn hold_number(ctx: &SenderContext, why: &str, until: chrono::DateTime<Utc>) {
    if let Err(e) = heydoc_store::numbers::hold(&ctx.db, &ctx.route, until, why, Utc::now()).await {
        tracing::warn!(error = %e, "cannot record the number's hold");
    }
}

/// A row's result; `suppress` says why the contact gets no more campaigns.
fn result_of(row: &Message, outcome: Outcome, suppress: Option<String>) -> SendResult {
    SendResult {
        id: row.id,
        contact_id: row.contact_id,
        outcome,
        suppress,
        pause_campaign: None,
    }
}

/// What a refused send becomes: Meta's error code decides (invariant 10, and the error classes
/// in `heydoc-whatsapp`).
fn failed(
    ctx: &SenderContext,
    pacer: &Pacer,
    row: &Message,
    template: Option<(&str, &str)>,
    e: heydoc_whatsapp::SendError,
) -> SendResult {
    let code = e.code.and_then(|c| i32::try_from(c).ok());
    let result = |outcome, suppress| result_of(row, outcome, suppress);
    let unit = Duration::from_millis(ctx.settings.retry_base_ms.max(1));
    match e.class {
        ErrorClass::OutcomeUnknown => result(Outcome::Unknown { reason: e.message }, None),
        ErrorClass::NeverRetry { suppress } => {
            let suppress = suppress.then(|| e.message.clone());
            result(
                Outcome::Failed {
                    code,
                    reason: e.message,
                },
                suppress,
            )
        }
        // Not about this recipient: the number's circuit opens (its deliveries wait, no
        // attempt is spent) until a probe gets through.
        ErrorClass::StopNumber => {
            let probe = Duration::from_secs(ctx.settings.breaker_probe_secs.max(1));
            pacer.open_circuit(probe, code, &e.message);
            let at = Utc::now() + chrono::Duration::from_std(probe).unwrap_or_default();
            result(
                Outcome::Held {
                    at,
                    code,
                    reason: format!("the business number cannot send: {}", e.message),
                },
                None,
            )
        }
        // The template, not the recipient: a campaign pauses with the reason (its deliveries
        // wait for it to resume); a single send fails. The refused row waits only a moment:
        // the paused campaign holds it at the claim, and a resume moves it on by the pause,
        // so it goes soon after the template is approved again.
        ErrorClass::TemplateProblem => match row.occurrence_id {
            Some(occurrence) => SendResult {
                pause_campaign: Some((
                    occurrence,
                    format!(
                        "WhatsApp refused the template {} ({}): {}",
                        heydoc_domain::template::label(template),
                        code.unwrap_or_default(),
                        e.message
                    ),
                )),
                ..result(
                    Outcome::Held {
                        at: Utc::now() + chrono::Duration::seconds(TEMPLATE_HOLD_SECS),
                        code,
                        reason: e.message,
                    },
                    None,
                )
            },
            None => result(
                Outcome::Failed {
                    code,
                    reason: e.message,
                },
                None,
            ),
        },
        // Throttling lowers the number's limit (the pacer's observe); only this message waits,
        // and spends no attempt (the number's pace, not the message, was the problem), unless
        // Meta named a time for the whole number.
        ErrorClass::BackOffNumber => {
            if let Some(after) = e.retry_after {
                pacer.pause(after);
            }
            let delay = retry::delay(ErrorClass::BackOffNumber, e.code, 1, e.retry_after, unit);
            result(
                Outcome::Held {
                    at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
                    code,
                    reason: e.message,
                },
                None,
            )
        }
        // Meta's per-user marketing limit: not the contact's fault and not a failure; the
        // message waits for another day and spends no attempt.
        ErrorClass::BackOffRecipient
            if e.code == Some(131049)
                && Utc::now() - row.timestamp > chrono::Duration::days(MARKETING_LIMIT_DAYS) =>
        {
            result(
                Outcome::Failed {
                    code,
                    reason: format!(
                        "WhatsApp's marketing limit for this person (131049) kept refusing it for {MARKETING_LIMIT_DAYS} days: {}",
                        e.message
                    ),
                },
                None,
            )
        }
        ErrorClass::BackOffRecipient if e.code == Some(131049) => {
            let delay = retry::delay(ErrorClass::BackOffRecipient, e.code, 1, e.retry_after, unit);
            result(
                Outcome::Held {
                    at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
                    code,
                    reason: format!(
                        "WhatsApp's marketing limit for this person (131049): tried again tomorrow ({})",
                        e.message
                    ),
                },
                None,
            )
        }
        class => {
            if row.attempts >= ctx.settings.max_attempts {
                let reason = format!("gave up after {} attempts: {}", row.attempts, e.message);
                return result(Outcome::Failed { code, reason }, None);
            }
            let delay = retry::delay(class, e.code, row.attempts, e.retry_after, unit);
            let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            result(
                Outcome::Retry {
                    at,
                    code,
                    reason: e.message,
                },
                None,
            )
        }
    }
}
