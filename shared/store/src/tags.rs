//! Tags: named, coloured labels on contacts, and campaign audiences.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use heydoc_entity::{contact_tag, tag};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{Conn, Result, StoreError};

pub use tag::Model as Tag;

/// The colour a tag gets when none is chosen (a neutral grey).
pub const DEFAULT_COLOR: &str = "#888888";

/// Every tag, by name, with how many contacts carry each.
pub async fn all_with_counts(db: &impl Conn) -> Result<Vec<(Tag, i64)>> {
    let tags = tag::Entity::find()
        .order_by_asc(tag::Column::Name)
        .all(db)
        .await?;
    let counts: Vec<(i32, i64)> = contact_tag::Entity::find()
        .select_only()
        .column(contact_tag::Column::TagId)
        .column_as(contact_tag::Column::ContactId.count(), "n")
        .group_by(contact_tag::Column::TagId)
        .into_tuple()
        .all(db)
        .await?;
    let counts: HashMap<i32, i64> = counts.into_iter().collect();
    Ok(tags
        .into_iter()
        .map(|t| {
            let n = counts.get(&t.id).copied().unwrap_or(0);
            (t, n)
        })
        .collect())
}

pub async fn find(db: &impl Conn, id: i32) -> Result<Tag> {
    tag::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("tag {id} not found")))
}

/// Which of these ids name no tag.
pub async fn missing(db: &impl Conn, ids: &[i32]) -> Result<Vec<i32>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<i32> = tag::Entity::find()
        .select_only()
        .column(tag::Column::Id)
        .filter(tag::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect())
}

/// Tags HeyDoc holds at most (each inbox row shows its contact's tags, and the tag picker
/// lists them all): the tags API and imports create no more.
pub const MAX_TAGS: u64 = 1000;

/// How many tags there are.
pub async fn count(db: &impl Conn) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(tag::Entity::find().count(db).await?)
}

/// Which of `lowercase_names` name no tag (regardless of case, lowercased here: SQLite's
/// `lower()` knows only ASCII). Reads every name; there are at most `MAX_TAGS`.
pub async fn unknown_names(db: &impl Conn, lowercase_names: &[String]) -> Result<Vec<String>> {
    if lowercase_names.is_empty() {
        return Ok(Vec::new());
    }
    let known: std::collections::HashSet<String> = tag::Entity::find()
        .select_only()
        .column(tag::Column::Name)
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .map(|n| n.to_lowercase())
        .collect();
    Ok(lowercase_names
        .iter()
        .filter(|n| !known.contains(*n))
        .cloned()
        .collect())
}

/// Whether another tag (not `except`) has this name, regardless of case.
pub async fn name_taken(db: &impl Conn, name: &str, except: Option<i32>) -> Result<bool> {
    let mut q = tag::Entity::find()
        .filter(Expr::expr(Func::lower(Expr::col(tag::Column::Name))).eq(name.to_lowercase()));
    if let Some(id) = except {
        q = q.filter(tag::Column::Id.ne(id));
    }
    Ok(q.one(db).await?.is_some())
}

/// A new tag; `Conflict` when the name is taken.
pub async fn create(db: &impl Conn, name: &str, color: &str, now: DateTime<Utc>) -> Result<Tag> {
    tag::Entity::insert(tag::ActiveModel {
        name: Set(name.to_string()),
        color: Set(color.to_string()),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_with_returning(db)
    .await
    .map_err(|e| StoreError::unique_or_db(e, "a tag with that name exists"))
}

/// Renames and/or recolours a tag; `NotFound`, or `Conflict` when the name is taken.
pub async fn update(
    db: &impl Conn,
    id: i32,
    name: Option<String>,
    color: Option<String>,
) -> Result<Tag> {
    let mut model: tag::ActiveModel = find(db, id).await?.into();
    if let Some(name) = name {
        model.name = Set(name);
    }
    if let Some(color) = color {
        model.color = Set(color);
    }
    tag::Entity::update(model)
        .exec(db)
        .await
        .map_err(|e| StoreError::unique_or_db(e, "a tag with that name exists"))
}

/// Deletes a tag (its links to contacts go with it); `NotFound` when there is none.
pub async fn delete(db: &impl Conn, id: i32) -> Result<()> {
    let result = tag::Entity::delete_by_id(id).exec(db).await?;
    if result.rows_affected == 0 {
        return Err(StoreError::not_found(format!("tag {id} not found")));
    }
    Ok(())
}

/// The tags of each of these contacts (by name), in one query.
pub async fn of_contacts(db: &impl Conn, contact_ids: &[i32]) -> Result<HashMap<i32, Vec<Tag>>> {
    let mut by_contact: HashMap<i32, Vec<Tag>> = HashMap::new();
    if contact_ids.is_empty() {
        return Ok(by_contact);
    }
    let rows: Vec<(i32, i32, String, String, DateTime<Utc>)> = contact_tag::Entity::find()
        .select_only()
        .column(contact_tag::Column::ContactId)
        .column_as(tag::Column::Id, "tag_id_out")
        .column(tag::Column::Name)
        .column(tag::Column::Color)
        .column(tag::Column::CreatedAt)
        .join(
            sea_orm::JoinType::InnerJoin,
            contact_tag::Entity::belongs_to(tag::Entity)
                .from(contact_tag::Column::TagId)
                .to(tag::Column::Id)
                .into(),
        )
        .filter(contact_tag::Column::ContactId.is_in(contact_ids.iter().copied()))
        .order_by_asc(tag::Column::Name)
        .into_tuple()
        .all(db)
        .await?;
    for (contact_id, id, name, color, created_at) in rows {
        by_contact.entry(contact_id).or_default().push(Tag {
            id,
            name,
            color,
            created_at,
        });
    }
    Ok(by_contact)
}

/// Gives a contact exactly these tags.
pub async fn replace_on_contact(db: &impl Conn, contact_id: i32, tag_ids: &[i32]) -> Result<()> {
    contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    if !tag_ids.is_empty() {
        contact_tag::Entity::insert_many(tag_ids.iter().map(|&tag_id| contact_tag::ActiveModel {
            contact_id: Set(contact_id),
            tag_id: Set(tag_id),
        }))
        .exec(db)
        .await?;
    }
    Ok(())
}

/// Puts one tag on a contact (nothing when it is there already).
pub async fn add_to_contact(db: &impl Conn, contact_id: i32, tag_id: i32) -> Result<()> {
    contact_tag::Entity::insert(contact_tag::ActiveModel {
        contact_id: Set(contact_id),
        tag_id: Set(tag_id),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::columns([
            contact_tag::Column::ContactId,
            contact_tag::Column::TagId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .do_nothing()
    .exec(db)
    .await?;
    Ok(())
}

/// Takes one tag off a contact.
pub async fn remove_from_contact(db: &impl Conn, contact_id: i32, tag_id: i32) -> Result<()> {
    contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::ContactId.eq(contact_id))
        .filter(contact_tag::Column::TagId.eq(tag_id))
        .exec(db)
        .await?;
    Ok(())
}
