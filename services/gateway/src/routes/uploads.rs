//! Files to send: uploaded once to WhatsApp for a number, then named by sends.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Extension;

use crate::auth::AuthUser;
use crate::core::uploads::{self, UploadOut, UploadParams};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::routes::Envelope;
use crate::state::AppState;

/// A file's bytes, with its type as the Content-Type.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // the document's type; the handler reads the body itself
pub struct FileBody(Vec<u8>);

/// Uploads a file to send (the body, with its type as the Content-Type): kept, and uploaded
/// once to WhatsApp for the number it will go from. A send names it as `media.upload_id`.
#[utoipa::path(
    post, path = "/api/media", operation_id = "uploadMedia", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    params(UploadParams),
    request_body(description = "JPEG/PNG images, WebP stickers, MP4/3GPP video, AAC/AMR/MP3/MP4/OGG audio, PDF, text and Office documents (up to 16 MB; images 5 MB)",
        content((FileBody = "image/jpeg"), (FileBody = "image/png"), (FileBody = "application/pdf"), (FileBody = "video/mp4"), (FileBody = "audio/ogg"))),
    responses(
        (status = 201, body = Envelope<UploadOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody, description = "WhatsApp did not take the file, or no media store is configured"),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Envelope<UploadOut>>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let out = uploads::upload(&state, &me, params, content_type, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(out, "File uploaded to WhatsApp")),
    ))
}
