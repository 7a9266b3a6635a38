//! Finding or creating contacts by phone, safely when two requests race for the same number.

use chrono::{DateTime, Utc};
use heydoc_domain::Phone;
use heydoc_entity::contact;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::{Conn, Result, StoreError};

pub use contact::Model as Contact;

/// The inbox's filter (the export uses it too): phone or name containing `q` (any case), and
/// carrying tag `tag`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub q: Option<String>,
    pub tag: Option<i32>,
    /// Contacts that match whatever their name and phone (those whose messages contain `q`).
    pub said_by: Option<Vec<i32>>,
}

/// At most this many contacts are found by what they said (the first page of a search needs
/// 50; a word in every chat should not read them all).
const MAX_SAID_BY: u64 = 2000;

impl Filter {
    /// Contacts whose phone or name matches `q`.
    pub(crate) fn query(&self) -> sea_orm::Select<contact::Entity> {
        self.build()
    }

    /// The contacts (at most `MAX_SAID_BY`) with a message whose text contains `q`, when `q`
    /// is long enough to search text for (three characters: trigram indexes need them, and a
    /// shorter text would match nearly every message). One query of its own, so that
    /// PostgreSQL answers it from the trigram index on message text.
    pub async fn said_by(&self, db: &impl Conn) -> Result<Vec<i32>> {
        use heydoc_entity::message;
        use sea_orm::sea_query::{Func, LikeExpr};
        let Some(q) = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| q.chars().count() >= 3)
        else {
            return Ok(Vec::new());
        };
        let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
        Ok(message::Entity::find()
            .select_only()
            .column(message::Column::ContactId)
            .distinct()
            .filter(
                Expr::expr(Func::lower(Expr::col(message::Column::MessageText)))
                    .like(LikeExpr::new(&pattern).escape('\\')),
            )
            .limit(MAX_SAID_BY)
            .into_tuple()
            .all(db)
            .await?)
    }

    /// As `query`, and the contacts in `said_by` (those whose messages contain `q`: the
    /// inbox's search, found first with `said_by`).
    pub(crate) fn query_with_text(&self, said_by: &[i32]) -> sea_orm::Select<contact::Entity> {
        Filter {
            said_by: Some(said_by.to_vec()),
            ..self.clone()
        }
        .build()
    }

    fn build(&self) -> sea_orm::Select<contact::Entity> {
        use sea_orm::sea_query::{Expr, Func, LikeExpr, Query};
        use sea_orm::Condition;
        let mut query = contact::Entity::find();
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
            let like = || LikeExpr::new(&pattern).escape('\\');
            let mut any = Condition::any()
                .add(Expr::col(contact::Column::Phone).like(like()))
                .add(Expr::expr(Func::lower(Expr::col(contact::Column::Name))).like(like()));
            // A phone as people write it: "+91 98000-00002" finds 919800000002.
            if let Some(digits) = phone_digits(q) {
                any = any.add(
                    Expr::col(contact::Column::Phone)
                        .like(LikeExpr::new(format!("%{digits}%")).escape('\\')),
                );
            }
            if let Some(ids) = &self.said_by {
                any = any.add(contact::Column::Id.is_in(ids.iter().copied()));
            }
            query = query.filter(any);
        }
        if let Some(tag_id) = self.tag {
            query = query.filter(
                contact::Column::Id.in_subquery(
                    Query::select()
                        .column(heydoc_entity::contact_tag::Column::ContactId)
                        .from(heydoc_entity::contact_tag::Entity)
                        .and_where(heydoc_entity::contact_tag::Column::TagId.eq(tag_id))
                        .to_owned(),
                ),
            );
        }
        query
    }
}

