//! Fan-out: an occurrence becomes one delivery (outgoing message) per recipient, unique on
//! (occurrence, contact). The audience is resolved now: the explicit recipients plus every
//! contact carrying one of the tags. Opted-out and suppressed contacts get a delivery that is
//! `skipped` at once and says why, so campaign results show them; nothing is sent. It is expanded
//! in chunks, each in its own transaction with the saved cursor (the last contact id done), so
//! a crash resumes at the next chunk and no transaction grows with the campaign.

use chrono::{DateTime, Duration, Utc};
use heydoc_domain::{template, Direction, MessageStatus, ScheduleStatus};
use heydoc_entity::{contact, contact_tag, message, occurrence, scheduled_message as schedule};

use crate::contacts::new_contact;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use tracing::Instrument;

use crate::{Db, Result};

const STATE_FANNING_OUT: &str = heydoc_domain::OccurrenceState::FanningOut.as_str();
const STATE_DONE: &str = heydoc_domain::OccurrenceState::Done.as_str();
const STATE_CANCELLED: &str = heydoc_domain::OccurrenceState::Cancelled.as_str();

/// How a scheduler fans out: its chunk size, its lease, and the default business number.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub db: Db,
    /// Recipients expanded per transaction.
    pub chunk: u64,
    /// A fan-out whose scheduler stopped is taken over after this long.
    pub lease_secs: i64,
    /// The number campaign messages go from when their schedule names none.
    pub business_number: String,
}

/// Takes one occurrence whose fan-out lease is free and expands it to the end (or until its
/// schedule is paused). Returns false when there was nothing to take.
pub async fn fan_out_one(ctx: &Fanout) -> Result<bool> {
    let Some(id) = lease(ctx).await? else {
        return Ok(false);
    };
    expand(ctx, id).await?;
    Ok(true)
}

/// Expands a leased occurrence to the end (or until its schedule is paused).
pub async fn expand(ctx: &Fanout, id: i64) -> Result<()> {
    loop {
        match chunk(ctx, id).await? {
            Step::More => continue,
            Step::Finished | Step::Paused => return Ok(()),
        }
    }
}

/// Leases one occurrence being fanned out whose lease has expired (or was never taken).
pub async fn lease(ctx: &Fanout) -> Result<Option<i64>> {
    let now = Utc::now();
    let cutoff = now - Duration::seconds(ctx.lease_secs.max(1));
    let backend = ctx.db.get_database_backend();
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE occurrences SET updated_at = $1 WHERE id = (
            SELECT id FROM occurrences WHERE state = '{STATE_FANNING_OUT}' AND updated_at <= $2
            ORDER BY id LIMIT 1{lock})
         RETURNING id"
    );
    let row = ctx
        .db
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [now.into(), cutoff.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?)
}

enum Step {
    More,
    Finished,
    Paused,
}

/// One chunk, in one transaction: the next recipients after the cursor become deliveries, the
/// cursor moves, the lease is renewed.
async fn chunk(ctx: &Fanout, occurrence_id: i64) -> Result<Step> {
    let now = Utc::now();
    let txn = ctx.db.begin().await?;
    let Some(occ) = occurrence::Entity::find_by_id(occurrence_id)
        .one(&txn)
        .await?
    else {
        return Ok(Step::Finished);
    };
    if occ.state != STATE_FANNING_OUT {
        return Ok(Step::Finished);
    }
    // A child of the occurrence's span, whichever scheduler fired it.
    let span = tracing::info_span!(
        "fan-out chunk",
        heydoc.occurrence_id = occurrence_id,
        heydoc.schedule_id = occ.schedule_id,
        heydoc.cursor = occ.cursor.unwrap_or(0),
        heydoc.deliveries = tracing::field::Empty,
    );
    heydoc_telemetry::propagation::set_parent_traceparent(&span, occ.trace_context.as_deref());
    chunk_of(ctx, txn, occ, now, &span)
        .instrument(span.clone())
        .await
}

