//! The background job behind an import: a blocking thread reads the spooled CSV record by
//! record and hands over batches; this task upserts each batch and records progress, counts
//! and rejected rows. The file is removed when the job ends, however it ends.

use std::path::PathBuf;

use chrono::Utc;
use heydoc_store::contact_import::{apply_batch, ImportRow};
use heydoc_store::imports::{self as store, Progress, RejectedRow};
use heydoc_store::Db;
use tokio::sync::mpsc;

use crate::import::{tag_room, Columns};

/// Rows per transaction.
pub const BATCH: usize = 1000;
/// Rejected rows kept per import (all are counted).
pub const KEPT_REJECTS: i64 = 10_000;

/// What the reader hands over.
enum Batch {
    Rows {
        rows: Vec<ImportRow>,
        rejects: Vec<RejectedRow>,
        lines: u64,
        bytes_done: u64,
    },
    /// The file stopped being readable CSV (or readable at all).
    Broken(String),
}

/// Runs the import to its end; returns once the row says `done` or `failed`, whatever
/// happens inside (a panic included).
pub async fn run(db: Db, id: i32, path: PathBuf, columns: Columns) {
    let work = tokio::spawn(import(db.clone(), id, path.clone(), columns));
    if let Err(e) = work.await {
        tracing::error!(import_id = id, error = %e, "import stopped on an internal error");
        let _ = tokio::fs::remove_file(&path).await;
        let failed = store::finish(
            &db,
            id,
            Some("the import stopped on an internal error; what was counted is in"),
            Utc::now(),
        )
        .await;
        if let Err(e) = failed {
            tracing::error!(import_id = id, error = %e, "could not record a failed import");
        }
    }
}

async fn import(db: Db, id: i32, path: PathBuf, columns: Columns) {
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let reading = path.clone();
    let reader = tokio::task::spawn_blocking(move || read(&reading, &columns, &tx));
    let mut kept = 0i64;
    let mut outcome: Result<(), String> = Ok(());
    while let Some(batch) = rx.recv().await {
        match batch {
            Batch::Rows {
                rows,
                rejects,
                lines,
                bytes_done,
            } => {
                if let Err(e) =
                    record_batch(&db, id, rows, rejects, lines, bytes_done, &mut kept).await
                {
                    outcome = Err(format!("the database refused a batch: {e}"));
                    break;
                }
            }
            Batch::Broken(reason) => {
                outcome = Err(reason);
                break;
            }
        }
    }
    drop(rx);
    let _ = reader.await;
    let _ = tokio::fs::remove_file(&path).await;
    let error = outcome.err();
    let status = if error.is_some() { "failed" } else { "done" };
    match store::finish(&db, id, error.as_deref(), Utc::now()).await {
        Ok(_) => tracing::info!(
            import_id = id,
            status,
            error = error.as_deref(),
            "import finished"
        ),
        Err(e) => {
            tracing::error!(import_id = id, error = %e, "could not record the end of an import")
        }
    }
}

async fn record_batch(
    db: &Db,
    id: i32,
    rows: Vec<ImportRow>,
    rejects: Vec<RejectedRow>,
    lines: u64,
    bytes_done: u64,
    kept: &mut i64,
) -> Result<(), heydoc_store::StoreError> {
    // A batch that lost a deadlock or serialization conflict to another writer is rolled
    // back whole; it is tried again.
    let (rows, rejects) = within_tag_limit(db, rows, rejects).await?;
    let mut tries = 0;
    let counts = loop {
        match apply_batch(db, rows.clone(), Utc::now()).await {
            Ok(c) => break c,
            Err(e) if tries < 3 && store::is_transient(&e) => {
                tries += 1;
                tracing::debug!(error = %e, import_id = id, "batch conflicted; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(50 << tries)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let room = usize::try_from(KEPT_REJECTS - *kept).unwrap_or(0);
    let kept_rejects = &rejects[..rejects.len().min(room)];
    *kept += kept_rejects.len() as i64;
    let progress = Progress {
        counts,
        kept_rejects,
        rejected: rejects.len() as u64,
        lines,
        bytes_done,
    };
    store::record_progress(db, id, progress, Utc::now()).await
}

/// Rows that would create tags beyond the limit become rejects, with the reason.
async fn within_tag_limit(
    db: &Db,
    rows: Vec<ImportRow>,
    mut rejects: Vec<RejectedRow>,
) -> Result<(Vec<ImportRow>, Vec<RejectedRow>), heydoc_store::StoreError> {
    let over = tag_room::lines_over(db, &rows).await?;
    if over.is_empty() {
        return Ok((rows, rejects));
    }
    let (kept, refused): (Vec<ImportRow>, Vec<ImportRow>) =
        rows.into_iter().partition(|r| !over.contains(&r.line));
    for row in refused {
        rejects.push(RejectedRow {
            line: row.line,
            reason: tag_room::reason(),
            content: row.phone.as_str().to_string(),
        });
    }
    rejects.sort_by_key(|r| r.line);
    Ok((kept, rejects))
}

/// Reads the file (on a blocking thread) and sends batches until the end or a broken file.
fn read(path: &std::path::Path, columns: &Columns, tx: &mpsc::Sender<Batch>) {
    let mut reader = match csv::ReaderBuilder::new().flexible(true).from_path(path) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.blocking_send(Batch::Broken(format!("cannot read the upload: {e}")));
            return;
        }
    };
    let mut record = csv::StringRecord::new();
    let mut rows = Vec::with_capacity(BATCH);
    let mut rejects = Vec::new();
    let mut lines = 0u64;
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // What was read before the break is imported; the rest is not.
                let line = e.position().map_or(0, csv::Position::line);
                let before = Batch::Rows {
                    rows: std::mem::take(&mut rows),
                    rejects: std::mem::take(&mut rejects),
                    lines,
                    bytes_done: reader.position().byte(),
                };
                if tx.blocking_send(before).is_ok() {
                    let _ = tx.blocking_send(Batch::Broken(format!(
                        "not valid CSV from line {line} on: {e}"
                    )));
                }
                return;
            }
        };
        if more {
            lines += 1;
            let line = record.position().map_or(0, csv::Position::line);
            match columns.row(line, &record) {
                Ok(row) => rows.push(row),
                Err(reason) => rejects.push(RejectedRow {
                    line,
                    reason,
                    content: crate::import::columns::row_text(&record),
                }),
            }
        }
        if rows.len() + rejects.len() >= BATCH || !more {
            let batch = Batch::Rows {
                rows: std::mem::replace(&mut rows, Vec::with_capacity(BATCH)),
                rejects: std::mem::take(&mut rejects),
                lines: std::mem::take(&mut lines),
                bytes_done: reader.position().byte(),
            };
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
        if !more {
            return;
        }
    }
}
