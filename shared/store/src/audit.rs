//! The audit log: security-relevant and bulk actions, newest first.

use chrono::{DateTime, Utc};
use heydoc_entity::audit_entry;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{Conn, Result};

pub use audit_entry::Model as AuditEntry;

/// An action to record.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub actor_id: Option<i32>,
    pub actor: String,
    pub action: &'static str,
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub address: Option<String>,
}

pub async fn record(db: &impl Conn, entry: NewEntry, now: DateTime<Utc>) -> Result<()> {
    audit_entry::Entity::insert(audit_entry::ActiveModel {
        at: Set(now),
        actor_id: Set(entry.actor_id),
        actor: Set(entry.actor.chars().take(64).collect()),
        action: Set(entry.action.to_string()),
        target: Set(entry.target.map(|t| t.chars().take(200).collect())),
        detail: Set(entry.detail.map(|d| d.to_string())),
        address: Set(entry.address),
        ..Default::default()
    })
    .exec(db)
    .await?;
    Ok(())
}

/// Up to `limit` entries older than `before` (an id; `None` for the newest), optionally only
/// one actor's.
pub async fn page(
    db: &impl Conn,
    before: Option<i64>,
    actor_id: Option<i32>,
    limit: u64,
) -> Result<Vec<AuditEntry>> {
    let mut query = audit_entry::Entity::find();
    if let Some(before) = before {
        query = query.filter(audit_entry::Column::Id.lt(before));
    }
    if let Some(actor) = actor_id {
        query = query.filter(audit_entry::Column::ActorId.eq(actor));
    }
    Ok(query
        .order_by_desc(audit_entry::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