async fn chunk_of(
    ctx: &Fanout,
    txn: sea_orm::DatabaseTransaction,
    occ: occurrence::Model,
    now: DateTime<Utc>,
    span: &tracing::Span,
) -> Result<Step> {
    let occurrence_id = occ.id;
    // The schedule row is held (shared) until this chunk commits, so a cancel, a delete or a
    // "sent" waits for the chunk and then sees (and skips) the deliveries it made.
    let mut find = schedule::Entity::find_by_id(occ.schedule_id);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        find = find.lock_shared();
    }
    let schedule = find.one(&txn).await?;
    // Cancelled, or ended by the client marking it sent: nothing more is fanned out.
    let Some(schedule) = schedule.filter(|s| {
        s.status != ScheduleStatus::Cancelled.as_str() && s.status != ScheduleStatus::Sent.as_str()
    }) else {
        set_state(&txn, occurrence_id, STATE_CANCELLED, occ.cursor, 0, now).await?;
        txn.commit().await?;
        return Ok(Step::Finished);
    };
    if schedule.status == ScheduleStatus::Paused.as_str() {
        // Stop here; the lease runs out and the fan-out resumes after the schedule does.
        return Ok(Step::Paused);
    }
    let recipients: Vec<String> =
        serde_json::from_value(schedule.recipients.clone()).unwrap_or_default();
    let tag_ids: Vec<i32> = serde_json::from_value(schedule.tag_ids.clone()).unwrap_or_default();
    if occ.cursor.is_none() && !recipients.is_empty() {
        ensure_contacts(&txn, &recipients, now).await?;
    }
    let cursor = occ.cursor.unwrap_or(0);
    let limit = ctx.chunk.max(1);
    let personal = schedule
        .message
        .as_deref()
        .is_some_and(template::has_placeholders)
        || schedule
            .template
            .as_ref()
            .is_some_and(template::value_has_placeholders);
    let rows = next_audience(&txn, &recipients, &tag_ids, cursor as i32, limit, personal).await?;
    if !rows.is_empty() {
        insert_deliveries(&txn, ctx, &schedule, occurrence_id, &rows, now).await?;
    }
    span.record("heydoc.deliveries", rows.len());
    let last = rows.last().map(|r| i64::from(r.id)).unwrap_or(cursor);
    let finished = (rows.len() as u64) < limit;
    let state = if finished {
        STATE_DONE
    } else {
        STATE_FANNING_OUT
    };
    set_state(
        &txn,
        occurrence_id,
        state,
        Some(last),
        rows.len() as i32,
        now,
    )
    .await?;
    if finished {
        // In the same transaction: the event exists if and only if the run is complete.
        let event = crate::outbound::OccurrenceCompleted {
            schedule_id: schedule.id,
            occurrence_id,
            fire_at: occ.fire_at,
            deliveries: occ.planned + rows.len() as i32,
        };
        crate::events::emit(
            &txn,
            crate::outbound::OutboundEvent::OccurrenceCompleted(event),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    metrics::counter!(heydoc_telemetry::metrics::FANOUT_DELIVERIES).increment(rows.len() as u64);
    if finished {
        tracing::info!(
            occurrence_id,
            schedule_id = schedule.id,
            planned = occ.planned + rows.len() as i32,
            "fan-out done"
        );
        Ok(Step::Finished)
    } else {
        Ok(Step::More)
    }
}

/// One member of the audience.
#[derive(Debug, Clone, PartialEq)]
struct Recipient {
    id: i32,
    phone: String,
    /// Why this contact gets nothing: opted out, or suppressed by WhatsApp's answer.
    skip: Option<String>,
    /// The fields placeholders name; read only when the message has placeholders.
    name: String,
    attributes: serde_json::Value,
}

/// The next `limit` contacts of the audience after `after`, in id order: explicit recipients
/// plus contacts carrying any of the tags. The two are read
/// separately, each with a plan that starts at the cursor, and merged (an OR of both makes
/// PostgreSQL hash the tag's remaining membership on every chunk). Fewer than `limit` rows
/// means the audience is exhausted: each part returned fewer than `limit` too.
async fn next_audience(
    txn: &impl ConnectionTrait,
    recipients: &[String],
    tag_ids: &[i32],
    after: i32,
    limit: u64,
    personal: bool,
) -> Result<Vec<Recipient>> {
    let mut rows = Vec::new();
    if !recipients.is_empty() {
        let listed = Condition::all().add(contact::Column::Phone.is_in(recipients.iter().cloned()));
        rows.extend(audience_page(txn, listed, after, limit, personal).await?);
    }
    if !tag_ids.is_empty() {
        rows.extend(audience_page(txn, tagged(tag_ids, after), after, limit, personal).await?);
    }
    rows.sort_unstable_by_key(|r: &Recipient| r.id);
    rows.dedup_by_key(|r| r.id);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
}

async fn audience_page(
    txn: &impl ConnectionTrait,
    audience: Condition,
    after: i32,
    limit: u64,
    personal: bool,
) -> Result<Vec<Recipient>> {
    let query = contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .column(contact::Column::Phone)
        .column(contact::Column::OptedOutAt)
        .column(contact::Column::SuppressedReason)
        .filter(contact::Column::Id.gt(after))
        .filter(audience)
        .order_by_asc(contact::Column::Id)
        .limit(limit);
    if !personal {
        let rows: Vec<AudienceRow> = query.into_tuple().all(txn).await?;
        return Ok(rows
            .into_iter()
            .map(|(id, phone, opted_out_at, suppressed)| Recipient {
                id,
                phone,
                skip: skip_reason(opted_out_at, suppressed),
                name: String::new(),
                attributes: serde_json::Value::Null,
            })
            .collect());
    }
    let rows: Vec<PersonalRow> = query
        .column(contact::Column::Name)
        .column(contact::Column::Attributes)
        .into_tuple()
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, phone, opted_out_at, suppressed, name, attributes)| Recipient {
                id,
                phone,
                skip: skip_reason(opted_out_at, suppressed),
                name,
                attributes,
            },
        )
        .collect())
}

