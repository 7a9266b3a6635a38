//! Schedules (the API's scheduled messages, the dashboard's campaigns): saving, listing,
//! status changes and deleting. Their runs are in `occurrences`.

use chrono::{DateTime, Utc};
use heydoc_domain::ScheduleStatus;
use heydoc_entity::scheduled_message as schedule;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::{deliveries, Conn, Result, StoreError};

pub use schedule::Model as Schedule;

/// A schedule that passed every check, ready to be saved.
#[derive(Debug)]
pub struct NewSchedule {
    /// What the team calls it.
    pub name: Option<String>,
    pub message: Option<String>,
    pub template: Option<serde_json::Value>,
    pub recipients: Vec<String>,
    pub tag_ids: Vec<i32>,
    pub scheduled_time: DateTime<Utc>,
    /// The recurrence as stored (`None` for once).
    pub recurrence: Option<String>,
    pub timezone: String,
    pub end_time: Option<DateTime<Utc>>,
    pub max_occurrences: Option<i32>,
    pub sender_number: Option<String>,
    /// Deliveries of a run sent per day at most (the rest wait for the next days).
    pub daily_limit: Option<i32>,
    /// A file every delivery sends (from an upload for the campaign's number).
    pub media: Option<serde_json::Value>,
    pub first_run: DateTime<Utc>,
    /// The first run's wall-clock time as written (`2026-03-08T02:30:00`), when it had no
    /// offset.
    pub local_anchor: Option<String>,
    pub created_by: String,
    /// The creating request's `traceparent`: each occurrence's trace links back to it.
    pub trace_context: Option<String>,
}

pub async fn insert(db: &impl Conn, new: NewSchedule, now: DateTime<Utc>) -> Result<Schedule> {
    let row = schedule::ActiveModel {
        name: Set(new.name),
        message: Set(new.message),
        template: Set(new.template),
        recipients: Set(serde_json::json!(new.recipients)),
        tag_ids: Set(serde_json::json!(new.tag_ids)),
        scheduled_time: Set(new.scheduled_time),
        recurrence: Set(new.recurrence),
        timezone: Set(new.timezone),
        end_time: Set(new.end_time),
        max_occurrences: Set(new.max_occurrences),
        occurrence_count: Set(0),
        status: Set(ScheduleStatus::Pending.as_str().into()),
        sender_number: Set(new.sender_number),
        daily_limit: Set(new.daily_limit),
        media: Set(new.media),
        next_run_at: Set(Some(new.first_run)),
        local_anchor: Set(new.local_anchor),
        created_by: Set(new.created_by),
        created_at: Set(now),
        updated_at: Set(now),
        trace_context: Set(new.trace_context),
        ..Default::default()
    };
    Ok(schedule::Entity::insert(row)
        .exec_with_returning(db)
        .await?)
}

/// Every schedule, newest first.
pub async fn all(db: &impl Conn, before: Option<i32>, limit: u64) -> Result<Vec<Schedule>> {
    use sea_orm::QuerySelect;
    let mut query = schedule::Entity::find();
    if let Some(before) = before {
        query = query.filter(schedule::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(schedule::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Where a page of pending schedules ends: the last row's sort key (its next run, which a
/// schedule whose runs are over but whose deliveries are not has none of, and its id).
pub type PendingCursor = (Option<DateTime<Utc>>, i32);

/// Schedules still waiting to fire, soonest first (those without a next run last, on both
/// backends): up to `limit` after `after`.
pub async fn pending(
    db: &impl Conn,
    after: Option<PendingCursor>,
    limit: u64,
) -> Result<Vec<Schedule>> {
    use sea_orm::sea_query::{Expr, IntoCondition};
    use sea_orm::{Condition, QuerySelect};
    let mut query = schedule::Entity::find()
        .filter(schedule::Column::Status.eq(ScheduleStatus::Pending.as_str()));
    if let Some((at, id)) = after {
        let later = match at {
            Some(at) => Condition::any()
                .add(schedule::Column::NextRunAt.gt(at))
                .add(
                    Condition::all()
                        .add(schedule::Column::NextRunAt.eq(at))
                        .add(schedule::Column::Id.gt(id)),
                )
                .add(schedule::Column::NextRunAt.is_null()),
            None => Condition::all()
                .add(schedule::Column::NextRunAt.is_null())
                .add(schedule::Column::Id.gt(id)),
        };
        query = query.filter(later.into_condition());
    }
    Ok(query
        .order_by_asc(Expr::col(schedule::Column::NextRunAt).is_null())
        .order_by_asc(schedule::Column::NextRunAt)
        .order_by_asc(schedule::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

pub async fn get(db: &impl Conn, id: i32) -> Result<Schedule> {
    schedule::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("scheduled message {id} not found")))
}

/// Moves a schedule from `from` to `to` unless it changed meanwhile (`Conflict`); a final
/// status clears the next run; the reason HeyDoc paused it (if it did) no longer stands.
pub async fn set_status(
    db: &impl Conn,
    existing: Schedule,
    from: ScheduleStatus,
    to: ScheduleStatus,
    now: DateTime<Utc>,
) -> Result<Schedule> {
    let id = existing.id;
    let mut model: schedule::ActiveModel = existing.into();
    model.status = Set(to.as_str().into());
    model.status_reason = Set(None);
    model.paused_template = Set(None);
    // When it was held, so a resume moves its waiting deliveries on by that long.
    model.paused_at = Set((to == ScheduleStatus::Paused).then_some(now));
    if to.is_final() {
        model.next_run_at = Set(None);
    }
    model.updated_at = Set(now);
    schedule::Entity::update(model)
        .filter(schedule::Column::Status.eq(from.as_str()))
        .exec(db)
        .await
        .map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => StoreError::Conflict(format!(
                "scheduled message {id} changed meanwhile; read it and try again"
            )),
            other => other.into(),
        })
}

/// Deletes a schedule; its deliveries not sent yet are skipped first, in the same
/// transaction (once it is gone they belong to no campaign that could hold them back).
pub async fn delete(db: &impl Conn, id: i32, reason: &str, now: DateTime<Utc>) -> Result<()> {
    // Waits for a fan-out chunk in progress (it holds the row), so its deliveries are skipped
    // too.
    let mut find = schedule::Entity::find_by_id(id);
    if db.get_database_backend() == DatabaseBackend::Postgres {
        find = find.lock_exclusive();
    }
    find.one(db).await?;
    deliveries::cancel_schedule(db, id, reason, now).await?;
    let result = schedule::Entity::delete_by_id(id).exec(db).await?;
    if result.rows_affected == 0 {
        return Err(StoreError::not_found(format!(
            "scheduled message {id} not found"
        )));
    }
    Ok(())
}
