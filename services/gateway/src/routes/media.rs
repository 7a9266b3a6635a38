//! Inbound media files, to signed-in users only.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Path;
use crate::state::AppState;

/// The file of an inbound image, document, audio, video or sticker, as the patient sent it
/// (images and videos inline, anything else as a download).
#[utoipa::path(
    get, path = "/api/media/{message_id}", operation_id = "getMedia", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(("message_id" = i64, Path, description = "the message's id")),
    responses(
        (status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "still being downloaded from WhatsApp"),
        (status = 410, body = ErrorBody, description = "it could not be kept, or is no longer in the store (the reason is given)"),
        (status = 503, body = ErrorBody, description = "no media store is configured"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(message_id): Path<i64>,
) -> ApiResult<Response> {
    let row = heydoc_store::media::of_message(&state.db, message_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("message {message_id} has no media file")))?;
    match row.state.as_str() {
        heydoc_store::media::STORED => {}
        heydoc_store::media::PENDING => {
            return Err(ApiError::Conflict(
                "the file is still being downloaded from WhatsApp; try again in a moment".into(),
            ))
        }
        _ => {
            return Err(ApiError::Gone(format!(
                "the file could not be kept: {}",
                row.error.as_deref().unwrap_or("unknown reason")
            )))
        }
    }
    let key = row.storage_key.clone().unwrap_or_default();
    let store = state
        .media
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no media store is configured".into()))?;
    // Where the store keeps it is in the log, never in the answer.
    let pieces = store.get(&key).await.map_err(|e| match e {
        crate::media::StoreError::Missing(what) => {
            tracing::warn!(message_id, location = %what, "a stored media file is missing");
            ApiError::Gone("the file is no longer in the media store".into())
        }
        crate::media::StoreError::Other(what) => {
            ApiError::Internal(format!("the stored file cannot be read: {what}"))
        }
    })?;
    let mime = HeaderValue::from_str(&row.mime_type)
        .ok()
        .filter(|_| row.mime_type.contains('/'))
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let inline = row.mime_type.starts_with("image/")
        || row.mime_type.starts_with("video/")
        || row.mime_type.starts_with("audio/");
    let filename: String = row
        .filename
        .as_deref()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
        .take(100)
        .collect();
    let disposition = if inline {
        "inline".to_string()
    } else {
        format!(
            "attachment; filename=\"{}\"",
            if filename.is_empty() {
                "file"
            } else {
                &filename
            }
        )
    };
    // Streamed from the store as it is read: a large video is never held whole.
    let mut response = Response::new(Body::from_stream(pieces));
    if let Some(size) = row.size.filter(|s| *s > 0) {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, mime);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}
