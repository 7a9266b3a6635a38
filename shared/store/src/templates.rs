//! The template catalog of each WhatsApp Business Account: replaced whole by a sync, changed
//! one template at a time by Meta's template webhooks, and read when a send or a campaign
//! names a template. A template Meta pauses or disables pauses the campaigns that use it
//! (`paused_template` remembers which), and its re-approval resumes them.

use chrono::{DateTime, Utc};
use heydoc_domain::ScheduleStatus;
use heydoc_entity::{scheduled_message as schedule, template, template_catalog};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde_json::Value;

use crate::{Db, Result};

pub use template::Model as Template;
pub use template_catalog::Model as Catalog;

/// One template as Meta lists it.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub meta_id: Option<String>,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub quality: Option<String>,
    pub components: Value,
    pub header_params: i32,
    pub body_params: i32,
}

/// `waba|name|language`: how a campaign remembers the template (of its account) that paused
/// it.
pub fn key(waba_id: &str, name: &str, language: &str) -> String {
    format!("{waba_id}|{name}|{language}")
}

/// The WhatsApp Business Account a campaign sends from: its number's, or the default
/// number's (empty when nobody said).
pub async fn account_of(db: &impl ConnectionTrait, s: &schedule::Model) -> Result<String> {
    use heydoc_entity::business_number;
    let mut q = business_number::Entity::find();
    q = match &s.sender_number {
        Some(n) => q.filter(business_number::Column::PhoneNumberId.eq(n.as_str())),
        None => q.filter(business_number::Column::IsDefault.eq(true)),
    };
    Ok(q.one(db).await?.map(|n| n.waba_id).unwrap_or_default())
}

