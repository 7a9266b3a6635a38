//! Contact imports: starting one as a background job on a spooled upload, and what the API
//! shows of it (progress, counts, the first rejected rows) to its creator and the admins.

use std::time::Duration;

use chrono::{DateTime, Utc};
use heydoc_domain::ImportState;
use heydoc_store::imports::{self as store, Import};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::import::{job, Columns};
use crate::state::AppState;

/// How long the upload waits for its import before answering 202 with the job.
const WAIT_FOR_JOB: Duration = Duration::from_secs(2);
/// Rejected rows an import's answer lists (all are counted; the first 10,000 are kept).
const LISTED_REJECTS: u64 = 1000;
/// A running import whose progress has not moved for this long was interrupted (its gateway
/// stopped); its counts are what it did.
const STALLED_SECS: i64 = 60;

/// A rejected row.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectOut {
    /// The line in the file (the header is line 1).
    pub line: i64,
    pub reason: String,
    /// The row as the file had it (its cells joined by commas, at most 500 characters).
    pub content: Option<String>,
}

/// An import and how far it got.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    pub id: i32,
    /// `running`, `done`, `failed` (see `error`) or `interrupted` (its gateway stopped).
    pub status: String,
    /// 0 to 1: how much of the file has been read.
    pub progress: f64,
    pub bytes_total: i64,
    pub bytes_done: i64,
    /// Data rows read so far (the header not counted).
    pub lines: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
    /// The first rejected rows, by line (at most 1,000).
    pub rejects: Vec<RejectOut>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

async fn import_out(state: &AppState, row: Import) -> ApiResult<ImportOut> {
    let rejects = store::rejects(&state.db, row.id, LISTED_REJECTS)
        .await?
        .into_iter()
        .map(|r| RejectOut {
            line: r.line,
            reason: r.reason,
            content: r.content,
        })
        .collect();
    let stalled = row.status == ImportState::Running.as_str()
        && row.updated_at < Utc::now() - chrono::Duration::seconds(STALLED_SECS);
    Ok(ImportOut {
        id: row.id,
        status: if stalled {
            ImportState::Interrupted.as_str().into()
        } else {
            row.status
        },
        progress: if row.bytes_total > 0 {
            (row.bytes_done as f64 / row.bytes_total as f64).clamp(0.0, 1.0)
        } else {
            1.0
        },
        bytes_total: row.bytes_total,
        bytes_done: row.bytes_done,
        lines: row.lines,
        created: row.created,
        updated: row.updated,
        unchanged: row.unchanged,
        rejected: row.rejected,
        rejects,
        error: row.error,
        created_at: row.created_at,
        finished_at: row.finished_at,
    })
}

/// Starts the import of the spooled file at `path` (of `size` bytes, its header already read
/// into `columns`) and waits up to two seconds for it; the import and whether it finished.
/// The file is the job's from here on (it removes it), or removed here when the job cannot
/// start.
pub async fn start(
    state: &AppState,
    me: &AuthUser,
    path: std::path::PathBuf,
    size: usize,
    columns: Columns,
) -> ApiResult<(ImportOut, bool)> {
    // Counted and recorded as one step on this replica (across replicas the counts can be
    // passed by as many imports as there are replicas admitting one at the same moment).
    let admitted = state.import_gate.lock().await;
    if let Err(e) = room_for_an_import(state, me).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    let created = match store::start(&state.db, me.user_id, size as i64, Utc::now()).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e.into());
        }
    };
    drop(admitted);
    let id = created.id;
    tracing::info!(import_id = id, bytes = size, by = %me.username, "import started");
    let mut running = tokio::spawn(job::run(state.db.clone(), id, path, columns));
    let finished = tokio::time::timeout(WAIT_FOR_JOB, &mut running)
        .await
        .is_ok();
    let row = store::get(&state.db, id).await.map_err(|e| match e {
        heydoc_store::StoreError::NotFound(_) => {
            ApiError::Internal(format!("import {id} vanished"))
        }
        other => other.into(),
    })?;
    Ok((import_out(state, row).await?, finished))
}

/// Imports one person may run at once, and all together (each holds a file, a thread and
/// the database's write lock in turn).
const IMPORTS_PER_USER: u64 = 1;
const IMPORTS_IN_ALL: u64 = 3;

/// Whether `me` may start an import now: checked before the upload is read (so a refused one
/// costs no spooling), and again when it is admitted.
pub async fn room_for_an_import(state: &AppState, me: &AuthUser) -> ApiResult<()> {
    let alive = Utc::now() - chrono::Duration::seconds(STALLED_SECS);
    if store::running(&state.db, Some(me.user_id), alive).await? >= IMPORTS_PER_USER {
        return Err(ApiError::Conflict(
            "an import of yours is still running: wait for it to finish (GET /api/imports/{id})"
                .into(),
        ));
    }
    if store::running(&state.db, None, alive).await? >= IMPORTS_IN_ALL {
        return Err(ApiError::RateLimited {
            retry_after_secs: 30,
        });
    }
    Ok(())
}

/// An import, for its creator or an admin (its rejected rows hold contacts' data).
pub async fn get(state: &AppState, me: &AuthUser, id: i32) -> ApiResult<ImportOut> {
    let row = Some(store::get(&state.db, id).await?)
        .filter(|r| r.created_by == me.user_id || me.role == heydoc_domain::Role::Admin)
        .ok_or_else(|| ApiError::not_found(format!("no import {id}")))?;
    import_out(state, row).await
}