/// AudienceRow with the name and attributes placeholders may name.
type PersonalRow = (
    i32,
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    String,
    serde_json::Value,
);

/// id, phone, opted_out_at, suppressed_reason.
type AudienceRow = (i32, String, Option<DateTime<Utc>>, Option<String>);

/// Why a contact gets no campaign message, in words the campaign results show.
fn skip_reason(opted_out_at: Option<DateTime<Utc>>, suppressed: Option<String>) -> Option<String> {
    match (opted_out_at, suppressed) {
        (Some(at), _) => Some(format!(
            "opted out of campaigns on {}",
            at.format("%Y-%m-%d %H:%M UTC")
        )),
        (None, Some(reason)) => Some(format!("suppressed: {reason}")),
        (None, None) => None,
    }
}

/// Contacts carrying any of the tags. The cursor bounds the memberships too: without it
/// PostgreSQL merge-joins the tag's whole membership from its first contact on every chunk
/// (O(audience) per chunk, ~60 ms at a million); with it the join starts where the chunk does
/// (~0.4 ms).
fn tagged(tag_ids: &[i32], after: i32) -> Condition {
    Condition::all().add(Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(contact_tag::Entity)
            .and_where(
                Expr::col((contact_tag::Entity, contact_tag::Column::ContactId))
                    .equals((contact::Entity, contact::Column::Id)),
            )
            .and_where(contact_tag::Column::ContactId.gt(after))
            .and_where(contact_tag::Column::TagId.is_in(tag_ids.iter().copied()))
            .to_owned(),
    ))
}

