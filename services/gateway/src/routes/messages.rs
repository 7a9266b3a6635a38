//! A contact's chat: the messages, newest first, and marking them read.

use axum::extract::State;
use chrono::{DateTime, Utc};
use heydoc_domain::{Direction, Phone};
use heydoc_entity::{contact, message};
use sea_orm::sea_query::{Expr, Query as Select, SimpleExpr, SubQueryStatement};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::routes::contacts::find as find_contact;
use crate::routes::{page_size, Envelope};
use crate::state::AppState;

/// A message as the seed shows it, plus HeyDoc's additions.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: i64,
    /// WhatsApp's message id (wamid); empty until WhatsApp has accepted an outgoing message.
    pub message_id: String,
    pub sender_phone: String,
    pub receiver_phone: String,
    /// `text`, `template`, `image`, ...
    pub message_type: String,
    pub message_text: String,
    pub timestamp: DateTime<Utc>,
    /// `incoming` or `outgoing`.
    pub direction: String,
    pub is_read: bool,
    /// `received` for incoming; for outgoing `queued`, `sending`, `retrying`, `sent`,
    /// `delivered`, `read`, `failed`, `skipped` or `unknown`.
    pub status: String,
    /// WhatsApp's error code when the message failed.
    pub error_code: Option<i32>,
    /// Why the message failed or was skipped.
    pub error_reason: Option<String>,
}

impl From<message::Model> for MessageOut {
    fn from(m: message::Model) -> Self {
        Self {
            id: m.id,
            message_id: m.message_id.unwrap_or_default(),
            sender_phone: m.sender_phone,
            receiver_phone: m.receiver_phone,
            message_type: m.message_type,
            message_text: m.message_text,
            timestamp: m.timestamp,
            direction: m.direction,
            is_read: m.is_read,
            status: m.status,
            error_code: m.last_error_code,
            error_reason: m.last_error_reason,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChatParams {
    /// How many messages, 1 to 200 (default 20).
    pub limit: Option<u64>,
    /// Only messages older than this message id (the `id` of the last one on the previous page).
    pub before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadOut {
    pub phone: String,
    /// Always 0 afterwards.
    pub unread_count: i32,
    /// How many incoming messages were marked read.
    pub marked: u64,
}

/// The conversation with one contact, newest first.
#[utoipa::path(
    get, path = "/api/messages/{phone}", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number"), ChatParams),
    responses(
        (status = 200, body = Vec<MessageOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Path(phone): Path<String>,
    Query(params): Query<ChatParams>,
) -> ApiResult<axum::Json<Vec<MessageOut>>> {
    let phone = Phone::parse(&phone)?;
    // One round trip: the contact is resolved inside the query. Only an empty page needs a
    // second look, to tell an unknown contact (404) from an empty chat.
    let contact_id = Select::select()
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
    if let Some(before) = params.before {
        query = query.filter(message::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(message::Column::Id)
        .limit(page_size(params.limit, 20, 200))
        .all(&state.db)
        .await?;
    if rows.is_empty() {
        find_contact(&state.db, phone.as_str()).await?;
    }
    Ok(axum::Json(rows.into_iter().map(MessageOut::from).collect()))
}

/// Marks the contact's incoming messages read and clears its unread count.
#[utoipa::path(
    post, path = "/api/messages/{phone}/read", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number")),
    responses((status = 200, body = Envelope<ReadOut>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn mark_read(
    State(state): State<AppState>,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<Envelope<ReadOut>>> {
    let txn = state.db.begin().await?;
    let contact = find_contact(&txn, &phone).await?;
    let marked = message::Entity::update_many()
        .col_expr(message::Column::IsRead, Expr::value(true))
        .filter(message::Column::ContactId.eq(contact.id))
        .filter(message::Column::Direction.eq(Direction::Incoming.as_str()))
        .filter(message::Column::IsRead.eq(false))
        .exec(&txn)
        .await?
        .rows_affected;
    contact::Entity::update_many()
        .col_expr(contact::Column::UnreadCount, Expr::value(0))
        .filter(contact::Column::Id.eq(contact.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    let out = ReadOut {
        phone: contact.phone,
        unread_count: 0,
        marked,
    };
    Ok(axum::Json(Envelope::ok(out, "Messages marked as read")))
}
