//! Writing a chunk's deliveries (each recipient's own text when the message names contact
//! fields) and counting them in the recipients' inbox.

use super::audience::Recipient;
use super::Fanout;
use chrono::{DateTime, Utc};
use heydoc_domain::MessageStatus;
use heydoc_entity::{message, scheduled_message as schedule};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::Result;

/// Where a chunk stands in its run: the deliveries made before it, and when the run began
/// (a campaign spread over days sends `daily_limit` a day from then).
pub(super) struct Spread {
    pub(super) first: i64,
    pub(super) start: DateTime<Utc>,
}

impl Spread {
    /// The day (0: the run's) the `i`-th delivery of the chunk goes out on.
    fn day(&self, i: usize, daily_limit: Option<i32>) -> i64 {
        match daily_limit {
            Some(n) if n > 0 => (self.first + i as i64) / i64::from(n),
            _ => 0,
        }
    }
}

pub(super) async fn insert_deliveries(
    txn: &impl ConnectionTrait,
    ctx: &Fanout,
    schedule: &schedule::Model,
    occurrence_id: i64,
    rows: &[Recipient],
    spread: Spread,
    now: DateTime<Utc>,
) -> Result<()> {
    let template = schedule.template.clone();
    let media_kind = schedule
        .media
        .as_ref()
        .and_then(|m| m.get("kind"))
        .and_then(|k| k.as_str())
        .map(str::to_string);
    let (message_type, text, payload) = match (&schedule.message, template) {
        // A file, with the text as its caption (and what the chat shows).
        _ if media_kind.is_some() => (
            media_kind.as_deref().unwrap_or("document"),
            schedule
                .message
                .clone()
                .unwrap_or_else(|| format!("[{}]", media_kind.as_deref().unwrap_or("file"))),
            schedule
                .media
                .clone()
                .map(|m| serde_json::json!({ "media": m })),
        ),
        (Some(text), Some(t)) => (
            "text",
            text.clone(),
            Some(serde_json::json!({ "fallback_template": t })),
        ),
        (Some(text), None) => ("text", text.clone(), None),
        (None, Some(t)) => {
            let name = t
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("template")
                .to_string();
            ("template", format!("[template {name}]"), Some(t))
        }
        (None, None) => ("text", String::new(), None),
    };
    // The campaign's own number, or the default one.
    let number = schedule
        .sender_number
        .clone()
        .unwrap_or_else(|| ctx.business_number.clone());
    let personal = heydoc_domain::template::has_placeholders(&text)
        || payload
            .as_ref()
            .is_some_and(heydoc_domain::template::value_has_placeholders);
    // Small enough chunks of rows per statement to stay under the bind-parameter limits.
    for (part_no, part) in rows.chunks(500).enumerate() {
        // Each recipient's own text (and template parameters) when the message names contact
        // fields; a recipient lacking a value without a fallback is skipped, saying which.
        let outgoing: Vec<Delivery> = part
            .iter()
            .map(|r| personalise(r, &text, payload.as_ref(), personal))
            .collect();
        let models = part.iter().zip(&outgoing).enumerate().map(|(i, (r, d))| {
            // Spread over days: a delivery past the day's share waits, as a retry that has
            // spent nothing, for its day.
            let day = spread.day(part_no * 500 + i, schedule.daily_limit);
            let (status, reason, due) = match (&d.skip, day) {
                (Some(why), _) => (MessageStatus::Skipped, Some(why.clone()), None),
                (None, 0) => (MessageStatus::Queued, None, None),
                (None, day) => (
                    MessageStatus::Retrying,
                    Some(format!(
                        "spread over days: {} a day, this one on day {}",
                        schedule.daily_limit.unwrap_or_default(),
                        day + 1
                    )),
                    Some(spread.start + chrono::Duration::days(day)),
                ),
            };
            message::ActiveModel {
                message_type: Set(message_type.into()),
                payload: Set(d.payload.clone()),
                status: Set(status.as_str().into()),
                last_error_reason: Set(reason),
                next_attempt_at: Set(due),
                occurrence_id: Set(Some(occurrence_id)),
                ..crate::chat::queued_text(r.id, &number, &r.phone, &d.text, "occurrence", now)
            }
        });
        message::Entity::insert_many(models)
            .on_conflict(
                OnConflict::columns([message::Column::OccurrenceId, message::Column::ContactId])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(txn)
            .await?;
        let sent: Vec<(i32, &Delivery)> = part
            .iter()
            .zip(&outgoing)
            .filter(|(_, d)| d.skip.is_none())
            .map(|(r, d)| (r.id, d))
            .collect();
        if sent.is_empty() {
            continue;
        }
        // The inbox preview: the same text for everyone, or each recipient's own.
        let ids: Vec<i32> = sent.iter().map(|(id, _)| *id).collect();
        let texts: Vec<(i32, String)>;
        let preview = if personal {
            texts = sent.iter().map(|(id, d)| (*id, d.text.clone())).collect();
            crate::chat::Preview::Each(&texts)
        } else {
            crate::chat::Preview::Same(&text)
        };
        crate::chat::bump_many(txn, &ids, preview, now).await?;
    }
    Ok(())
}

/// One recipient's delivery: its text and payload, or why it is skipped.
struct Delivery {
    text: String,
    payload: Option<serde_json::Value>,
    skip: Option<String>,
}

fn personalise(
    r: &Recipient,
    text: &str,
    payload: Option<&serde_json::Value>,
    personal: bool,
) -> Delivery {
    let unchanged = || Delivery {
        text: text.to_string(),
        payload: payload.cloned(),
        skip: r.skip.clone(),
    };
    if !personal || r.skip.is_some() {
        return unchanged();
    }
    let fields = heydoc_domain::template::ContactFields {
        name: &r.name,
        phone: &r.phone,
        attributes: &r.attributes,
    };
    let filled = heydoc_domain::template::fill_text(text, &fields).and_then(|text| {
        let payload = payload
            .map(|p| heydoc_domain::template::fill(p, &fields))
            .transpose()?;
        Ok((text, payload))
    });
    match filled {
        Ok((text, payload)) => Delivery {
            text,
            payload,
            skip: None,
        },
        Err(e) => Delivery {
            skip: Some(format!("not sent: {e}")),
            ..unchanged()
        },
    }
}
