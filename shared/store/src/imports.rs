//! A contact import's bookkeeping: its row (state, progress, counts) and the rejected lines.
//! The upsert of the contacts themselves is in `contact_import`.

use chrono::{DateTime, Utc};
use heydoc_domain::ImportState;
use heydoc_entity::{import, import_reject};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::contact_import::BatchCounts;
use crate::{Conn, Result, StoreError};

pub use import::Model as Import;
pub use import_reject::Model as Reject;

/// A new running import of a file of `bytes_total` bytes.
pub async fn start(
    db: &impl Conn,
    created_by: i32,
    bytes_total: i64,
    now: DateTime<Utc>,
) -> Result<Import> {
    Ok(import::Entity::insert(import::ActiveModel {
        status: Set(ImportState::Running.as_str().into()),
        created_by: Set(created_by),
        bytes_total: Set(bytes_total),
        bytes_done: Set(0),
        lines: Set(0),
        created: Set(0),
        updated: Set(0),
        unchanged: Set(0),
        rejected: Set(0),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
        ..Default::default()
    })
    .exec_with_returning(db)
    .await?)
}

/// Imports running now (progress within `alive_since`), all of them or `created_by`'s.
pub async fn running(
    db: &impl Conn,
    created_by: Option<i32>,
    alive_since: DateTime<Utc>,
) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    let mut query = import::Entity::find()
        .filter(import::Column::Status.eq(ImportState::Running.as_str()))
        .filter(import::Column::UpdatedAt.gt(alive_since));
    if let Some(user) = created_by {
        query = query.filter(import::Column::CreatedBy.eq(user));
    }
    Ok(query.count(db).await?)
}

pub async fn get(db: &impl Conn, id: i32) -> Result<Import> {
    import::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("no import {id}")))
}

/// The first `limit` rejected lines, by line.
pub async fn rejects(db: &impl Conn, id: i32, limit: u64) -> Result<Vec<Reject>> {
    Ok(import_reject::Entity::find()
        .filter(import_reject::Column::ImportId.eq(id))
        .order_by_asc(import_reject::Column::Line)
        .limit(limit)
        .all(db)
        .await?)
}

/// Ends an import: `done` (its progress full) or `failed` with the error.
pub async fn finish(
    db: &impl Conn,
    id: i32,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let state = match error {
        None => ImportState::Done,
        Some(_) => ImportState::Failed,
    };
    let mut finish = import::Entity::update_many()
        .col_expr(import::Column::Status, Expr::value(state.as_str()))
        .col_expr(
            import::Column::Error,
            Expr::value(error.map(str::to_string)),
        )
        .col_expr(import::Column::UpdatedAt, Expr::value(now))
        .col_expr(import::Column::FinishedAt, Expr::value(now))
        .filter(import::Column::Id.eq(id));
    if state == ImportState::Done {
        finish = finish.col_expr(
            import::Column::BytesDone,
            Expr::col(import::Column::BytesTotal).into(),
        );
    }
    finish.exec(db).await?;
    Ok(())
}

/// A row an import refused: its line, why, and what it said.
#[derive(Debug, Clone)]
pub struct RejectedRow {
    pub line: u64,
    pub reason: String,
    /// The row's cells joined by commas.
    pub content: String,
}

/// What one batch did, added to the import's counts.
#[derive(Debug)]
pub struct Progress<'a> {
    pub counts: BatchCounts,
    /// The rejected lines to keep; `rejected` counts all of them.
    pub kept_rejects: &'a [RejectedRow],
    pub rejected: u64,
    pub lines: u64,
    pub bytes_done: u64,
}

pub async fn record_progress(
    db: &impl Conn,
    id: i32,
    p: Progress<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let keep: Vec<import_reject::ActiveModel> = p
        .kept_rejects
        .iter()
        .map(|r| import_reject::ActiveModel {
            import_id: Set(id),
            line: Set(r.line as i64),
            reason: Set(r.reason.chars().take(500).collect()),
            content: Set(Some(r.content.chars().take(500).collect())),
            ..Default::default()
        })
        .collect();
    for part in keep.chunks(500) {
        import_reject::Entity::insert_many(part.to_vec())
            .exec(db)
            .await?;
    }
    let add = |col: import::Column, n: u64| Expr::col(col).add(n as i64);
    import::Entity::update_many()
        .col_expr(import::Column::Lines, add(import::Column::Lines, p.lines))
        .col_expr(
            import::Column::Created,
            add(import::Column::Created, p.counts.created),
        )
        .col_expr(
            import::Column::Updated,
            add(import::Column::Updated, p.counts.updated),
        )
        .col_expr(
            import::Column::Unchanged,
            add(import::Column::Unchanged, p.counts.unchanged),
        )
        .col_expr(
            import::Column::Rejected,
            add(import::Column::Rejected, p.rejected),
        )
        .col_expr(import::Column::BytesDone, Expr::value(p.bytes_done as i64))
        .col_expr(import::Column::UpdatedAt, Expr::value(now))
        .filter(import::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Whether the error is PostgreSQL's deadlock (40P01) or serialization (40001) failure: worth
/// another try.
pub fn is_transient(e: &StoreError) -> bool {
    let text = e.to_string();
    text.contains("deadlock detected") || text.contains("could not serialize")
}