/// Explicit recipients who are not contacts yet become contacts, so that every delivery has
/// its contact and the chat log shows it.
async fn ensure_contacts(
    txn: &impl ConnectionTrait,
    phones: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    for batch in phones.chunks(1000) {
        let models = batch
            .iter()
            .filter_map(|p| heydoc_domain::Phone::parse(p).ok())
            .map(|p| new_contact(&p, "", false, now));
        contact::Entity::insert_many(models)
            .on_conflict(
                OnConflict::column(contact::Column::Phone)
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(txn)
            .await?;
    }
    Ok(())
}

async fn insert_deliveries(
    txn: &impl ConnectionTrait,
    ctx: &Fanout,
    schedule: &schedule::Model,
    occurrence_id: i64,
    rows: &[Recipient],
    now: DateTime<Utc>,
) -> Result<()> {
    let template = schedule.template.clone();
    let (message_type, text, payload) = match (&schedule.message, template) {
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
    for part in rows.chunks(500) {
        // Each recipient's own text (and template parameters) when the message names contact
        // fields; a recipient lacking a value without a fallback is skipped, saying which.
        let outgoing: Vec<Delivery> = part
            .iter()
            .map(|r| personalise(r, &text, payload.as_ref(), personal))
            .collect();
        let models = part
            .iter()
            .zip(&outgoing)
            .map(|(r, d)| message::ActiveModel {
                contact_id: Set(r.id),
                message_id: Set(None),
                direction: Set(Direction::Outgoing.as_str().into()),
                sender_phone: Set(number.clone()),
                receiver_phone: Set(r.phone.clone()),
                message_type: Set(message_type.into()),
                message_text: Set(d.text.clone()),
                payload: Set(d.payload.clone()),
                timestamp: Set(now),
                is_read: Set(true),
                status: Set(if d.skip.is_some() {
                    MessageStatus::Skipped.as_str().into()
                } else {
                    MessageStatus::Queued.as_str().into()
                }),
                attempts: Set(0),
                next_attempt_at: Set(None),
                last_error_code: Set(None),
                last_error_reason: Set(d.skip.clone()),
                enqueued_at: Set(None),
                origin: Set("occurrence".into()),
                occurrence_id: Set(Some(occurrence_id)),
                idempotency_key: Set(None),
                request_hash: Set(None),
                created_by: Set(None),
                updated_at: Set(now),
                ..Default::default()
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
        let preview: sea_orm::sea_query::SimpleExpr = if personal {
            let mut case = sea_orm::sea_query::CaseStatement::new();
            for (id, d) in &sent {
                case = case.case(
                    contact::Column::Id.eq(*id),
                    d.text.chars().take(512).collect::<String>(),
                );
            }
            case.finally(Expr::col(contact::Column::LastMessage)).into()
        } else {
            Expr::value(text.chars().take(512).collect::<String>())
        };
        contact::Entity::update_many()
            .col_expr(
                contact::Column::MessageCount,
                Expr::col(contact::Column::MessageCount).add(1),
            )
            .col_expr(contact::Column::LastMessage, preview)
            .col_expr(contact::Column::LastMessageAt, Expr::value(now))
            .col_expr(contact::Column::LastActivityAt, Expr::value(now))
            .col_expr(contact::Column::UpdatedAt, Expr::value(now))
            .filter(contact::Column::Id.is_in(sent.iter().map(|(id, _)| *id)))
            .exec(txn)
            .await?;
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

async fn set_state(
    txn: &impl ConnectionTrait,
    id: i64,
    state: &str,
    cursor: Option<i64>,
    added: i32,
    now: DateTime<Utc>,
) -> Result<()> {
    occurrence::Entity::update_many()
        .col_expr(occurrence::Column::State, Expr::value(state))
        .col_expr(occurrence::Column::Cursor, Expr::value(cursor))
        .col_expr(
            occurrence::Column::Planned,
            Expr::col(occurrence::Column::Planned).add(added),
        )
        .col_expr(occurrence::Column::UpdatedAt, Expr::value(now))
        .filter(occurrence::Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_contacts_say_why() {
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(
            skip_reason(at, Some("131050".into())).as_deref(),
            Some("opted out of campaigns on 2030-01-02 03:04 UTC"),
            "opting out says so even when also suppressed"
        );
        assert_eq!(
            skip_reason(None, Some("131026: message undeliverable".into())).as_deref(),
            Some("suppressed: 131026: message undeliverable")
        );
        assert_eq!(skip_reason(None, None), None);
    }
}
