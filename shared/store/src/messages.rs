//! Reading a chat, marking it read, and queuing a send from the API.

use chrono::{DateTime, Utc};
use heydoc_domain::{Direction, Phone};
use heydoc_entity::{contact, message};
use sea_orm::sea_query::{Expr, Query, SimpleExpr, SubQueryStatement};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{chat, contacts, Conn, Result, StoreError};

pub use message::Model as Message;

/// Up to `limit` messages of the chat with `phone`, newest first, older than message `before`.
/// An unknown contact is `NotFound`.
pub async fn page(
    db: &impl Conn,
    phone: &Phone,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Message>> {
    // One round trip: the contact is resolved inside the query. Only an empty page needs a
    // second look, to tell an unknown contact from an empty chat.
    let contact_id = Query::select()
        .column(contact::Column::Id)
        .from(contact::Entity)
        .and_where(contact::Column::Phone.eq(phone.as_str()))
        .to_owned();
    // `contact_id = (SELECT ...)`, a scalar subquery, lets PostgreSQL walk the (contact_id, id)
    // index backwards and stop after `limit` rows.
    let contact_id = SimpleExpr::SubQuery(
        None,
        Box::new(SubQueryStatement::SelectStatement(contact_id)),
    );
    let mut query =
        message::Entity::find().filter(Expr::col(message::Column::ContactId).eq(contact_id));
    if let Some(before) = before {
        query = query.filter(message::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(message::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    if rows.is_empty() {
        contacts::get(db, phone).await?;
    }
    Ok(rows)
}

/// Marks the contact's incoming messages read and clears its unread count; how many were
/// marked.
pub async fn mark_read(db: &impl Conn, contact_id: i32) -> Result<u64> {
    let marked = message::Entity::update_many()
        .col_expr(message::Column::IsRead, Expr::value(true))
        .filter(message::Column::ContactId.eq(contact_id))
        .filter(message::Column::Direction.eq(Direction::Incoming.as_str()))
        .filter(message::Column::IsRead.eq(false))
        .exec(db)
        .await?
        .rows_affected;
    contact::Entity::update_many()
        .col_expr(contact::Column::UnreadCount, Expr::value(0))
        .filter(contact::Column::Id.eq(contact_id))
        .exec(db)
        .await?;
    Ok(marked)
}

/// The message first queued with this Idempotency-Key.
/// The contact's latest inbound message (what a read receipt or a typing indicator names).
pub async fn latest_inbound(db: &impl Conn, contact_id: i32) -> Result<Option<Message>> {
    use sea_orm::QueryOrder;
    Ok(message::Entity::find()
        .filter(message::Column::ContactId.eq(contact_id))
        .filter(message::Column::Direction.eq(heydoc_domain::Direction::Incoming.as_str()))
        .order_by_desc(message::Column::Id)
        .one(db)
        .await?)
}

pub async fn by_id(db: &impl Conn, id: i64) -> Result<Option<Message>> {
    Ok(message::Entity::find_by_id(id).one(db).await?)
}

pub async fn by_idempotency_key(db: &impl Conn, key: &str) -> Result<Option<Message>> {
    Ok(message::Entity::find()
        .filter(message::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

/// A text (and optional template payload) the API queues for one contact.
#[derive(Debug)]
pub struct ApiSend<'a> {
    /// `text`, or the kind of file it sends (`image`, `document`, ...).
    pub kind: &'a str,
    pub contact_id: i32,
    /// The business number it goes from.
    pub from: &'a str,
    pub to: &'a str,
    pub text: &'a str,
    pub payload: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub created_by: i32,
    /// The request's `traceparent`, which the relay carries on if it publishes.
    pub trace_context: Option<String>,
}

/// Queues the send and bumps the contact's counters (in the caller's transaction). A second
/// use of the same Idempotency-Key is a `Conflict`.
pub async fn queue_api_send(
    db: &impl Conn,
    send: ApiSend<'_>,
    now: DateTime<Utc>,
) -> Result<Message> {
    let row = message::ActiveModel {
        message_type: Set(send.kind.to_string()),
        payload: Set(send.payload),
        idempotency_key: Set(send.idempotency_key),
        request_hash: Set(Some(send.request_hash)),
        created_by: Set(Some(send.created_by)),
        trace_context: Set(send.trace_context),
        ..chat::queued_text(send.contact_id, send.from, send.to, send.text, "api", now)
    };
    let inserted = message::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(|e| StoreError::unique_or_db(e, "this Idempotency-Key was used meanwhile"))?;
    chat::bump_counters(db, send.contact_id, send.text, now, false).await?;
    // A send through the API is the business answering (campaigns are not).
    crate::conversations::replied(db, send.contact_id, now).await?;
    Ok(inserted)
}
