//! Writes to the chat log that keep the contact's counters in the same transaction, and the
//! forward-only application of WhatsApp's delivery statuses.

use chrono::{DateTime, Utc};
use heydoc_domain::{Direction, MessageStatus, Phone};
use heydoc_entity::{contact, message};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use crate::{contacts, Result};

/// A message WhatsApp delivered to us.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub wamid: String,
    /// The user's phone, or their business-scoped user id when WhatsApp gave no phone.
    pub from: Phone,
    /// Their business-scoped user id and username, when WhatsApp gave them.
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub profile_name: Option<String>,
    /// Our own business number, as the receiver.
    pub to: String,
    /// That number's phone number id (the webhook's `metadata.phone_number_id`): the contact's
    /// replies go out from it.
    pub number: Option<String>,
    pub message_type: String,
    pub text: String,
    pub payload: Option<serde_json::Value>,
    pub timestamp: DateTime<Utc>,
}

/// Records an inbound message once: a replay (same wamid) changes nothing and returns `None`.
pub async fn record_inbound(
    db: &impl TransactionTrait,
    msg: &Inbound,
    now: DateTime<Utc>,
) -> Result<Option<message::Model>> {
    let txn = db.begin().await?;
    let contact = contacts::resolve_inbound(
        &txn,
        &msg.from,
        msg.user_id.as_deref(),
        msg.username.as_deref(),
        msg.profile_name.as_deref(),
        now,
    )
    .await?;
    let row = message::ActiveModel {
        contact_id: Set(contact.id),
        message_id: Set(Some(msg.wamid.clone())),
        direction: Set(Direction::Incoming.as_str().into()),
        sender_phone: Set(msg.from.as_str().into()),
        receiver_phone: Set(msg.to.clone()),
        message_type: Set(msg.message_type.clone()),
        message_text: Set(msg.text.clone()),
        payload: Set(msg.payload.clone()),
        timestamp: Set(msg.timestamp),
        is_read: Set(false),
        status: Set(MessageStatus::Received.as_str().into()),
        attempts: Set(0),
        origin: Set("webhook".into()),
        updated_at: Set(now),
        ..Default::default()
    };
    let inserted = message::Entity::insert(row)
        .on_conflict(
            OnConflict::column(message::Column::MessageId)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&txn)
        .await?;
    let id = match inserted {
        sea_orm::TryInsertResult::Inserted(r) => r.last_insert_id,
        _ => {
            txn.rollback().await?;
            return Ok(None);
        }
    };
    bump_counters(&txn, contact.id, &msg.text, msg.timestamp, true).await?;
    crate::conversations::inbound(&txn, contact.id, msg.timestamp).await?;
    if let Some(number) = msg.number.as_deref().filter(|n| !n.is_empty()) {
        contact::Entity::update_many()
            .col_expr(contact::Column::LastNumber, Expr::value(number))
            .filter(contact::Column::Id.eq(contact.id))
            .exec(&txn)
            .await?;
    }
    let model = message::Entity::find_by_id(id).one(&txn).await?;
    txn.commit().await?;
    Ok(model)
}

