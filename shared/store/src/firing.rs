//! Firing schedules: claiming the due ones, recording their occurrences (unique on schedule
//! and fire time) and advancing each schedule, in one short transaction; and marking sent the
//! schedules that have nothing left to do. What fires when is the scheduler's decision.

use chrono::{DateTime, Utc};
use heydoc_domain::{OccurrenceState, ScheduleStatus};
use heydoc_entity::{occurrence, scheduled_message as schedule};
use sea_orm::sea_query::{CaseStatement, Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::schedules::Schedule;
use crate::{Conn, Db, Result};

/// Occurrence rows per INSERT (7 values each: well under SQLite's 32,766 parameters).
const OCCURRENCE_INSERT_CHUNK: usize = 1000;

/// Up to `limit` pending schedules due by `now`, soonest first, locked for the caller's
/// transaction (on PostgreSQL, skipping those another scheduler holds).
/// The database's clock, which every scheduler replica shares: what is due is decided by it,
/// not by each host's own (a scheduler whose clock runs ahead would fire early, one behind
/// late). PostgreSQL's `now()` (the transaction's start); SQLite lives in this process, so its
/// clock is this one.
pub async fn database_now(tx: &impl Conn) -> Result<DateTime<Utc>> {
    if tx.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(Utc::now());
    }
    let row = tx
        .query_one(sea_orm::Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT now()",
        ))
        .await?
        .ok_or_else(|| crate::StoreError::not_found("the database's clock"))?;
    Ok(row.try_get_by_index::<DateTime<Utc>>(0)?)
}

pub async fn lock_due(tx: &impl Conn, now: DateTime<Utc>, limit: u64) -> Result<Vec<Schedule>> {
    let mut query = schedule::Entity::find()
        .filter(schedule::Column::Status.eq(ScheduleStatus::Pending.as_str()))
        .filter(schedule::Column::NextRunAt.lte(now))
        .order_by_asc(schedule::Column::NextRunAt)
        .limit(limit.max(1));
    if tx.get_database_backend() == DatabaseBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(query.all(tx).await?)
}

/// A firing to record.
#[derive(Debug, Clone)]
pub struct NewOccurrence {
    pub schedule_id: i32,
    pub fire_at: DateTime<Utc>,
    /// `fanning_out` for a run that sends, `skipped` for one missed.
    pub state: OccurrenceState,
    /// The firing span's `traceparent`.
    pub trace_context: Option<String>,
}

/// A schedule's run count and next run after a claim.
#[derive(Debug, Clone)]
pub struct Advance {
    pub id: i32,
    pub occurrence_count: i32,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Writes a claim batch: one multi-row occurrence INSERT and one UPDATE of the schedules.
pub async fn record(
    tx: &impl Conn,
    occurrences: &[NewOccurrence],
    advances: &[Advance],
    now: DateTime<Utc>,
) -> Result<()> {
    // Invariant 3: unique on (schedule, fire time); a run already recorded stays as it is.
    for chunk in occurrences.chunks(OCCURRENCE_INSERT_CHUNK) {
        let rows = chunk.iter().map(|o| occurrence::ActiveModel {
            schedule_id: Set(o.schedule_id),
            fire_at: Set(o.fire_at),
            state: Set(o.state.as_str().to_string()),
            trace_context: Set(o.trace_context.clone()),
            cursor: Set(None),
            planned: Set(0),
            created_at: Set(now),
            // For an occurrence being fanned out, `updated_at` is the fan-out lease: the
            // epoch means "free to take now".
            updated_at: Set(DateTime::UNIX_EPOCH),
            ..Default::default()
        });
        occurrence::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([occurrence::Column::ScheduleId, occurrence::Column::FireAt])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(tx)
            .await?;
    }
    if advances.is_empty() {
        return Ok(());
    }
    let mut count = CaseStatement::new();
    let mut next = CaseStatement::new();
    for a in advances {
        count = count.case(schedule::Column::Id.eq(a.id), a.occurrence_count);
        next = next.case(schedule::Column::Id.eq(a.id), a.next_run_at);
    }
    schedule::Entity::update_many()
        .col_expr(
            schedule::Column::OccurrenceCount,
            count
                .finally(Expr::col(schedule::Column::OccurrenceCount))
                .into(),
        )
        .col_expr(
            schedule::Column::NextRunAt,
            next.finally(Expr::col(schedule::Column::NextRunAt)).into(),
        )
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
        .filter(schedule::Column::Id.is_in(advances.iter().map(|a| a.id)))
        .exec(tx)
        .await?;
    Ok(())
}

/// Marks sent the schedules with no run left whose fan-outs are done and whose deliveries have
/// all been sent (or have failed, been skipped ...). Returns how many.
pub async fn complete_finished(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    use sea_orm::ConnectionTrait;
    let backend = db.get_database_backend();
    // Several schedulers run this at once: on PostgreSQL each takes the rows nobody else holds
    // (SKIP LOCKED), so they never wait on or deadlock with each other.
    let lock = match backend {
        sea_orm::DatabaseBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let sent = ScheduleStatus::Sent.as_str();
    let pending = ScheduleStatus::Pending.as_str();
    let fanning_out = OccurrenceState::FanningOut.as_str();
    let in_flight = &*crate::vocabulary::IN_FLIGHT;
    let sql = format!(
        "UPDATE scheduled_messages SET status = '{sent}', updated_at = $1
        WHERE id IN (
          SELECT s.id FROM scheduled_messages s
          WHERE s.status = '{pending}' AND s.next_run_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM occurrences o
                            WHERE o.schedule_id = s.id AND o.state = '{fanning_out}')
            AND NOT EXISTS (SELECT 1 FROM messages m JOIN occurrences o ON o.id = m.occurrence_id
                            WHERE o.schedule_id = s.id
                              AND m.status IN ({in_flight}))
          {lock})"
    );
    let result = db
        .execute(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [now.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}