/// Makes the account's catalog exactly `entries` (one transaction); answers how many.
pub async fn replace(
    db: &Db,
    waba_id: &str,
    entries: &[CatalogEntry],
    now: DateTime<Utc>,
) -> Result<usize> {
    let txn = db.begin().await?;
    for chunk in entries.chunks(200) {
        let rows = chunk.iter().map(|e| template::ActiveModel {
            waba_id: Set(waba_id.to_string()),
            meta_id: Set(e.meta_id.clone()),
            name: Set(cut(&e.name, 512)),
            language: Set(cut(&e.language, 16)),
            category: Set(cut(&e.category, 32)),
            status: Set(cut(&e.status, 32)),
            quality: Set(e.quality.as_deref().map(|q| cut(q, 16))),
            reason: Set(None),
            components: Set(e.components.clone()),
            header_params: Set(e.header_params),
            body_params: Set(e.body_params),
            synced_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        template::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    template::Column::WabaId,
                    template::Column::Name,
                    template::Column::Language,
                ])
                .update_columns([
                    template::Column::MetaId,
                    template::Column::Category,
                    template::Column::Status,
                    template::Column::Quality,
                    template::Column::Components,
                    template::Column::HeaderParams,
                    template::Column::BodyParams,
                    template::Column::SyncedAt,
                    template::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    // What Meta no longer lists is gone (deleted templates).
    template::Entity::delete_many()
        .filter(template::Column::WabaId.eq(waba_id))
        .filter(template::Column::SyncedAt.lt(now))
        .exec(&txn)
        .await?;
    let count = i32::try_from(entries.len()).unwrap_or(i32::MAX);
    save_catalog(&txn, waba_id, Some(now), count, None).await?;
    txn.commit().await?;
    Ok(entries.len())
}

/// A sync that failed: the catalog keeps what it had, with the error shown.
pub async fn sync_failed(db: &Db, waba_id: &str, error: &str) -> Result<()> {
    let existing = catalog(db, waba_id).await?;
    let (synced_at, count) = existing.map_or((None, 0), |c| (c.synced_at, c.template_count));
    save_catalog(db, waba_id, synced_at, count, Some(&cut(error, 500))).await
}

async fn save_catalog(
    db: &impl ConnectionTrait,
    waba_id: &str,
    synced_at: Option<DateTime<Utc>>,
    count: i32,
    error: Option<&str>,
) -> Result<()> {
    let row = template_catalog::ActiveModel {
        waba_id: Set(waba_id.to_string()),
        synced_at: Set(synced_at),
        template_count: Set(count),
        last_error: Set(error.map(str::to_string)),
    };
    template_catalog::Entity::insert(row)
        .on_conflict(
            OnConflict::column(template_catalog::Column::WabaId)
                .update_columns([
                    template_catalog::Column::SyncedAt,
                    template_catalog::Column::TemplateCount,
                    template_catalog::Column::LastError,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

pub async fn catalog(db: &impl ConnectionTrait, waba_id: &str) -> Result<Option<Catalog>> {
    Ok(template_catalog::Entity::find_by_id(waba_id.to_string())
        .one(db)
        .await?)
}

pub async fn find(
    db: &impl ConnectionTrait,
    waba_id: &str,
    name: &str,
    language: &str,
) -> Result<Option<Template>> {
    Ok(template::Entity::find()
        .filter(one(waba_id, name, language))
        .one(db)
        .await?)
}

/// The account's templates by name and language, optionally only those in `status`.
pub async fn list(
    db: &impl ConnectionTrait,
    waba_id: &str,
    status: Option<&str>,
) -> Result<Vec<Template>> {
    let mut q = template::Entity::find().filter(template::Column::WabaId.eq(waba_id));
    if let Some(s) = status {
        q = q.filter(template::Column::Status.eq(s));
    }
    Ok(q.order_by_asc(template::Column::Name)
        .order_by_asc(template::Column::Language)
        .all(db)
        .await?)
}

/// Meta's `message_template_status_update`: the template's status (and reason) change.
/// Answers whether the catalog knew it.
pub async fn set_status(
    db: &impl ConnectionTrait,
    waba_id: &str,
    name: &str,
    language: &str,
    status: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = template::Entity::update_many()
        .col_expr(template::Column::Status, Expr::value(cut(status, 32)))
        .col_expr(
            template::Column::Reason,
            Expr::value(reason.map(|r| cut(r, 500))),
        )
        .col_expr(template::Column::UpdatedAt, Expr::value(now))
        .filter(one(waba_id, name, language))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Meta's `message_template_quality_update`.
pub async fn set_quality(
    db: &impl ConnectionTrait,
    waba_id: &str,
    name: &str,
    language: &str,
    quality: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = template::Entity::update_many()
        .col_expr(template::Column::Quality, Expr::value(cut(quality, 16)))
        .col_expr(template::Column::UpdatedAt, Expr::value(now))
        .filter(one(waba_id, name, language))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The template `name` in `language` of the account `waba_id`.
fn one(waba_id: &str, name: &str, language: &str) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(template::Column::WabaId.eq(waba_id))
        .add(template::Column::Name.eq(name))
        .add(template::Column::Language.eq(language))
}

/// The name and language a schedule's stored template names.
pub fn template_of(s: &schedule::Model) -> Option<(String, String)> {
    let t = s.template.as_ref()?;
    Some((
        t.get("name")?.as_str()?.to_string(),
        t.get("language")?.as_str()?.to_string(),
    ))
}

/// Pauses every running campaign that sends this template (from `numbers`, the account's
/// numbers; a campaign without a number of its own sends from the default one, which counts
/// when `includes_default`), saying why. Answers the ids paused.
#[allow(clippy::too_many_arguments)]
pub async fn pause_campaigns_using(
    db: &impl ConnectionTrait,
    waba_id: &str,
    name: &str,
    language: &str,
    numbers: &[String],
    includes_default: bool,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i32>> {
    let reason = cut(reason, 500);
    let running = schedule::Entity::find()
        .filter(schedule::Column::Status.eq(ScheduleStatus::Pending.as_str()))
        .filter(schedule::Column::Template.is_not_null())
        .all(db)
        .await?;
    let mut paused = Vec::new();
    for s in running {
        let from_account = match &s.sender_number {
            Some(n) => numbers.contains(n),
            None => includes_default,
        };
        if !from_account || template_of(&s).as_ref() != Some(&(name.into(), language.into())) {
            continue;
        }
        let result = schedule::Entity::update_many()
            .col_expr(
                schedule::Column::Status,
                Expr::value(ScheduleStatus::Paused.as_str()),
            )
            .col_expr(schedule::Column::StatusReason, Expr::value(reason.clone()))
            .col_expr(schedule::Column::PausedAt, Expr::value(now))
            .col_expr(
                schedule::Column::PausedTemplate,
                Expr::value(key(waba_id, name, language)),
            )
            .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
            .filter(schedule::Column::Id.eq(s.id))
            .filter(schedule::Column::Status.eq(ScheduleStatus::Pending.as_str()))
            .exec(db)
            .await?;
        if result.rows_affected > 0 {
            paused.push(s.id);
        }
    }
    Ok(paused)
}

/// The campaigns a pause of this template paused (and nobody has touched since), to resume
/// now that Meta approved it again.
pub async fn paused_by(
    db: &impl ConnectionTrait,
    waba_id: &str,
    name: &str,
    language: &str,
) -> Result<Vec<schedule::Model>> {
    Ok(schedule::Entity::find()
        .filter(schedule::Column::Status.eq(ScheduleStatus::Paused.as_str()))
        .filter(schedule::Column::PausedTemplate.eq(key(waba_id, name, language)))
        .all(db)
        .await?)
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
