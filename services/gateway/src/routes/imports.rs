//! Contact import (CSV in, as a background job with progress) and export (CSV out, streamed
//! page by page for the inbox's current filter).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use heydoc_domain::ImportState;
use heydoc_store::contacts::Filter;
use heydoc_store::imports::{self as store, Import};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::core::contacts::tags_of;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::import::{job, Columns};
use crate::routes::Envelope;
use crate::state::AppState;

/// The largest CSV an import takes.
pub const MAX_UPLOAD: usize = 50 * 1024 * 1024;
/// How long the upload waits for its import before answering 202 with the job.
const WAIT_FOR_JOB: Duration = Duration::from_secs(2);
/// Rejected rows an import's answer lists (all are counted; the first 10,000 are kept).
const LISTED_REJECTS: u64 = 1000;
/// A running import whose progress has not moved for this long was interrupted (its gateway
/// stopped); its counts are what it did.
const STALLED_SECS: i64 = 60;
/// Contacts per page of an export.
const EXPORT_PAGE: u64 = 1000;

/// A rejected row.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectOut {
    /// The line in the file (the header is line 1).
    pub line: i64,
    pub reason: String,
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

/// Imports contacts from a CSV body: `phone` (required), `name`, `tags` (`;`-separated; missing
/// tags are created), `attributes` (a JSON object), and any other column as a custom attribute.
/// Upserts by phone; never removes tags or attributes. Answers 200 with the counts and the
/// rejected rows when the import finishes within two seconds, otherwise 202 with the job to
/// follow at `GET /api/imports/{id}` (the `Location` header).
#[utoipa::path(
    post, path = "/api/contacts/import", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    request_body(content = String, content_type = "text/csv", description = "CSV with a header row"),
    responses(
        (status = 200, body = Envelope<ImportOut>), (status = 202, body = Envelope<ImportOut>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Not text/plain: a plain HTML form on another site could send that with the cookie.
    let csv_like = ["text/csv", "application/csv", "application/vnd.ms-excel"];
    if !csv_like.iter().any(|k| kind.starts_with(k)) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the CSV as the body with Content-Type: text/csv (got {:?})",
            kind
        )));
    }
    let path = std::env::temp_dir().join(format!(
        "{SPOOL_PREFIX}{}.csv",
        uuid::Uuid::new_v4().simple()
    ));
    let spooled = spool(body, &path).await;
    let (size, header) = match spooled {
        Ok(ok) => ok,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    };
    let columns = match Columns::from_header(&header) {
        Ok(c) => c,
        Err(reason) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(ApiError::validation(reason));
        }
    };
    let now = Utc::now();
    let created = store::start(&state.db, me.user_id, size as i64, now).await;
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e.into());
        }
    };
    let id = created.id;
    tracing::info!(import_id = id, bytes = size, by = %me.username, "import started");
    let mut running = tokio::spawn(job::run(state.db.clone(), id, path, columns));
    let finished = tokio::time::timeout(WAIT_FOR_JOB, &mut running)
        .await
        .is_ok();
    let row = store::get(&state.db, id).await?;
    let out = import_out(&state, row).await?;
    let location = format!("/api/imports/{id}");
    let (status, message) = if finished {
        (StatusCode::OK, "Import finished")
    } else {
        (
            StatusCode::ACCEPTED,
            "Import running: follow it at the Location",
        )
    };
    let mut response = (status, axum::Json(Envelope::ok(out, message))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The prefix of spooled uploads in the temporary directory.
pub const SPOOL_PREFIX: &str = "heydoc-import-";

/// Removes uploads an earlier run left behind (it stopped mid-import; those imports show
/// `interrupted`). Only files older than a day, so no running import loses its file.
pub fn sweep_spool() {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let day = std::time::Duration::from_secs(24 * 3600);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if old && name.to_string_lossy().starts_with(SPOOL_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the body to `path` (refusing more than `MAX_UPLOAD`) and reads its header row.
async fn spool(body: Body, path: &std::path::Path) -> ApiResult<(usize, csv::StringRecord)> {
    // Readable by this user only: it holds contacts' data until the job removes it.
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    let mut size = 0usize;
    let mut head: Vec<u8> = Vec::new();
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk: Bytes =
            chunk.map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
        size += chunk.len();
        if size > MAX_UPLOAD {
            return Err(ApiError::PayloadTooLarge(format!(
                "an import takes at most {} MB; split the file",
                MAX_UPLOAD / 1024 / 1024
            )));
        }
        if head.len() < 64 * 1024 {
            head.extend_from_slice(&chunk[..chunk.len().min(64 * 1024 - head.len())]);
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    if size == 0 {
        return Err(ApiError::validation("the file is empty"));
    }
    let header = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(head.as_slice())
        .headers()
        .cloned()
        .map_err(|e| ApiError::validation(format!("the header row is not valid CSV: {e}")))?;
    Ok((size, header))
}

/// An import's progress, counts and first rejected rows.
#[utoipa::path(
    get, path = "/api/imports/{id}", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "import id")),
    responses((status = 200, body = ImportOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<ImportOut>> {
    // Imports (and their rejected rows, which hold contacts' data) are their creator's and
    // the admins'.
    let row = Some(store::get(&state.db, id).await?)
        .filter(|r| r.created_by == me.user_id || me.role == heydoc_domain::Role::Admin)
        .ok_or_else(|| ApiError::not_found(format!("no import {id}")))?;
    Ok(axum::Json(import_out(&state, row).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportParams {
    /// Only contacts whose phone or name contains this text.
    pub q: Option<String>,
    /// Only contacts carrying this tag id (empty: every contact).
    #[param(value_type = Option<i32>)]
    pub tag: Option<String>,
}

/// A cell starting with one of these is a formula to a spreadsheet: the export writes it with
/// a leading `'` (which the import removes), so a contact's name cannot run in Excel.
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn guard(cell: String) -> String {
    if cell.starts_with(FORMULA_STARTS) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// The columns of an export; an import reads them back (the last three are read-only).
const EXPORT_HEADER: [&str; 7] = [
    "phone",
    "name",
    "tags",
    "attributes",
    "opted_out",
    "suppressed_reason",
    "last_message_at",
];

/// Every contact matching the inbox's filter as CSV, streamed a page at a time.
#[utoipa::path(
    get, path = "/api/contacts/export", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(ExportParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn export(
    State(state): State<AppState>,
    Query(params): Query<ExportParams>,
) -> ApiResult<Response> {
    let tag = match params
        .tag
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => Some(
            t.parse::<i32>()
                .map_err(|_| ApiError::BadRequest(format!("tag must be a tag id, not {t:?}")))?,
        ),
    };
    let header_line = csv_line(EXPORT_HEADER.iter().map(|s| (*s).to_string()))?;
    let pages = futures_util::stream::unfold(Some(0i32), move |after| {
        let state = state.clone();
        let q = params.q.clone();
        async move {
            let after = after?;
            match export_page(&state, q.as_deref(), tag, after).await {
                Ok((bytes, next)) if !bytes.is_empty() => Some((Ok(bytes), next)),
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(error = %e, "export stopped");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    let body = Body::from_stream(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(header_line) })
            .chain(pages),
    );
    let name = format!("contacts-{}.csv", Utc::now().format("%Y%m%d-%H%M%S"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// One page of the export after contact id `after`, and where the next starts.
async fn export_page(
    state: &AppState,
    q: Option<&str>,
    tag: Option<i32>,
    after: i32,
) -> ApiResult<(Bytes, Option<i32>)> {
    let filter = Filter {
        q: q.map(str::to_string),
        tag,
    };
    let rows = heydoc_store::contacts::by_id_after(&state.db, &filter, after, EXPORT_PAGE).await?;
    let ids: Vec<i32> = rows.iter().map(|c| c.id).collect();
    let mut tags = tags_of(&state.db, &ids).await?;
    let next = (rows.len() as u64 == EXPORT_PAGE)
        .then(|| ids.last().copied())
        .flatten();
    let mut out = Vec::new();
    for c in rows {
        let names: Vec<String> = tags
            .remove(&c.id)
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.name)
            .collect();
        let attributes = match &c.attributes {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            other => other.to_string(),
        };
        out.extend_from_slice(&csv_line(
            [
                c.phone,
                c.name,
                names.join(";"),
                attributes,
                c.opted_out_at.is_some().to_string(),
                c.suppressed_reason.unwrap_or_default(),
                c.last_message_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
            ]
            .map(guard),
        )?);
    }
    Ok((Bytes::from(out), next))
}

fn csv_line(fields: impl IntoIterator<Item = String>) -> ApiResult<Bytes> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(fields)
        .map_err(|e| ApiError::Internal(format!("cannot write CSV: {e}")))?;
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("cannot write CSV: {e}")))
}
