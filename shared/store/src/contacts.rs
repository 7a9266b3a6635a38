//! Finding or creating contacts by phone, safely when two requests race for the same number.

use chrono::{DateTime, Utc};
use heydoc_domain::Phone;
use heydoc_entity::contact;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};

use crate::Result;

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
