//! Contacts: finding or creating them by phone, safely when two requests race for the same
//! number; `filter` finds them for the inbox and the export; `inbound` names the contact an
//! inbound message is from.

mod filter;
mod inbound;

pub use filter::*;
pub use inbound::*;

use chrono::{DateTime, Utc};
use heydoc_domain::Phone;
use heydoc_entity::contact;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};

use crate::{Conn, Result, StoreError};

pub use contact::Model as Contact;

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
