//! Importing contacts in batches: each batch of rows is upserted by phone in one transaction,
//! missing tags are created, and every row is counted as created, updated or unchanged. Rows
//! add tags and set attributes and names; they never remove anything, so importing the same
//! file twice changes nothing the second time.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use heydoc_domain::Phone;
use heydoc_entity::{contact, contact_tag, tag};
use sea_orm::sea_query::{Expr, Func, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};
use serde_json::{Map, Value};

use crate::contacts::new_contact;
use crate::Result;

/// The color of a tag an import creates.
pub const NEW_TAG_COLOR: &str = crate::tags::DEFAULT_COLOR;

/// One valid CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// Its line in the file (the header is line 1).
    pub line: u64,
    pub phone: Phone,
    /// `None` leaves an existing contact's name as it is.
    pub name: Option<String>,
    pub tags: Vec<String>,
    /// Set on the contact, key by key; other keys stay.
    pub attributes: Map<String, Value>,
}

/// How a batch's rows changed the contacts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// Upserts one batch in one transaction. Rows for the same phone within the batch are merged
/// in file order (later names and attributes win, tags add up) and each counts once. Tags are
/// matched by name regardless of case (as the tags API does) and created when missing.
pub async fn apply_batch(
    db: &impl TransactionTrait,
    rows: Vec<ImportRow>,
    now: DateTime<Utc>,
) -> Result<BatchCounts> {
    let merged = merge_by_phone(rows);
    if merged.is_empty() {
        return Ok(BatchCounts::default());
    }
    // PostgreSQL keeps microseconds: the creation time must read back exactly as written.
    let now = now.trunc_subsecs(6);
    let txn = db.begin().await?;
    let tag_ids = ensure_tags(&txn, &merged, now).await?;
    let phones: Vec<String> = merged
        .iter()
        .map(|r| r.phone.as_str().to_string())
        .collect();
    let mut existing = contacts_by_phone(&txn, phones).await?;

    let mut counts = BatchCounts::default();
    let fresh: Vec<contact::ActiveModel> = merged
        .iter()
        .filter(|r| !existing.contains_key(r.phone.as_str()))
        .map(|row| {
            let mut model = new_contact(&row.phone, row.name.as_deref().unwrap_or(""), false, now);
            model.attributes = Set(Value::Object(row.attributes.clone()));
            model
        })
        .collect();
    let mut created: HashMap<String, i32> = HashMap::new();
    let mut raced = Vec::new();
    for part in fresh.chunks(500) {
        let phones: Vec<String> = part
            .iter()
            .filter_map(|m| m.phone.try_as_ref().cloned())
            .collect();
        contact::Entity::insert_many(part.to_vec())
            .on_conflict(
                OnConflict::column(contact::Column::Phone)
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec_without_returning(&txn)
            .await?;
        // Ours carry this batch's creation time; a phone created meanwhile by someone else
        // (another import, a webhook) does not, and is updated below instead.
        for c in contacts_by_phone(&txn, phones).await?.into_values() {
            if c.created_at == now {
                created.insert(c.phone, c.id);
            } else {
                raced.push(c);
            }
        }
    }
    counts.created = created.len() as u64;
    existing.extend(raced.into_iter().map(|c| (c.phone.clone(), c)));
    let links: HashSet<(i32, i32)> = if existing.is_empty() {
        HashSet::new()
    } else {
        contact_tag::Entity::find()
            .select_only()
            .column(contact_tag::Column::ContactId)
            .column(contact_tag::Column::TagId)
            .filter(contact_tag::Column::ContactId.is_in(existing.values().map(|c| c.id)))
            .into_tuple()
            .all(&txn)
            .await?
            .into_iter()
            .collect()
    };

    // Existing contacts are updated in id order, as every other multi-row writer locks them,
    // so two writers cannot deadlock on each other's rows.
    let mut known: Vec<(&ImportRow, &contact::Model)> = merged
        .iter()
        .filter(|r| !created.contains_key(r.phone.as_str()))
        .filter_map(|r| existing.get(r.phone.as_str()).map(|c| (r, c)))
        .collect();
    known.sort_by_key(|(_, c)| c.id);
    for (row, found) in known {
        let name = row.name.as_ref().filter(|n| **n != found.name);
        let attributes = merged_attributes(&found.attributes, &row.attributes);
        let new_tags = row
            .tags
            .iter()
            .filter_map(|t| tag_ids.get(&t.to_lowercase()))
            .any(|id| !links.contains(&(found.id, *id)));
        if name.is_none() && attributes.is_none() && !new_tags {
            counts.unchanged += 1;
            continue;
        }
        counts.updated += 1;
        if name.is_none() && attributes.is_none() {
            continue;
        }
        let mut update = contact::Entity::update_many()
            .col_expr(contact::Column::UpdatedAt, Expr::value(now))
            .filter(contact::Column::Id.eq(found.id));
        if let Some(name) = name {
            update = update.col_expr(contact::Column::Name, Expr::value(name.clone()));
        }
        if let Some(attributes) = attributes {
            update = update.col_expr(contact::Column::Attributes, Expr::value(attributes));
        }
        update.exec(&txn).await?;
    }
    let ids: HashMap<&str, i32> = existing
        .iter()
        .map(|(phone, c)| (phone.as_str(), c.id))
        .chain(created.iter().map(|(phone, id)| (phone.as_str(), *id)))
        .collect();
    let mut to_link = Vec::new();
    for row in &merged {
        let Some(&contact_id) = ids.get(row.phone.as_str()) else {
            continue;
        };
        for tag in &row.tags {
            if let Some(&tag_id) = tag_ids.get(&tag.to_lowercase()) {
                if !links.contains(&(contact_id, tag_id)) {
                    to_link.push(contact_tag::ActiveModel {
                        contact_id: Set(contact_id),
                        tag_id: Set(tag_id),
                    });
                }
            }
        }
    }
    for part in to_link.chunks(500) {
        contact_tag::Entity::insert_many(part.to_vec())
            .on_conflict(
                OnConflict::columns([contact_tag::Column::ContactId, contact_tag::Column::TagId])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(counts)
}

/// What importing a row would do, found without writing anything (the import's preview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowEffect {
    Create,
    /// What would change, in words: `name: "Ana" → "Ana Maria"`, `tag + VIP`, `city: "Pune"`.
    Update(Vec<String>),
    Unchanged,
}

/// The effect of each row (in order) on the contacts as they are now. Rows for one phone are
/// judged each on its own, as if it were the only one.
pub async fn preview(db: &impl ConnectionTrait, rows: &[ImportRow]) -> Result<Vec<RowEffect>> {
    let phones: Vec<String> = rows.iter().map(|r| r.phone.as_str().to_string()).collect();
    let existing = contacts_by_phone(db, phones).await?;
    let ids: Vec<i32> = existing.values().map(|c| c.id).collect();
    let tags = crate::tags::of_contacts(db, &ids).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let Some(c) = existing.get(row.phone.as_str()) else {
                return RowEffect::Create;
            };
            let mut changes = Vec::new();
            if let Some(name) = row.name.as_deref().filter(|n| *n != c.name) {
                changes.push(format!("name: {:?} → {name:?}", c.name));
            }
            let has: HashSet<String> = tags
                .get(&c.id)
                .map(|ts| ts.iter().map(|t| t.name.to_lowercase()).collect())
                .unwrap_or_default();
            for t in &row.tags {
                if !has.contains(&t.to_lowercase()) {
                    changes.push(format!("tag + {t}"));
                }
            }
            for (key, value) in &row.attributes {
                if c.attributes.get(key) != Some(value) {
                    let shown = match value {
                        Value::String(s) => format!("{s:?}"),
                        other => other.to_string(),
                    };
                    changes.push(format!("{key}: {shown}"));
                }
            }
            if changes.is_empty() {
                RowEffect::Unchanged
            } else {
                RowEffect::Update(changes)
            }
        })
        .collect())
}