/// The digits of a search that is a phone number written with `+`, spaces, dashes, dots or
/// parentheses; `None` for anything else (or a plain run of digits, which matches as it is).
fn phone_digits(q: &str) -> Option<String> {
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let only_phone_chars = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'));
    (only_phone_chars && !digits.is_empty() && digits != q).then_some(digits)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Up to `limit` contacts matching `filter`, newest activity first, after the `(last_activity_at,
/// id)` of the previous page's last row.
pub async fn inbox_page(
    db: &impl Conn,
    filter: &Filter,
    after: Option<(DateTime<Utc>, i32)>,
    limit: u64,
) -> Result<Vec<Contact>> {
    use sea_orm::{Condition, QuerySelect};
    let mut query = filter.query();
    if let Some((at, id)) = after {
        query = query.filter(
            Condition::any()
                .add(contact::Column::LastActivityAt.lt(at))
                .add(
                    contact::Column::LastActivityAt
                        .eq(at)
                        .and(contact::Column::Id.lt(id)),
                ),
        );
    }
    Ok(query
        .order_by_desc(contact::Column::LastActivityAt)
        .order_by_desc(contact::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Up to `limit` contacts matching `filter` with an id above `after`, by id (the export).
pub async fn by_id_after(
    db: &impl Conn,
    filter: &Filter,
    after: i32,
    limit: u64,
) -> Result<Vec<Contact>> {
    use sea_orm::QuerySelect;
    Ok(filter
        .query()
        .filter(contact::Column::Id.gt(after))
        .order_by_asc(contact::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// The contact with this (normalised) phone, or `NotFound`.
pub async fn get(db: &impl Conn, phone: &Phone) -> Result<Contact> {
    find_by_phone(db, phone.as_str())
        .await?
        .ok_or_else(|| StoreError::not_found(format!("contact {phone} not found")))
}

/// A new contact; `Conflict` when the phone exists.
pub async fn insert(
    db: &impl Conn,
    phone: &Phone,
    name: &str,
    is_group: bool,
    attributes: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<Contact> {
    let mut model = new_contact(phone, name, is_group, now);
    if let Some(attrs) = attributes {
        model.attributes = Set(attrs);
    }
    contact::Entity::insert(model)
        .exec_with_returning(db)
        .await
        .map_err(|e| StoreError::unique_or_db(e, format!("contact {phone} exists")))
}

/// What an update changes; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct Changes {
    pub name: Option<String>,
    pub is_group: Option<bool>,
    pub attributes: Option<serde_json::Value>,
    /// `Some(true)` opts out (keeping the first opt-out time), `Some(false)` back in.
    pub opted_out: Option<bool>,
}

pub async fn update(
    db: &impl Conn,
    existing: Contact,
    changes: Changes,
    now: DateTime<Utc>,
) -> Result<Contact> {
    let was_opted_out = existing.opted_out_at.is_some();
    let mut model: contact::ActiveModel = existing.into();
    if let Some(name) = changes.name {
        model.name = Set(name);
    }
    if let Some(is_group) = changes.is_group {
        model.is_group = Set(is_group);
    }
    if let Some(attrs) = changes.attributes {
        model.attributes = Set(attrs);
    }
    match changes.opted_out {
        Some(true) if !was_opted_out => model.opted_out_at = Set(Some(now)),
        Some(false) => model.opted_out_at = Set(None),
        _ => {}
    }
    model.updated_at = Set(now);
    Ok(contact::Entity::update(model).exec(db).await?)
}

/// Deletes a contact with its chat history; its stored files are listed for removal from the
/// media store. Call in a transaction, so that the list and the deletion go together.
pub async fn delete(db: &impl Conn, id: i32, now: DateTime<Utc>) -> Result<()> {
    crate::media::remove_files_of_contact(db, id, now).await?;
    contact::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

pub fn new_contact(
    phone: &Phone,
    name: &str,
    is_group: bool,
    now: DateTime<Utc>,
) -> contact::ActiveModel {
    contact::ActiveModel {
        phone: Set(phone.as_str().to_string()),
        name: Set(name.to_string()),
        is_group: Set(is_group),
        attributes: Set(serde_json::json!({})),
        last_message: Set(None),
        last_message_at: Set(None),
        last_activity_at: Set(now),
        message_count: Set(0),
        unread_count: Set(0),
        last_inbound_at: Set(None),
        opted_out_at: Set(None),
        suppressed_reason: Set(None),
        last_number: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// These contacts (those that still exist).
pub async fn by_ids(db: &impl Conn, ids: &[i32]) -> Result<Vec<Contact>> {
    Ok(contact::Entity::find()
        .filter(contact::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn by_id(db: &impl Conn, id: i32) -> Result<Option<Contact>> {
    Ok(contact::Entity::find_by_id(id).one(db).await?)
}

pub async fn find_by_phone(
    db: &impl ConnectionTrait,
    phone: &str,
) -> Result<Option<contact::Model>> {
    Ok(contact::Entity::find()
        .filter(contact::Column::Phone.eq(phone))
        .one(db)
        .await?)
}

/// The first contact (lowest id) carrying any of these tags: a campaign's sample recipient.
pub async fn first_tagged(
    db: &impl ConnectionTrait,
    tag_ids: &[i32],
) -> Result<Option<contact::Model>> {
    if tag_ids.is_empty() {
        return Ok(None);
    }
    let tagged = sea_orm::sea_query::Query::select()
        .column(heydoc_entity::contact_tag::Column::ContactId)
        .from(heydoc_entity::contact_tag::Entity)
        .and_where(heydoc_entity::contact_tag::Column::TagId.is_in(tag_ids.iter().copied()))
        .to_owned();
    Ok(contact::Entity::find()
        .filter(contact::Column::Id.in_subquery(tagged))
        .order_by_asc(contact::Column::Id)
        .one(db)
        .await?)
}

/// The contact with this phone, created (with `name`) when there is none. A profile name fills
/// in an empty name but never overwrites one a user chose.
pub async fn find_or_create(
    db: &impl ConnectionTrait,
    phone: &Phone,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<contact::Model> {
    if let Some(found) = find_by_phone(db, phone.as_str()).await? {
        if let Some(name) = name.filter(|n| !n.is_empty() && found.name.is_empty()) {
            contact::Entity::update_many()
                .col_expr(contact::Column::Name, name.into())
                .filter(contact::Column::Id.eq(found.id))
                .exec(db)
                .await?;
            return Ok(contact::Model {
                name: name.to_string(),
                ..found
            });
        }
        return Ok(found);
    }
    contact::Entity::insert(new_contact(phone, name.unwrap_or_default(), false, now))
        .on_conflict(
            OnConflict::column(contact::Column::Phone)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(db)
        .await?;
    find_by_phone(db, phone.as_str()).await?.ok_or_else(|| {
        sea_orm::DbErr::RecordNotFound(format!("contact {phone} after insert")).into()
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_written_as_people_do_searches_by_its_digits() {
        assert_eq!(
            phone_digits("+91 98000 00002").as_deref(),
            Some("919800000002")
        );
        assert_eq!(
            phone_digits("(415) 555-0123").as_deref(),
            Some("4155550123")
        );
        assert_eq!(phone_digits("4155"), None);
        assert_eq!(phone_digits("Ana"), None);
        assert_eq!(phone_digits("Ana 2"), None);
        assert_eq!(phone_digits("+ -"), None);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_a\\"), "50\\%\\_a\\\\");
    }
}
