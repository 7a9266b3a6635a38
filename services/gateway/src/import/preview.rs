//! An import's preview: the first rows of the file read as the import would read them, and
//! what each would do to the contacts as they are now (create, update with what changes, leave
//! unchanged, reject with why and what the row said). Nothing is written.

use serde::Serialize;
use utoipa::ToSchema;

use heydoc_store::contact_import::{self, RowEffect};

use crate::error::{ApiError, ApiResult};
use crate::import::{tag_room, Columns};
use crate::state::AppState;

/// Rows a preview reads (and counts).
pub const PREVIEW_ROWS: usize = 1000;
/// Rows a preview lists.
const LISTED: usize = 25;

/// One row as the import would take it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewRow {
    /// The line in the file (the header is line 1).
    pub line: u64,
    /// `create`, `update`, `unchanged` or `reject`.
    pub action: String,
    /// The phone as it will be stored (empty for a rejected row).
    pub phone: String,
    pub name: Option<String>,
    /// What an update changes, in words.
    pub changes: Vec<String>,
    /// Why a rejected row is refused.
    pub reason: Option<String>,
    /// The row as the file has it (cells joined by commas).
    pub content: String,
}

/// What importing the file would do, judged on its first rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportPreview {
    /// The header's columns.
    pub columns: Vec<String>,
    /// Data rows read (at most 1,000); `more` says the file goes on.
    pub rows_read: u64,
    pub more: bool,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// The first rows, with what each would do (at most 25), and every rejected row among
    /// those read after them (up to 25 more).
    pub rows: Vec<PreviewRow>,
}

/// Reads the spooled file's first rows (on a blocking thread) and judges them.
pub async fn preview(
    state: &AppState,
    path: std::path::PathBuf,
    columns: Columns,
) -> ApiResult<ImportPreview> {
    let (header, parsed, more) = tokio::task::spawn_blocking(move || read_head(&path, &columns))
        .await
        .map_err(|e| ApiError::Internal(format!("preview: {e}")))??;
    let valid: Vec<contact_import::ImportRow> = parsed
        .iter()
        .filter_map(|(_, row)| row.as_ref().ok().cloned())
        .collect();
    // Refused as the import would refuse them: rows whose new tags pass the limit.
    let over = tag_room::lines_over(&state.db, &valid).await?;
    let valid: Vec<contact_import::ImportRow> = valid
        .into_iter()
        .filter(|r| !over.contains(&r.line))
        .collect();
    let parsed = parsed.into_iter().map(|(content, row)| match row {
        Ok(row) if over.contains(&row.line) => (content, Err((row.line, tag_room::reason()))),
        other => (content, other),
    });
    let mut effects = contact_import::preview(&state.db, &valid)
        .await?
        .into_iter();
    let mut out = ImportPreview {
        columns: header,
        rows_read: parsed.len() as u64,
        more,
        created: 0,
        updated: 0,
        unchanged: 0,
        rejected: 0,
        rows: Vec::new(),
    };
    let mut rejects_after = 0;
    for (i, (content, row)) in parsed.enumerate() {
        let listed = match row {
            Ok(row) => {
                let effect = effects.next().unwrap_or(RowEffect::Unchanged);
                let (action, changes) = match effect {
                    RowEffect::Create => {
                        out.created += 1;
                        ("create", Vec::new())
                    }
                    RowEffect::Update(changes) => {
                        out.updated += 1;
                        ("update", changes)
                    }
                    RowEffect::Unchanged => {
                        out.unchanged += 1;
                        ("unchanged", Vec::new())
                    }
                };
                (i < LISTED).then(|| PreviewRow {
                    line: row.line,
                    action: action.into(),
                    phone: row.phone.as_str().to_string(),
                    name: row.name.clone(),
                    changes,
                    reason: None,
                    content,
                })
            }
            Err((line, reason)) => {
                out.rejected += 1;
                let show = i < LISTED || rejects_after < LISTED;
                if i >= LISTED {
                    rejects_after += 1;
                }
                show.then(|| PreviewRow {
                    line,
                    action: "reject".into(),
                    phone: String::new(),
                    name: None,
                    changes: Vec::new(),
                    reason: Some(reason),
                    content,
                })
            }
        };
        out.rows.extend(listed);
    }
    Ok(out)
}

type Parsed = Vec<(String, Result<contact_import::ImportRow, (u64, String)>)>;

fn read_head(path: &std::path::Path, columns: &Columns) -> ApiResult<(Vec<String>, Parsed, bool)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| ApiError::Internal(format!("cannot read the upload: {e}")))?;
    let header = reader
        .headers()
        .map(|h| {
            h.iter()
                .map(|c| c.trim().trim_start_matches('\u{feff}').to_string())
                .collect()
        })
        .map_err(|e| ApiError::validation(format!("the header is not valid CSV: {e}")))?;
    let mut record = csv::StringRecord::new();
    let mut rows = Vec::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok((header, rows, false)),
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                rows.push((
                    String::new(),
                    Err((line, format!("not valid CSV from here on: {e}"))),
                ));
                return Ok((header, rows, false));
            }
        }
        if rows.len() == PREVIEW_ROWS {
            return Ok((header, rows, true));
        }
        let line = record.position().map_or(0, csv::Position::line);
        let content = crate::import::columns::row_text(&record);
        rows.push((content, columns.row(line, &record).map_err(|r| (line, r))));
    }
}
