//! The send loop: take a batch of jobs, pace, claim, send each (bounded concurrency), and hand
//! the results to the writer, which records a batch in one transaction and then acks it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use heydoc_config::WindowPolicy;
use heydoc_queue::Received;
use heydoc_store::deliveries::{self, Outcome, SendResult};
use heydoc_store::messages::Message;
use heydoc_store::Db;
use heydoc_whatsapp::{Content, ErrorClass, Outgoing};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use tracing::Instrument;

use crate::pacing::Pacer;
use crate::trace;
use crate::{retry, secs, SenderContext, SenderError};

/// Results written back in one transaction, at most.
const WRITE_BATCH: usize = 1000;
/// A send woken this long after its slot takes a new one instead of bunching.
const LATE_SLOT: Duration = Duration::from_millis(20);
/// How long the writer waits to fill a batch.
const WRITE_LINGER: Duration = Duration::from_millis(5);

type Done = (SendResult, Received);

pub async fn run(ctx: SenderContext, shutdown: CancellationToken) -> Result<(), SenderError> {
    let pacer = Arc::new(Pacer::new(ctx.settings.mps));
    // Two lanes per number: conversational sends (API sends, replies, confirmations) are taken
    // before campaign deliveries, whatever the campaigns' backlog on the bus.
    let mut now_jobs = ctx
        .bus
        .consume(
            &heydoc_queue::conversation_route(&ctx.route),
            ctx.settings.prefetch,
        )
        .await?;
    let mut jobs = ctx.bus.consume(&ctx.route, ctx.settings.prefetch).await?;
    let (done_tx, done_rx) = mpsc::channel::<Done>(WRITE_BATCH * 4);
    let writer = tokio::spawn(write_results(ctx.db.clone(), done_rx));
    let concurrency = ctx.settings.concurrency.max(1);
    // A paced batch reserves a slot per send (a tenth of a second of the number's rate, so one
    // claim serves many sends) and each send waits for its own slot: sends stay evenly spaced,
    // never a burst. The permits cover the calls in flight and the batch waiting for its slots.
    let batch_max = match ctx.settings.mps {
        0 => 256,
        mps => (mps as usize / 10).clamp(1, 256),
    };
    let permits = Arc::new(Semaphore::new(concurrency + batch_max));
    // Pair budgets of recipients not messaged for a while are forgotten this often, so memory
    // holds at most this long of a campaign's recipients.
    let mut prune = tokio::time::interval(Duration::from_secs(10));
    tracing::info!(route = %ctx.route, mps = ctx.settings.mps, concurrency, "sender started");

    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            next = now_jobs.recv() => match next {
                Some(r) => r,
                None => break,
            },
            next = jobs.recv() => match next {
                Some(r) => r,
                None => break,
            },
            _ = prune.tick() => { pacer.prune(); continue }
        };
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match now_jobs.try_recv().or_else(|_| jobs.try_recv()) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut valid = Vec::with_capacity(batch.len());
        for r in batch {
            match &r.job {
                Ok(_) => valid.push(r),
                Err(e) => {
                    tracing::error!(error = %e, "undecodable job sent to the dead-letter queue");
                    r.reject().await;
                }
            }
        }
        if valid.is_empty() {
            continue;
        }
        // One trace per send: each job's span continues the trace its headers carry.
        let spans: Vec<tracing::Span> = valid
            .iter()
            .map(|r| trace::delivery_span(&ctx.route, r))
            .collect();
        let waits = trace::children(
            &spans,
            |parent| tracing::info_span!(parent: parent, "pacing wait"),
        );
        let (slots, waited) = pacer.reserve(valid.len()).await;
        drop(waits);
        for _ in 0..valid.len() {
            metrics::histogram!(heydoc_telemetry::metrics::PACING_WAIT)
                .record(waited.as_secs_f64());
        }
        let ids: Vec<i64> = valid
            .iter()
            .filter_map(|r| r.job.as_ref().ok().map(|j| j.delivery_id))
            .collect();
        // Stored with the rows, the spans' contexts make the status webhooks their children.
        let traces = trace::contexts(&valid, &spans);
        let claims = trace::children(&spans, |parent| trace::claim_span(parent, &ctx.db));
        let claimed = deliveries::claim(&ctx.db, &ids, &traces, Utc::now()).await;
        drop(claims);
        let claimed = match claimed {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim deliveries; giving the jobs back");
                for r in valid {
                    r.requeue().await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (mut recipients, contacts_read) = recipients(&ctx, &claimed).await;
        let occurrence_traces = trace::occurrence_contexts(&ctx.db, &claimed).await;
        let mut by_id: HashMap<i64, Message> = claimed.into_iter().map(|m| (m.id, m)).collect();
        let mut slots = slots.into_iter();
        for (r, span) in valid.into_iter().zip(spans) {
            let slot = slots.next();
            let id = r.job.as_ref().map(|j| j.delivery_id).unwrap_or_default();
            let Some(row) = by_id.remove(&id) else {
                // Already claimed or finished elsewhere: a duplicate wake-up.
                span.record("heydoc.duplicate", true);
                r.ack().await;
                continue;
            };
            // A campaign delivery starts its own trace, linked to its occurrence's.
            if let Some(occurrence) = row.occurrence_id {
                heydoc_telemetry::propagation::link(
                    &span,
                    occurrence_traces.get(&occurrence).map(String::as_str),
                );
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let recipient = match recipients.remove(&row.contact_id) {
                Some(r) => Known::Found(r),
                None if contacts_read => Known::Gone,
                None => Known::Unread,
            };
            let (ctx, pacer, done) = (ctx.clone(), pacer.clone(), done_tx.clone());
            tokio::spawn(
                async move {
                    if let Some(at) = slot {
                        tokio::time::sleep_until(at.into()).await;
                        // Woken late (a stalled runtime): the slot is gone, and sending now
                        // would bunch with the sends of the slots after it. Take a new one.
                        if at.elapsed() > LATE_SLOT && !pacer.paused() {
                            pacer.reserve(1).await;
                        }
                    }
                    let result = send_one(&ctx, &pacer, row, recipient).await;
                    trace::record_outcome(&tracing::Span::current(), &result.outcome);
                    let _ = done.send((result, r)).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }

    // Stop taking jobs (unsettled ones go back to the bus), let in-flight sends finish.
    drop(jobs);
    drop(now_jobs);
    let grace = secs(ctx.settings.shutdown_grace_secs);
    let all = u32::try_from(concurrency + batch_max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown grace period over with sends in flight; they will be reconciled as unknown"
        );
    }
    drop(done_tx);
    let _ = writer.await;
    tracing::info!("sender stopped");
    Ok(())
}

/// What the sender needs to know about a recipient: the 24-hour window, and the fields
/// template parameters can name.
struct Recipient {
    in_window: bool,
    name: String,
    phone: String,
    attributes: serde_json::Value,
}

/// What the sender knows of a row's contact.
enum Known {
    Found(Recipient),
    /// Its contact is gone (deleted since the row was queued).
    Gone,
    /// Not read: not needed, or the read failed.
    Unread,
}

impl Known {
    fn recipient(&self) -> Option<&Recipient> {
        match self {
            Known::Found(r) => Some(r),
            _ => None,
        }
    }
}

/// Whether a row still holds placeholders to fill (rows queued before personalisation moved
/// to the moment a send or a fan-out writes them).
fn has_placeholders(row: &Message) -> bool {
    heydoc_domain::template::has_placeholders(&row.message_text)
        || row
            .payload
            .as_ref()
            .is_some_and(heydoc_domain::template::value_has_placeholders)
}

/// The claimed rows' contacts, when the window policy, a template or a placeholder needs
/// them, and whether they were read (a row whose contact is missing after a read lost it).
async fn recipients(ctx: &SenderContext, rows: &[Message]) -> (HashMap<i32, Recipient>, bool) {
    let matters = ctx.settings.window_policy == WindowPolicy::Skip
        || rows.iter().any(|r| {
            r.message_type == "template" || fallback_template(r).is_some() || has_placeholders(r)
        });
    if !matters || rows.is_empty() {
        return (HashMap::new(), false);
    }
    let ids: Vec<i32> = rows.iter().map(|r| r.contact_id).collect();
    let found = heydoc_store::contacts::by_ids(&ctx.db, &ids).await;
    let now = Utc::now();
    match found {
        Ok(contacts) => (
            contacts
                .into_iter()
                .map(|c| {
                    let in_window = heydoc_domain::window::is_open(c.last_inbound_at, now);
                    (
                        c.id,
                        Recipient {
                            in_window,
                            name: c.name,
                            phone: c.phone,
                            attributes: c.attributes,
                        },
                    )
                })
                .collect(),
            true,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the recipients' contacts; sending as if inside the window");
            (HashMap::new(), false)
        }
    }
}

fn fallback_template(row: &Message) -> Option<Content> {
    let t = row.payload.as_ref()?.get("fallback_template")?;
    template_content(t)
}

fn template_content(t: &serde_json::Value) -> Option<Content> {
    Some(Content::Template {
        name: t.get("name")?.as_str()?.to_string(),
        language: t.get("language")?.as_str()?.to_string(),
        components: t
            .get("components")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    })
}

/// What to send for this row, or why nothing is sent.
fn content(
    row: &Message,
    in_window: Option<bool>,
    policy: WindowPolicy,
) -> Result<Content, Outcome> {
    match row.message_type.as_str() {
        "text" => {
            if in_window == Some(false) {
                if let Some(template) = fallback_template(row) {
                    return Ok(template);
                }
                if policy == WindowPolicy::Skip {
                    return Err(Outcome::Skipped {
                        reason: "outside WhatsApp's 24-hour window and no template to send instead"
                            .into(),
                    });
                }
            }
            Ok(Content::Text {
                body: row.message_text.clone(),
            })
        }
        "template" => row
            .payload
            .as_ref()
            .and_then(template_content)
            .ok_or_else(|| Outcome::Failed {
                code: None,
                reason: "template message without a template name and language".into(),
            }),
        kind @ ("image" | "document" | "audio" | "video" | "sticker") => {
            let p = row.payload.as_ref();
            let link = p.and_then(|p| p.get("link")).and_then(|v| v.as_str());
            match link {
                Some(link) => Ok(Content::Media {
                    kind: kind.to_string(),
                    link: link.to_string(),
                    caption: p
                        .and_then(|p| p.get("caption"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    filename: p
                        .and_then(|p| p.get("filename"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                }),
                None => Err(Outcome::Failed {
                    code: None,
                    reason: format!("{kind} message without a link"),
                }),
            }
        }
        other => Err(Outcome::Failed {
            code: None,
            reason: format!("cannot send messages of type {other}"),
        }),
    }
}

/// Fills what is left of `{{name}}`, `{{phone}}` and `{{attributes.KEY}}` for this recipient.
/// Never sends one raw: an unread contact is retried, a deleted one or a missing value without
/// fallback is skipped with the reason.
fn personalise(content: Content, known: &Known) -> Result<Content, Outcome> {
    let unfilled = match &content {
        Content::Text { body } => heydoc_domain::template::has_placeholders(body),
        Content::Template { components, .. } => {
            heydoc_domain::template::value_has_placeholders(components)
        }
        Content::Media { caption, .. } => caption
            .as_deref()
            .is_some_and(heydoc_domain::template::has_placeholders),
    };
    if !unfilled {
        return Ok(content);
    }
    let r = match known {
        Known::Found(r) => r,
        Known::Gone => {
            return Err(Outcome::Skipped {
                reason: "the contact was deleted; its placeholders cannot be filled".into(),
            })
        }
        Known::Unread => {
            return Err(Outcome::Retry {
                at: Utc::now() + chrono::Duration::seconds(30),
                code: None,
                reason: "could not read the contact to fill its placeholders".into(),
            })
        }
    };
    let fields = heydoc_domain::template::ContactFields {
        name: &r.name,
        phone: &r.phone,
        attributes: &r.attributes,
    };
    let skipped = |e: heydoc_domain::template::PlaceholderError| Outcome::Skipped {
        reason: format!("not sent: {e}"),
    };
    Ok(match content {
        Content::Text { body } => Content::Text {
            body: heydoc_domain::template::fill_text(&body, &fields).map_err(skipped)?,
        },
        Content::Template {
            name,
            language,
            components,
        } => Content::Template {
            name,
            language,
            components: heydoc_domain::template::fill(&components, &fields).map_err(skipped)?,
        },
        Content::Media {
            kind,
            link,
            caption,
            filename,
        } => Content::Media {
            kind,
            link,
            caption: caption
                .map(|c| heydoc_domain::template::fill_text(&c, &fields))
                .transpose()
                .map_err(skipped)?,
            filename,
        },
    })
}

async fn send_one(
    ctx: &SenderContext,
    pacer: &Pacer,
    row: Message,
    recipient: Known,
) -> SendResult {
    let result = |outcome, suppress| result_of(&row, outcome, suppress);
    let in_window = recipient.recipient().map(|r| r.in_window);
    let content = match content(&row, in_window, ctx.settings.window_policy)
        .and_then(|c| personalise(c, &recipient))
    {
        Ok(c) => c,
        Err(outcome) => return result(outcome, None),
    };
    if let Some(wait) = pacer.pair_wait(&row.receiver_phone) {
        let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let reason = "too many messages to this recipient (pair rate); paced locally".to_string();
        // Local pacing, not a failure: no attempt is spent.
        return result(
            Outcome::Held {
                at,
                code: None,
                reason,
            },
            None,
        );
    }
    // The number stopped after this send's slot was reserved (its circuit opened): it waits
    // with the rest, spending no attempt.
    if pacer.paused() {
        return result(
            Outcome::Held {
                at: Utc::now()
                    + chrono::Duration::seconds(ctx.settings.breaker_probe_secs.max(1) as i64),
                code: None,
                reason: pacer.circuit().map_or_else(
                    || "the business number is paused".to_string(),
                    |why| format!("the business number cannot send: {why}"),
                ),
            },
            None,
        );
    }
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
                number_state(ctx, None).await;
            }
            result(
                Outcome::Sent {
                    wamid: accepted.wamid,
                },
                None,
            )
        }
        Err(e) => {
            let was_open = pacer.circuit().is_some();
            let r = failed(ctx, pacer, &row, e);
            if let (false, Some(why)) = (was_open, pacer.circuit()) {
                number_state(ctx, Some(&why)).await;
            }
            r
        }
    }
}

/// Shows the number's circuit in the registry (`GET /api/numbers`): paused with the reason, or
/// active again.
async fn number_state(ctx: &SenderContext, paused: Option<&str>) {
    if let Err(e) = heydoc_store::numbers::set_state(&ctx.db, &ctx.route, paused, Utc::now()).await
    {
        tracing::warn!(error = %e, "cannot record the number's state");
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
        // wait for it to resume); a single send fails.
        ErrorClass::TemplateProblem => match row.occurrence_id {
            Some(occurrence) => SendResult {
                pause_campaign: Some((
                    occurrence,
                    format!(
                        "WhatsApp refused the template ({}): {}",
                        code.unwrap_or_default(),
                        e.message
                    ),
                )),
                ..result(
                    Outcome::Held {
                        at: Utc::now() + chrono::Duration::seconds(60),
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

/// Records results in batches, then acks their jobs: a job is only acked once its result is in
/// the database.
async fn write_results(db: Db, mut rx: mpsc::Receiver<Done>) {
    let live = heydoc_store::live::LivePublisher::spawn(db.clone());
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + WRITE_LINGER;
        while batch.len() < WRITE_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(d)) => batch.push(d),
                _ => break,
            }
        }
        let results: Vec<SendResult> = batch.iter().map(|(r, _)| r.clone()).collect();
        // Results are never dropped: while the database is away they wait here (and the send
        // loop, once this channel is full, waits too), and their jobs stay unacked.
        let mut attempt = 0u32;
        loop {
            match deliveries::record(&db, &results, Utc::now()).await {
                Ok(()) => {
                    live.publish_all(
                        heydoc_store::live::LiveKind::Status,
                        results.iter().map(|r| r.contact_id),
                    );
                    if attempt > 0 {
                        tracing::info!(
                            count = results.len(),
                            attempt,
                            "send results written after the database came back"
                        );
                    }
                    break;
                }
                Err(e) => {
                    if attempt < 5 {
                        tracing::warn!(error = %e, attempt, "writing send results failed; retrying");
                    } else {
                        tracing::error!(error = %e, attempt, count = results.len(), "the database is still away; keeping the send results until it returns");
                    }
                    tokio::time::sleep(Duration::from_millis((200u64 << attempt.min(4)).min(3000)))
                        .await;
                    attempt += 1;
                }
            }
        }
        for (_, received) in batch {
            received.ack().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> Content {
        Content::Text { body: body.into() }
    }

    #[test]
    fn a_placeholder_is_never_sent_raw() {
        let ana = Known::Found(Recipient {
            in_window: true,
            name: "Ana".into(),
            phone: "14155550123".into(),
            attributes: serde_json::json!({}),
        });
        assert!(matches!(
            personalise(text("Hi {{name}}"), &ana),
            Ok(Content::Text { body }) if body == "Hi Ana"
        ));
        assert!(matches!(
            personalise(text("Hi {{attributes.city}}"), &ana),
            Err(Outcome::Skipped { reason }) if reason.contains("{{attributes.city}}")
        ));
        assert!(matches!(
            personalise(text("Hi {{name}}"), &Known::Gone),
            Err(Outcome::Skipped { reason }) if reason.contains("deleted")
        ));
        assert!(matches!(
            personalise(text("Hi {{name}}"), &Known::Unread),
            Err(Outcome::Retry { .. })
        ));
        let template = Content::Template {
            name: "visit".into(),
            language: "en".into(),
            components: serde_json::json!([{"parameters": [{"type": "text", "text": "{{name}}"}]}]),
        };
        assert!(matches!(
            personalise(template, &Known::Unread),
            Err(Outcome::Retry { .. })
        ));
        // Nothing to fill: the contact is not needed.
        assert!(personalise(text("Hello"), &Known::Unread).is_ok());
    }
}