/// A new outgoing text from `from` to `to`, queued for the sender: the row is also its outbox
/// entry (`enqueued_at` null until the bus confirms it).
pub fn queued_text(
    contact_id: i32,
    from: &str,
    to: &str,
    text: &str,
    origin: &str,
    now: DateTime<Utc>,
) -> message::ActiveModel {
    message::ActiveModel {
        contact_id: Set(contact_id),
        message_id: Set(None),
        direction: Set(Direction::Outgoing.as_str().into()),
        sender_phone: Set(from.into()),
        receiver_phone: Set(to.into()),
        message_type: Set("text".into()),
        message_text: Set(text.into()),
        timestamp: Set(now),
        is_read: Set(true),
        status: Set(MessageStatus::Queued.as_str().into()),
        attempts: Set(0),
        next_attempt_at: Set(None),
        enqueued_at: Set(None),
        origin: Set(origin.into()),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Updates the inbox counters for one new message (inside the caller's transaction).
pub async fn bump_counters(
    txn: &impl ConnectionTrait,
    contact_id: i32,
    text: &str,
    at: DateTime<Utc>,
    inbound: bool,
) -> Result<()> {
    bump_many(txn, &[contact_id], Preview::Same(text), at).await?;
    if inbound {
        contact::Entity::update_many()
            .col_expr(
                contact::Column::UnreadCount,
                Expr::col(contact::Column::UnreadCount).add(1),
            )
            .filter(contact::Column::Id.eq(contact_id))
            .exec(txn)
            .await?;
        // The 24-hour window only moves forward too.
        contact::Entity::update_many()
            .col_expr(contact::Column::LastInboundAt, Expr::value(at))
            .filter(contact::Column::Id.eq(contact_id))
            .filter(
                contact::Column::LastInboundAt
                    .is_null()
                    .or(contact::Column::LastInboundAt.lt(at)),
            )
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The inbox preview of new messages: one text for every contact, or each contact's own.
#[derive(Debug, Clone, Copy)]
pub enum Preview<'a> {
    Same(&'a str),
    Each(&'a [(i32, String)]),
}

/// Counts one new message for each of these contacts (one statement for all), and moves their
/// preview, last-message and activity times to `at` (invariant 7: only forward in time, so a
/// late webhook for an older message never replaces a newer preview).
pub async fn bump_many(
    txn: &impl ConnectionTrait,
    contact_ids: &[i32],
    preview: Preview<'_>,
    at: DateTime<Utc>,
) -> Result<()> {
    if contact_ids.is_empty() {
        return Ok(());
    }
    let clip = |t: &str| t.chars().take(512).collect::<String>();
    contact::Entity::update_many()
        .col_expr(
            contact::Column::MessageCount,
            Expr::col(contact::Column::MessageCount).add(1),
        )
        .col_expr(contact::Column::UpdatedAt, Expr::value(at))
        .filter(contact::Column::Id.is_in(contact_ids.iter().copied()))
        .exec(txn)
        .await?;
    let text: sea_orm::sea_query::SimpleExpr = match preview {
        Preview::Same(text) => Expr::value(clip(text)),
        Preview::Each(texts) => {
            let mut case = sea_orm::sea_query::CaseStatement::new();
            for (id, text) in texts {
                case = case.case(contact::Column::Id.eq(*id), clip(text));
            }
            case.finally(Expr::col(contact::Column::LastMessage)).into()
        }
    };
    contact::Entity::update_many()
        .col_expr(contact::Column::LastMessage, text)
        .col_expr(contact::Column::LastMessageAt, Expr::value(at))
        .col_expr(contact::Column::LastActivityAt, Expr::value(at))
        .filter(contact::Column::Id.is_in(contact_ids.iter().copied()))
        .filter(
            contact::Column::LastMessageAt
                .is_null()
                .or(contact::Column::LastMessageAt.lte(at)),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// A delivery status WhatsApp reported for one of our messages.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub wamid: String,
    pub status: MessageStatus,
    /// Our delivery id, echoed back in `biz_opaque_callback_data`.
    pub delivery_id: Option<i64>,
    pub error_code: Option<i32>,
    pub error_reason: Option<String>,
    /// What Meta says it charges: (category, type, billable).
    pub pricing: Option<(String, String, bool)>,
}

/// Records what Meta charges for the message a status names (the first pricing it reports
/// stays: every status of a message carries the same).
pub async fn record_pricing(db: &impl ConnectionTrait, update: &StatusUpdate) -> Result<()> {
    let Some((category, kind, billable)) = &update.pricing else {
        return Ok(());
    };
    let mut which =
        sea_orm::Condition::any().add(message::Column::MessageId.eq(update.wamid.as_str()));
    if let Some(id) = update.delivery_id {
        which = which.add(
            sea_orm::Condition::all()
                .add(message::Column::Id.eq(id))
                .add(message::Column::MessageId.is_null()),
        );
    }
    let cut = |s: &str| s.chars().take(40).collect::<String>();
    message::Entity::update_many()
        .col_expr(message::Column::PricingCategory, Expr::value(cut(category)))
        .col_expr(message::Column::PricingType, Expr::value(cut(kind)))
        .col_expr(message::Column::Billable, Expr::value(*billable))
        .filter(message::Column::Direction.eq(Direction::Outgoing.as_str()))
        .filter(message::Column::PricingCategory.is_null())
        .filter(which)
        .exec(db)
        .await?;
    Ok(())
}

/// The statuses a message may be in for `next` to replace it. Failure is terminal, nothing
/// moves a message backwards, and a message waiting for its next try (`retrying`: Meta refused
/// the last one, or reported it failed for the number's sake) is not moved by a late status
/// about the try before.
fn replaceable_by(next: MessageStatus) -> Vec<&'static str> {
    MessageStatus::ALL
        .iter()
        .filter(|s| {
            !matches!(
                s,
                MessageStatus::Failed
                    | MessageStatus::Received
                    | MessageStatus::Skipped
                    | MessageStatus::Retrying
            ) && s.rank() < next.rank()
        })
        .map(|s| s.as_str())
        .collect()
}

/// Moves a message forward to `update.status`; returns whether anything changed. A replayed or
/// out-of-date status changes nothing. When no message carries the wamid yet (the send's
/// outcome was unknown), the delivery id finds the row and the wamid is recorded on it.
pub async fn apply_status(
    db: &impl ConnectionTrait,
    update: &StatusUpdate,
    now: DateTime<Utc>,
) -> Result<bool> {
    let from = replaceable_by(update.status);
    let build = || {
        let mut q = message::Entity::update_many()
            .col_expr(message::Column::Status, Expr::value(update.status.as_str()))
            .col_expr(message::Column::UpdatedAt, Expr::value(now))
            .filter(message::Column::Direction.eq(Direction::Outgoing.as_str()))
            .filter(message::Column::Status.is_in(from.clone()));
        if update.status == MessageStatus::Failed {
            q = q
                .col_expr(
                    message::Column::LastErrorCode,
                    Expr::value(update.error_code),
                )
                .col_expr(
                    message::Column::LastErrorReason,
                    Expr::value(update.error_reason.clone()),
                );
        }
        q
    };
    let by_wamid = build()
        .filter(message::Column::MessageId.eq(update.wamid.as_str()))
        .exec(db)
        .await?;
    if by_wamid.rows_affected > 0 {
        return Ok(true);
    }
    let Some(delivery_id) = update.delivery_id else {
        return Ok(false);
    };
    let known = message::Entity::find()
        .filter(message::Column::MessageId.eq(update.wamid.as_str()))
        .one(db)
        .await?;
    if known.is_some() {
        return Ok(false);
    }
    let by_id = build()
        .col_expr(
            message::Column::MessageId,
            Expr::value(update.wamid.as_str()),
        )
        .filter(message::Column::Id.eq(delivery_id))
        .filter(message::Column::MessageId.is_null())
        .exec(db)
        .await?;
    Ok(by_id.rows_affected > 0)
}

/// The inbound message with this wamid, if it is still its contact's latest inbound message.
pub async fn latest_inbound_if(
    db: &impl ConnectionTrait,
    wamid: &str,
) -> Result<Option<message::Model>> {
    let Some(found) = message::Entity::find()
        .filter(message::Column::MessageId.eq(wamid))
        .filter(message::Column::Direction.eq(Direction::Incoming.as_str()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let newer = message::Entity::find()
        .filter(message::Column::ContactId.eq(found.contact_id))
        .filter(message::Column::Direction.eq(Direction::Incoming.as_str()))
        .filter(message::Column::Id.gt(found.id))
        .one(db)
        .await?;
    Ok(newer.is_none().then_some(found))
}

/// The message with this wamid.
pub async fn by_wamid(db: &impl ConnectionTrait, wamid: &str) -> Result<Option<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::MessageId.eq(wamid))
        .one(db)
        .await?)
}

/// The stored trace context of the outgoing message a status concerns.
pub async fn trace_context_of(
    db: &impl ConnectionTrait,
    delivery_id: Option<i64>,
    wamid: &str,
) -> Result<Option<String>> {
    let by = match delivery_id {
        Some(id) => message::Column::Id.eq(id),
        None => message::Column::MessageId.eq(wamid),
    };
    let found: Option<Option<String>> = message::Entity::find()
        .select_only()
        .column(message::Column::TraceContext)
        .filter(by)
        .filter(message::Column::Direction.eq(Direction::Outgoing.as_str()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_is_terminal_and_statuses_move_forward() {
        assert!(replaceable_by(MessageStatus::Read).contains(&"delivered"));
        assert!(!replaceable_by(MessageStatus::Read).contains(&"failed"));
        assert!(!replaceable_by(MessageStatus::Sent).contains(&"delivered"));
        assert!(replaceable_by(MessageStatus::Failed).contains(&"sent"));
        assert!(!replaceable_by(MessageStatus::Failed).contains(&"delivered"));
        assert!(!replaceable_by(MessageStatus::Sent).contains(&"retrying"));
    }
}

/// What an inbound message does to an earlier one instead of being a chat line: the sender's
/// reaction (`None` takes it back), a new text, or a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    Reaction {
        target: String,
        from: String,
        emoji: Option<String>,
    },
    Edit {
        target: String,
        text: String,
    },
    Revoke {
        target: String,
    },
}

impl Revision {
    fn target(&self) -> &str {
        match self {
            Revision::Reaction { target, .. }
            | Revision::Edit { target, .. }
            | Revision::Revoke { target } => target,
        }
    }
}

/// Applies `revision` to the message it names (by wamid), in the caller's transaction, the row
/// locked meanwhile (PostgreSQL): a reaction is kept per sender, an edit keeps the earlier
/// text in the history (a replay of the same edit changes nothing), a revoke marks the message
/// deleted and empties its text. Returns the message's id and contact, or `None` when HeyDoc
/// has no such message (sent from another app, or long gone).
pub async fn revise(
    db: &impl ConnectionTrait,
    revision: &Revision,
    at: DateTime<Utc>,
) -> Result<Option<(i64, i32)>> {
    let mut find = message::Entity::find().filter(message::Column::MessageId.eq(revision.target()));
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        find = find.lock_exclusive();
    }
    let Some(m) = find.one(db).await? else {
        return Ok(None);
    };
    let mut revisions = match m.revisions.clone() {
        Some(serde_json::Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    };
    let when = serde_json::json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut text = m.message_text.clone();
    match revision {
        Revision::Reaction { from, emoji, .. } => {
            let reactions = revisions
                .entry("reactions")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(map) = reactions.as_object_mut() {
                match emoji {
                    Some(e) => {
                        map.insert(from.clone(), serde_json::json!({"emoji": e, "at": when}));
                    }
                    None => {
                        map.remove(from);
                    }
                }
            }
        }
        Revision::Edit { text: new, .. } => {
            if *new == m.message_text {
                return Ok(Some((m.id, m.contact_id)));
            }
            let edits = revisions
                .entry("edits")
                .or_insert_with(|| serde_json::json!([]));
            if let Some(list) = edits.as_array_mut() {
                list.push(serde_json::json!({"text": m.message_text, "replaced_at": when}));
            }
            revisions.insert("edited_at".into(), when);
            text.clone_from(new);
        }
        Revision::Revoke { .. } => {
            revisions.insert("deleted_at".into(), when);
            // The patient took it back: its words are not kept, nor any earlier version.
            revisions.remove("edits");
            text.clear();
        }
    }
    message::Entity::update_many()
        .col_expr(
            message::Column::Revisions,
            Expr::value(serde_json::Value::Object(revisions)),
        )
        .col_expr(message::Column::MessageText, Expr::value(text))
        .col_expr(message::Column::UpdatedAt, Expr::value(at))
        .filter(message::Column::Id.eq(m.id))
        .exec(db)
        .await?;
    Ok(Some((m.id, m.contact_id)))
}
