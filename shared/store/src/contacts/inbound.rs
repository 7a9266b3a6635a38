//! The contact an inbound message is from, by phone or by business-scoped user id.

use chrono::{DateTime, Utc};
use heydoc_domain::Phone;
use heydoc_entity::contact;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::find_or_create;
use crate::Result;

/// The contact an inbound message is from. WhatsApp may name the user by phone, by their
/// business-scoped user id, or both: a contact found by either is used (and learns the other),
/// and when a user first known only by the id later shows their phone too, the two contacts
/// become one (the id's messages and tags move to the phone's).
pub async fn resolve_inbound(
    db: &impl ConnectionTrait,
    from: &Phone,
    user_id: Option<&str>,
    username: Option<&str>,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<contact::Model> {
    let Some(user_id) = user_id.filter(|u| !u.is_empty()) else {
        return find_or_create(db, from, name, now).await;
    };
    // Known by the id: as its user_id, or as its phone (made before the id was seen as one).
    let by_id = contact::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(contact::Column::UserId.eq(user_id))
                .add(contact::Column::Phone.eq(user_id)),
        )
        .one(db)
        .await?;
    // The contact a phone names (when the message has one).
    let by_phone = if from.is_user_id() {
        None
    } else {
        Some(find_or_create(db, from, name, now).await?)
    };
    let contact = match (by_id, by_phone) {
        (Some(known), None) => known,
        (None, Some(phone)) => phone,
        (None, None) => find_or_create(db, from, name, now).await?,
        (Some(known), Some(phone)) if known.id == phone.id => phone,
        (Some(known), Some(phone)) => {
            merge(db, &known, &phone, now).await?;
            phone
        }
    };
    let mut update = contact::Entity::update_many()
        .col_expr(contact::Column::UserId, Expr::value(user_id))
        .filter(contact::Column::Id.eq(contact.id));
    if let Some(u) = username.filter(|u| !u.is_empty()) {
        let u: String = u.chars().take(64).collect();
        update = update.col_expr(contact::Column::Username, Expr::value(u));
    }
    update.exec(db).await?;
    Ok(contact::Model {
        user_id: Some(user_id.to_string()),
        username: username.map(str::to_string).or(contact.username),
        ..contact
    })
}

/// Folds contact `from` into `into`: its messages, tags and counters, and an opt-out or a
/// suppression it had; then it is deleted.
async fn merge(
    db: &impl ConnectionTrait,
    from: &contact::Model,
    into: &contact::Model,
    now: DateTime<Utc>,
) -> Result<()> {
    use heydoc_entity::{contact_tag, message};
    // A campaign run that reached both (a delivery each) keeps one per person: the other's
    // unsent one is skipped, and the rest leave the run (they stay in the chat).
    let runs_of_into = sea_orm::sea_query::Query::select()
        .column(message::Column::OccurrenceId)
        .from(message::Entity)
        .and_where(message::Column::ContactId.eq(into.id))
        .and_where(message::Column::OccurrenceId.is_not_null())
        .to_owned();
    crate::deliveries::skip_unsent("the same person had another delivery in this run", now)
        .filter(message::Column::ContactId.eq(from.id))
        .filter(message::Column::OccurrenceId.in_subquery(runs_of_into.clone()))
        .exec(db)
        .await?;
    message::Entity::update_many()
        .col_expr(
            message::Column::OccurrenceId,
            Expr::value(Option::<i64>::None),
        )
        .filter(message::Column::ContactId.eq(from.id))
        .filter(message::Column::OccurrenceId.in_subquery(runs_of_into))
        .exec(db)
        .await?;
    message::Entity::update_many()
        .col_expr(message::Column::ContactId, Expr::value(into.id))
        .filter(message::Column::ContactId.eq(from.id))
        .exec(db)
        .await?;
    let tags = contact_tag::Entity::find()
        .filter(contact_tag::Column::ContactId.eq(from.id))
        .all(db)
        .await?;
    for t in tags {
        contact_tag::Entity::insert(contact_tag::ActiveModel {
            contact_id: Set(into.id),
            tag_id: Set(t.tag_id),
        })
        .on_conflict(
            OnConflict::columns([contact_tag::Column::ContactId, contact_tag::Column::TagId])
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(db)
        .await?;
    }
    contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::ContactId.eq(from.id))
        .exec(db)
        .await?;
    heydoc_entity::conversation_note::Entity::update_many()
        .col_expr(
            heydoc_entity::conversation_note::Column::ContactId,
            Expr::value(into.id),
        )
        .filter(heydoc_entity::conversation_note::Column::ContactId.eq(from.id))
        .exec(db)
        .await?;
    let newer = from.last_activity_at > into.last_activity_at;
    // The phone's contact's attributes win key by key; its name, unless it has none.
    let mut attributes = from.attributes.clone();
    if let (Some(merged), Some(own)) = (attributes.as_object_mut(), into.attributes.as_object()) {
        for (k, v) in own {
            merged.insert(k.clone(), v.clone());
        }
    } else {
        attributes = into.attributes.clone();
    }
    let mut update = contact::Entity::update_many()
        .col_expr(
            contact::Column::MessageCount,
            Expr::col(contact::Column::MessageCount).add(from.message_count),
        )
        .col_expr(
            contact::Column::UnreadCount,
            Expr::col(contact::Column::UnreadCount).add(from.unread_count),
        )
        .col_expr(contact::Column::Attributes, Expr::value(attributes))
        .col_expr(
            contact::Column::OptedOutAt,
            Expr::value(into.opted_out_at.or(from.opted_out_at)),
        )
        .col_expr(
            contact::Column::SuppressedReason,
            Expr::value(
                into.suppressed_reason
                    .clone()
                    .or(from.suppressed_reason.clone()),
            ),
        )
        .col_expr(
            contact::Column::LastInboundAt,
            Expr::value(into.last_inbound_at.max(from.last_inbound_at)),
        )
        .col_expr(contact::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            contact::Column::ConversationAt,
            Expr::value(into.conversation_at.max(from.conversation_at)),
        )
        .col_expr(
            contact::Column::AwaitingReply,
            Expr::value(into.awaiting_reply || from.awaiting_reply),
        )
        .col_expr(
            contact::Column::AssigneeId,
            Expr::value(into.assignee_id.or(from.assignee_id)),
        )
        .filter(contact::Column::Id.eq(into.id));
    if into.name.is_empty() && !from.name.is_empty() {
        update = update.col_expr(contact::Column::Name, Expr::value(from.name.clone()));
    }
    if into.last_number.is_none() && from.last_number.is_some() {
        update = update.col_expr(
            contact::Column::LastNumber,
            Expr::value(from.last_number.clone()),
        );
    }
    if newer {
        update = update
            .col_expr(
                contact::Column::LastMessage,
                Expr::value(from.last_message.clone()),
            )
            .col_expr(
                contact::Column::LastMessageAt,
                Expr::value(from.last_message_at),
            )
            .col_expr(
                contact::Column::LastActivityAt,
                Expr::value(from.last_activity_at),
            );
    }
    update.exec(db).await?;
    contact::Entity::delete_by_id(from.id).exec(db).await?;
    tracing::info!(
        from = from.id,
        into = into.id,
        "contacts of one WhatsApp user merged"
    );
    Ok(())
}
