//! Files staff attach to a message: checked against what WhatsApp accepts, kept in the media
//! store, and uploaded once to Meta for the number they will go from
//! (`POST /{phone-number-id}/media`); a send then names the upload and goes out by Meta's id.

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use heydoc_store::media::{self as store, NewUpload, Upload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The largest file accepted (WhatsApp's limit for video and audio; images are 5 MB).
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// What WhatsApp accepts, as which kind of message, and how large.
fn kind_of(mime: &str) -> Option<(&'static str, usize)> {
    const MB: usize = 1024 * 1024;
    Some(match mime {
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", MB / 2),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "application/pdf"
        | "text/plain"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", MAX_UPLOAD_BYTES)
        }
        _ => return None,
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The business number the file will be sent from (its phone number id); default: the
    /// default number. Meta keeps an upload per number.
    pub from: Option<String>,
    /// The file's name, shown to the patient for a document.
    #[param(max_length = 200)]
    pub filename: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadOut {
    /// What a send names (`media.upload_id`).
    pub id: i64,
    /// Meta's media id.
    pub media_id: String,
    /// `image`, `document`, `audio`, `video` or `sticker`.
    pub kind: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub size: i64,
    /// The number it was uploaded for.
    pub from: String,
    pub created_at: DateTime<Utc>,
}

impl From<Upload> for UploadOut {
    fn from(u: Upload) -> Self {
        Self {
            id: u.id,
            media_id: u.meta_media_id,
            kind: u.kind,
            mime_type: u.mime_type,
            filename: u.filename,
            size: u.size,
            from: u.phone_number_id,
            created_at: u.created_at,
        }
    }
}

pub async fn upload(
    state: &AppState,
    me: &AuthUser,
    params: UploadParams,
    content_type: Option<&str>,
    bytes: Bytes,
) -> ApiResult<UploadOut> {
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let Some((kind, max)) = kind_of(&mime) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "WhatsApp cannot send {mime:?}: send JPEG or PNG images, WebP stickers, MP4 or 3GPP video, AAC/AMR/MP3/MP4/OGG audio, or PDF, text and Office documents, with that Content-Type"
        )));
    };
    if bytes.is_empty() {
        return Err(ApiError::validation("the file is empty"));
    }
    if bytes.len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "WhatsApp takes {kind} files up to {} bytes; this one has {}",
            max,
            bytes.len()
        )));
    }
    // A person's uploads over the last day are capped, so that one account (or a leaked
    // session) cannot fill the media store.
    let quota = state.settings.media.upload_quota_bytes;
    let used = store::uploaded_since(
        &state.db,
        me.user_id,
        Utc::now() - chrono::Duration::hours(24),
    )
    .await?;
    let used = u64::try_from(used).unwrap_or(0);
    if used.saturating_add(bytes.len() as u64) > quota {
        return Err(ApiError::QuotaExceeded(format!(
            "you have uploaded {used} bytes in the last 24 hours, and at most {quota} are allowed; this file ({} bytes) would pass it: try again later, or send a smaller file",
            bytes.len()
        )));
    }
    let filename = params
        .filename
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        });
    let number_id = params
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .unwrap_or(state.business_number())
        .to_string();
    crate::core::numbers::usable(state, &number_id).await?;
    let number = heydoc_store::numbers::find(&state.db, &number_id).await?;
    let token = state
        .token_for(number.as_ref())
        .ok_or_else(|| ApiError::Unavailable("no access token to upload with".into()))?;
    let media = state
        .media
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no media store is configured".into()))?;
    let now = Utc::now();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let key = format!(
        "out/{}/{}",
        now.format("%Y/%m"),
        uuid::Uuid::new_v4().simple()
    );
    media
        .put(&key, bytes.to_vec())
        .await
        .map_err(|e| ApiError::Internal(format!("cannot keep the upload: {e}")))?;
    let name = filename.clone().unwrap_or_else(|| kind.to_string());
    let meta_id = state
        .graph
        .upload_media(&number_id, bytes.to_vec(), &mime, &name, &token)
        .await
        .map_err(|e| {
            ApiError::Unavailable(format!("WhatsApp did not take the file: {}", e.message))
        })?;
    let row = store::insert_upload(
        &state.db,
        NewUpload {
            phone_number_id: number_id,
            meta_media_id: meta_id,
            kind: kind.to_string(),
            mime_type: mime,
            filename,
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            sha256,
            storage_key: key,
            created_by: Some(me.user_id),
        },
        now,
    )
    .await?;
    tracing::info!(upload_id = row.id, kind, "file uploaded to WhatsApp");
    Ok(row.into())
}

/// A send's attachment: `{"upload_id": 7}` from `POST /api/media`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct MediaSpec {
    pub upload_id: i64,
}

/// The payload of a message that sends upload `spec` from `number`, with `caption`.
pub async fn payload_for(
    state: &AppState,
    spec: &MediaSpec,
    number: &str,
    caption: &str,
) -> ApiResult<(String, serde_json::Value)> {
    let up = store::upload(&state.db, spec.upload_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("media.upload_id: no upload {}", spec.upload_id))
        })?;
    if up.phone_number_id != number {
        return Err(ApiError::validation(format!(
            "media.upload_id: the file was uploaded for number {}, and this message goes from {number}: upload it again with from={number}",
            up.phone_number_id
        )));
    }
    let mut media =
        serde_json::json!({"id": up.meta_media_id, "upload_id": up.id, "kind": up.kind});
    if !caption.is_empty() && matches!(up.kind.as_str(), "image" | "video" | "document") {
        media["caption"] = serde_json::json!(caption);
    }
    if let (Some(f), "document") = (&up.filename, up.kind.as_str()) {
        media["filename"] = serde_json::json!(f);
    }
    Ok((up.kind, serde_json::json!({ "media": media })))
}