async fn contacts_by_phone(
    txn: &impl ConnectionTrait,
    phones: Vec<String>,
) -> Result<HashMap<String, contact::Model>> {
    Ok(contact::Entity::find()
        .filter(contact::Column::Phone.is_in(phones))
        .all(txn)
        .await?
        .into_iter()
        .map(|c| (c.phone.clone(), c))
        .collect())
}

/// Rows for the same phone become one, in file order.
fn merge_by_phone(rows: Vec<ImportRow>) -> Vec<ImportRow> {
    let mut out: Vec<ImportRow> = Vec::with_capacity(rows.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for row in rows {
        match at.get(row.phone.as_str()) {
            Some(&i) => {
                let into = &mut out[i];
                if row.name.is_some() {
                    into.name = row.name;
                }
                into.attributes.extend(row.attributes);
                for t in row.tags {
                    if !into.tags.contains(&t) {
                        into.tags.push(t);
                    }
                }
            }
            None => {
                at.insert(row.phone.as_str().to_string(), out.len());
                out.push(row);
            }
        }
    }
    out
}

/// The contact's attributes with the row's set, or `None` when that changes nothing.
fn merged_attributes(current: &Value, row: &Map<String, Value>) -> Option<Value> {
    let mut attributes = current.as_object().cloned().unwrap_or_default();
    let mut changed = !current.is_object() && !row.is_empty();
    for (k, v) in row {
        if attributes.get(k) != Some(v) {
            attributes.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed.then_some(Value::Object(attributes))
}

/// The id of every tag the rows name, by lower-case name: found regardless of case, or
/// created (with the casing the file used first).
async fn ensure_tags(
    txn: &impl ConnectionTrait,
    rows: &[ImportRow],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i32>> {
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    for t in rows.iter().flat_map(|r| r.tags.iter()) {
        wanted.entry(t.to_lowercase()).or_insert_with(|| t.clone());
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let find = || {
        tag::Entity::find()
            .select_only()
            .column(tag::Column::Id)
            .column(tag::Column::Name)
            .filter(
                Expr::expr(Func::lower(Expr::col(tag::Column::Name))).is_in(wanted.keys().cloned()),
            )
            .into_tuple::<(i32, String)>()
    };
    let mut ids: HashMap<String, i32> = find()
        .all(txn)
        .await?
        .into_iter()
        .map(|(id, name)| (name.to_lowercase(), id))
        .collect();
    let missing: Vec<tag::ActiveModel> = wanted
        .iter()
        .filter(|(lower, _)| !ids.contains_key(*lower))
        .map(|(_, name)| tag::ActiveModel {
            name: Set(name.clone()),
            color: Set(NEW_TAG_COLOR.into()),
            created_at: Set(now),
            ..Default::default()
        })
        .collect();
    if !missing.is_empty() {
        tag::Entity::insert_many(missing)
            .on_conflict(
                OnConflict::column(tag::Column::Name)
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(txn)
            .await?;
        ids = find()
            .all(txn)
            .await?
            .into_iter()
            .map(|(id, name)| (name.to_lowercase(), id))
            .collect();
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64, phone: &str, name: Option<&str>, tags: &[&str], attrs: Value) -> ImportRow {
        ImportRow {
            line,
            phone: Phone::parse(phone).expect("phone"),
            name: name.map(str::to_string),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            attributes: attrs.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn rows_for_one_phone_merge_in_file_order() {
        let merged = merge_by_phone(vec![
            row(
                2,
                "14155550001",
                Some("Ana"),
                &["a"],
                serde_json::json!({"city": "Pune"}),
            ),
            row(3, "14155550002", None, &[], serde_json::json!({})),
            row(
                4,
                "+1 415 555 0001",
                Some("Ana R"),
                &["b", "a"],
                serde_json::json!({"zip": "411"}),
            ),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].name.as_deref(), Some("Ana R"));
        assert_eq!(merged[0].tags, vec!["a", "b"]);
        assert_eq!(
            Value::Object(merged[0].attributes.clone()),
            serde_json::json!({"city": "Pune", "zip": "411"})
        );
    }

    #[test]
    fn attributes_change_only_when_a_value_does() {
        let current = serde_json::json!({"city": "Pune", "kept": 1});
        let same = serde_json::json!({"city": "Pune"});
        assert_eq!(
            merged_attributes(&current, same.as_object().expect("obj")),
            None
        );
        let new = serde_json::json!({"city": "Mumbai"});
        assert_eq!(
            merged_attributes(&current, new.as_object().expect("obj")),
            Some(serde_json::json!({"city": "Mumbai", "kept": 1}))
        );
        assert_eq!(merged_attributes(&current, &Map::new()), None);
    }
}
