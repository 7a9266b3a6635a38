//! What a claimed row becomes on the wire: its recipient (the 24-hour window, the fields
//! placeholders name), its content (text, or the template outside the window), personalised.

use std::collections::HashMap;

use chrono::Utc;
use heydoc_config::WindowPolicy;
use heydoc_store::deliveries::Outcome;
use heydoc_store::messages::Message;
use heydoc_whatsapp::{Content, MediaSource};

use crate::SenderContext;

/// What the sender needs to know about a recipient: the 24-hour window, and the fields
/// template parameters can name.
pub(super) struct Recipient {
    pub(super) in_window: bool,
    name: String,
    phone: String,
    attributes: serde_json::Value,
}

/// What the sender knows of a row's contact.
pub(super) enum Known {
    Found(Recipient),
    /// Its contact is gone (deleted since the row was queued).
    Gone,
    /// Not read: not needed, or the read failed.
    Unread,
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
pub(super) async fn recipients(
    ctx: &SenderContext,
    rows: &[Message],
) -> (HashMap<i32, Recipient>, bool) {
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
            tracing::warn!(error = %e, "cannot read the recipients' contacts; their 24-hour windows count as closed");
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

/// What the sender knows of a recipient's 24-hour window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Window {
    Open,
    Closed,
    /// The contact could not be read (or was not needed). An unknown window is treated as a
    /// closed one: free text is never sent on a guess that the patient wrote recently.
    Unknown,
}

impl Known {
    pub(super) fn window(&self) -> Window {
        match self {
            Known::Found(r) if r.in_window => Window::Open,
            Known::Found(_) | Known::Gone => Window::Closed,
            Known::Unread => Window::Unknown,
        }
    }
}

/// Outside the window under the `skip` policy: skipped when the window is known to be
/// closed, tried again shortly when it could not be read.
fn outside(window: Window, what: &str) -> Outcome {
    match window {
        Window::Unknown => Outcome::Retry {
            at: Utc::now() + chrono::Duration::seconds(30),
            code: None,
            reason: "could not read the contact's 24-hour window; trying again".into(),
        },
        _ => Outcome::Skipped {
            reason: format!("outside WhatsApp's 24-hour window: {what}"),
        },
    }
}

/// What to send for this row, or why nothing is sent.
pub(super) fn content(
    row: &Message,
    window: Window,
    policy: WindowPolicy,
) -> Result<Content, Outcome> {
    match row.message_type.as_str() {
        "text" => {
            if window != Window::Open {
                if let Some(template) = fallback_template(row) {
                    return Ok(template);
                }
                if policy == WindowPolicy::Skip {
                    return Err(outside(window, "and no template to send instead"));
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
            if window != Window::Open && policy == WindowPolicy::Skip {
                return Err(outside(window, "a file cannot be sent there"));
            }
            let p = row.payload.as_ref();
            let text = |key: &str| {
                p.and_then(|p| p.get("media").unwrap_or(p).get(key))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            // Uploaded to Meta once and sent by its id, or a public link.
            let source = match (text("id"), text("link")) {
                (Some(id), _) => MediaSource::Id(id),
                (None, Some(link)) => MediaSource::Link(link),
                (None, None) => {
                    return Err(Outcome::Failed {
                        code: None,
                        reason: format!("{kind} message without a file"),
                    })
                }
            };
            Ok(Content::Media {
                kind: kind.to_string(),
                source,
                caption: text("caption"),
                filename: text("filename"),
            })
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
pub(super) fn personalise(content: Content, known: &Known) -> Result<Content, Outcome> {
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
            source,
            caption,
            filename,
        } => Content::Media {
            kind,
            source,
            caption: caption
                .map(|c| heydoc_domain::template::fill_text(&c, &fields))
                .transpose()
                .map_err(skipped)?,
            filename,
        },
    })
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

    fn row(payload: Option<serde_json::Value>) -> Message {
        let at = Utc::now();
        Message {
            id: 1,
            contact_id: 1,
            message_id: None,
            direction: "outgoing".into(),
            sender_phone: "15550001111".into(),
            receiver_phone: "14155550123".into(),
            message_type: "text".into(),
            message_text: "See you tomorrow".into(),
            payload,
            timestamp: at,
            is_read: false,
            status: "sending".into(),
            attempts: 1,
            next_attempt_at: None,
            last_error_code: None,
            last_error_reason: None,
            enqueued_at: None,
            origin: "api".into(),
            occurrence_id: None,
            idempotency_key: None,
            request_hash: None,
            created_by: None,
            updated_at: at,
            trace_context: None,
            pricing_category: None,
            pricing_type: None,
            billable: None,
            revisions: None,
        }
    }

    #[test]
    fn an_unknown_window_is_a_closed_window() {
        let fallback =
            serde_json::json!({"fallback_template": {"name": "reminder", "language": "en"}});
        // A contact that could not be read: the fallback template, never free text.
        assert!(matches!(
            content(&row(Some(fallback.clone())), Window::Unknown, WindowPolicy::Send),
            Ok(Content::Template { name, .. }) if name == "reminder"
        ));
        assert!(matches!(
            content(&row(Some(fallback)), Window::Open, WindowPolicy::Send),
            Ok(Content::Text { .. })
        ));
        // Under `skip`: tried again when unknown, skipped when known closed.
        assert!(matches!(
            content(&row(None), Window::Unknown, WindowPolicy::Skip),
            Err(Outcome::Retry { .. })
        ));
        assert!(matches!(
            content(&row(None), Window::Closed, WindowPolicy::Skip),
            Err(Outcome::Skipped { .. })
        ));
        assert!(matches!(
            content(&row(None), Window::Unknown, WindowPolicy::Send),
            Ok(Content::Text { .. })
        ));
    }
}
