//! Contact import (CSV in, as a background job with progress) and export (CSV out, streamed
//! page by page for the inbox's current filter).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::core::audit;
use crate::core::imports::{self, ImportOut};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::import::export::{csv_line, export_page, EXPORT_HEADER};
use crate::import::preview::ImportPreview;
use crate::import::spool::{spool, SPOOL_PREFIX};
use crate::import::Columns;
use crate::routes::Envelope;
use crate::state::AppState;

/// Imports contacts from a CSV body: `phone` (required), `name`, `tags` (`;`-separated; missing
/// tags are created), `attributes` (a JSON object), and any other column as a custom attribute.
/// Upserts by phone; never removes tags or attributes. Answers 200 with the counts and the
/// rejected rows when the import finishes within two seconds, otherwise 202 with the job to
/// follow at `GET /api/imports/{id}` (the `Location` header).
#[utoipa::path(
    post, path = "/api/contacts/import", operation_id = "importContacts", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    request_body(description = "CSV with a header row (UTF-8); `application/octet-stream` is read the same",
        content((CsvFile = "text/csv"))),
    responses(
        (status = 200, description = "The import finished within two seconds: counts and rejected rows", body = Envelope<ImportOut>,
            headers(("Location" = String, description = "where the import's state stays readable"))),
        (status = 202, description = "The import goes on in the background: follow it at Location", body = Envelope<ImportOut>,
            headers(("Location" = String, description = "GET it for progress, counts and rejected rows"))),
        (status = 409, description = "An import of yours is still running", body = ErrorBody),
        (status = 429, description = "Too many imports are running; see Retry-After", body = ErrorBody),
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
    // Refused before a byte of the file is read (and checked again once it is spooled).
    imports::room_for_an_import(&state, &me).await?;
    let (path, size, columns) = spooled_csv(&headers, body).await?;
    let (out, finished) = imports::start(&state, &me, path, size, columns).await?;
    let detail = serde_json::json!({"bytes": size});
    audit::record(
        &state,
        &me,
        audit::action::CONTACTS_IMPORT,
        format!("import {}", out.id),
        Some(detail),
    )
    .await;
    let location = format!("/api/imports/{}", out.id);
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

/// The upload as a spooled file with its size and checked header; the file is removed when
/// anything is wrong with it.
async fn spooled_csv(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(std::path::PathBuf, usize, Columns)> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Not text/plain: a plain HTML form on another site could send that with the cookie.
    let csv_like = [
        "text/csv",
        "application/csv",
        "application/vnd.ms-excel",
        "application/octet-stream",
    ];
    if !csv_like.iter().any(|k| kind.starts_with(k)) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the CSV as the body with Content-Type: text/csv or application/octet-stream (got {:?})",
            kind
        )));
    }
    let path = std::env::temp_dir().join(format!(
        "{SPOOL_PREFIX}{}.csv",
        uuid::Uuid::new_v4().simple()
    ));
    let (size, header) = match spool(body, &path).await {
        Ok(ok) => ok,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    };
    match Columns::from_header(&header) {
        Ok(columns) => Ok((path, size, columns)),
        Err(reason) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(ApiError::validation(reason))
        }
    }
}

/// What importing a CSV would do, before importing it: its first 1,000 rows read as the
/// import reads them, counted as created, updated (with what changes), unchanged and rejected
/// (with why and what the row said), and the first of them listed. Nothing is written.
#[utoipa::path(
    post, path = "/api/contacts/import/preview", operation_id = "previewContactImport", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    request_body(description = "CSV with a header row (UTF-8), as for the import",
        content((CsvFile = "text/csv"))),
    responses(
        (status = 200, description = "What the import would do with the first rows", body = ImportPreview),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The role may not import", body = ErrorBody),
        (status = 413, description = "The file is too large", body = ErrorBody),
        (status = 415, description = "Not a CSV body", body = ErrorBody),
        (status = 422, description = "The header has no phone column, or is not CSV", body = ErrorBody),
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<ImportPreview>> {
    let (path, _, columns) = spooled_csv(&headers, body).await?;
    let result = crate::import::preview::preview(&state, path.clone(), columns).await;
    let _ = tokio::fs::remove_file(&path).await;
    Ok(axum::Json(result?))
}

/// An import's progress, counts and first rejected rows.
#[utoipa::path(
    get, path = "/api/imports/{id}", operation_id = "getImport", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "import id")),
    responses((status = 200, body = ImportOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<ImportOut>> {
    Ok(axum::Json(imports::get(&state, &me, id).await?))
}

/// A CSV file's bytes (the import's body).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // the document's type; the handler streams the body itself
pub struct CsvFile(Vec<u8>);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Only contacts whose phone or name contains this text.
    pub q: Option<String>,
    /// Only contacts carrying this tag id (empty: every contact).
    #[param(value_type = Option<String>, pattern = r"^[0-9]{0,9}$")]
    pub tag: Option<String>,
}

/// Every contact matching the inbox's filter as CSV, streamed a page at a time.
#[utoipa::path(
    get, path = "/api/contacts/export", operation_id = "exportContacts", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(ExportParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn export(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Query(params): Query<ExportParams>,
) -> ApiResult<Response> {
    let filter = serde_json::json!({"q": params.q, "tag": params.tag});
    audit::record(
        &state,
        &me,
        audit::action::CONTACTS_EXPORT,
        None,
        Some(filter),
    )
    .await;
    // Up to nine digits (what the document says), or empty for every contact.
    let tag = match params.tag.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(t) if t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit()) => t.parse::<i32>().ok(),
        Some(t) => {
            return Err(ApiError::BadRequest(format!(
                "tag must be a tag id, not {t:?}"
            )))
        }
    };
    // A UTF-8 byte order mark first: Excel reads the file as UTF-8 only with it (names in
    // Hindi or Arabic are garbled otherwise); the import skips it.
    let mut header_line = b"\xEF\xBB\xBF".to_vec();
    header_line.extend_from_slice(&csv_line(EXPORT_HEADER.iter().map(|s| (*s).to_string()))?);
    let header_line = axum::body::Bytes::from(header_line);
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
