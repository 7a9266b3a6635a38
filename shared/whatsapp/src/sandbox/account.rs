//! The sandbox's media and number-quality side: files users send are kept under a media id;
//! `GET /{media-id}` answers a download URL that expires (as Meta's does after about five
//! minutes) and needs the bearer token; a knob serves bytes that do not match the announced
//! sha256; the number's quality and messaging limit change with Meta's webhooks.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::routes::{bearer, error_for_code, graph_error};
use super::{lock, Sandbox, SANDBOX_WABA};
use crate::webhook::{ChangeValue, Envelope, NumberQualityUpdate, MEDIA_KINDS};

pub(super) struct StoredMedia {
    bytes: Vec<u8>,
    mime_type: String,
    sha256: String,
}

/// A file a test's user sends: its bytes in base64.
#[derive(Debug, Deserialize)]
pub(super) struct InboundFile {
    /// `image`, `document`, `audio`, `video` or `sticker`.
    kind: String,
    data_base64: String,
    mime_type: String,
    #[serde(default)]
    filename: Option<String>,
}

impl Sandbox {
    /// Keeps a user's file under a new media id; answers the message's kind and its media
    /// object as Meta's webhook shows it.
    pub(super) fn keep_inbound_media(
        &self,
        file: &InboundFile,
        caption: &str,
    ) -> Result<(String, Value), String> {
        if !MEDIA_KINDS.contains(&file.kind.as_str()) {
            return Err(format!(
                "media.kind must be one of {}",
                MEDIA_KINDS.join(", ")
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(file.data_base64.as_bytes())
            .map_err(|e| format!("media.data_base64: {e}"))?;
        let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        let id = format!("{}", 10_000_000_000_000u64 + rand::random::<u32>() as u64);
        let mut media = json!({"id": id, "mime_type": file.mime_type, "sha256": sha256});
        if !caption.is_empty() && file.kind != "audio" && file.kind != "sticker" {
            media["caption"] = json!(caption);
        }
        if let Some(f) = &file.filename {
            media["filename"] = json!(f);
        }
        lock(&self.inner.media).insert(
            id,
            StoredMedia {
                bytes,
                mime_type: file.mime_type.clone(),
                sha256,
            },
        );
        Ok((file.kind.clone(), media))
    }
}

/// A download URL's signature: the id and expiry, keyed by nothing secret (the sandbox only
/// needs the URL to stop working when it expires or is edited).
fn url_check(id: &str, expires: i64) -> String {
    hex::encode(&Sha256::digest(format!("{id}.{expires}").as_bytes())[..8])
}

/// `GET /{version}/{media-id}`: Meta's answer with a short-lived URL.
pub(super) async fn media_info(
    State(sandbox): State<Sandbox>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let knobs = sandbox.config().knobs;
    if knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    if !bearer(&headers) {
        return error_for_code(190);
    }
    let found = lock(&sandbox.inner.media)
        .get(&id)
        .map(|m| (m.mime_type.clone(), m.sha256.clone(), m.bytes.len()));
    let Some((mime_type, sha256, size)) = found else {
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return number_info(&sandbox, &id);
        }
        return graph_error(
            StatusCode::NOT_FOUND,
            100,
            "Unsupported get request. Object does not exist",
            "no media with this id",
        );
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let expires = Utc::now().timestamp() + knobs.media_url_ttl_secs as i64;
    Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("http://{host}/sandbox/media/{id}?expires={expires}&check={}", url_check(&id, expires)),
        "mime_type": mime_type,
        "sha256": sha256,
        "file_size": size,
        "id": id,
    }))
    .into_response()
}

/// `GET /{version}/{phone-number-id}`: the number as Meta describes it (the fields of Meta's
/// `WhatsAppAccountNumber`, and its throughput level). Every number the sandbox sends from is
/// its display number, written as Meta writes it here ("+1 555-000-1111"), while webhooks name
/// it by its digits; the tier is the last `/sandbox/number/quality` set.
fn number_info(sandbox: &Sandbox, id: &str) -> Response {
    let display = formatted(&sandbox.config().display_phone_number);
    let tier = lock(&sandbox.inner.stats)
        .stats
        .messaging_limit
        .clone()
        .unwrap_or_else(|| "TIER_1K".to_string());
    Json(json!({
        "id": id,
        "display_phone_number": display,
        "verified_name": "HeyDoc Sandbox Clinic",
        "status": "CONNECTED",
        "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED",
        "name_status": "APPROVED",
        "messaging_limit_tier": tier,
        "account_mode": "LIVE",
        "throughput": {"level": "STANDARD"},
    }))
    .into_response()
}

/// A number as Meta's phone-number endpoints write it: `+1 555-000-1111` for the North
/// American plan, `+` and the digits otherwise.
fn formatted(digits: &str) -> String {
    let d: String = digits.chars().filter(char::is_ascii_digit).collect();
    if d.len() == 11 && d.starts_with('1') {
        format!("+1 {}-{}-{}", &d[1..4], &d[4..7], &d[7..])
    } else {
        format!("+{d}")
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct DownloadParams {
    expires: i64,
    check: String,
}

/// The file behind a media URL, while the URL lives and with the token.
pub(super) async fn download_media(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    Query(params): Query<DownloadParams>,
    headers: HeaderMap,
) -> Response {
    {
        let mut c = lock(&sandbox.inner.stats);
        c.downloading += 1;
        c.stats.media_downloads += 1;
        c.stats.max_downloads_at_once = c.stats.max_downloads_at_once.max(c.downloading);
    }
    let answer = serve_download(&sandbox, &id, &params, &headers).await;
    lock(&sandbox.inner.stats).downloading -= 1;
    answer
}

async fn serve_download(
    sandbox: &Sandbox,
    id: &str,
    params: &DownloadParams,
    headers: &HeaderMap,
) -> Response {
    let latency = sandbox.config().knobs.latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    if !bearer(headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if params.expires < Utc::now().timestamp() || params.check != url_check(id, params.expires) {
        return (StatusCode::NOT_FOUND, "URL expired").into_response();
    }
    let tamper = sandbox.config().knobs.tamper_media;
    let media = lock(&sandbox.inner.media)
        .get(id)
        .map(|m| (m.bytes.clone(), m.mime_type.clone()));
    let Some((mut bytes, mime_type)) = media else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if tamper {
        bytes.push(0);
    }
    ([(header::CONTENT_TYPE, mime_type)], bytes).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct NumberQuality {
    /// `FLAGGED`, `UNFLAGGED`, `UPGRADE`, `DOWNGRADE`.
    event: String,
    /// `TIER_250`, `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`.
    #[serde(default)]
    messaging_limit: Option<String>,
}

/// Meta re-rates the number: `phone_number_quality_update` goes out.
pub(super) async fn number_quality(
    State(sandbox): State<Sandbox>,
    Json(change): Json<NumberQuality>,
) -> StatusCode {
    let display = sandbox.config().display_phone_number;
    let mut fields =
        json!({"display_phone_number": display, "event": change.event.to_ascii_uppercase()});
    if let Some(limit) = change.messaging_limit {
        lock(&sandbox.inner.stats).stats.messaging_limit = Some(limit.clone());
        fields["whatsapp_business_manager_messaging_limit"] = json!(limit);
    }
    sandbox
        .post_envelope(Envelope::of_field(
            SANDBOX_WABA,
            NumberQualityUpdate::FIELDS[0],
            ChangeValue::fields(fields),
        ))
        .await;
    StatusCode::NO_CONTENT
}

/// `POST /{version}/{phone-number-id}/media`: the business uploads a file to send (multipart:
/// `messaging_product`, `type`, `file`); answers its media id.
pub(super) async fn upload_media(
    State(sandbox): State<Sandbox>,
    Path((_version, _number)): Path<(String, String)>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    if !bearer(&headers) {
        return error_for_code(190);
    }
    let (mut file, mut kind, mut product) = (None, None, None);
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => match field.name().unwrap_or_default() {
                "file" => {
                    let declared = field.content_type().map(str::to_string);
                    match field.bytes().await {
                        Ok(bytes) => file = Some((bytes.to_vec(), declared)),
                        Err(_) => break,
                    }
                }
                "type" => kind = field.text().await.ok(),
                "messaging_product" => product = field.text().await.ok(),
                _ => {}
            },
            Ok(None) => break,
            Err(_) => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    "Invalid parameter",
                    "the body is not multipart/form-data",
                )
            }
        }
    }
    let (Some((bytes, declared)), Some("whatsapp")) = (file, product.as_deref()) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "messaging_product=whatsapp and a file are required",
        );
    };
    let mime_type = kind
        .or(declared)
        .unwrap_or_else(|| "application/octet-stream".into());
    let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    let id = format!("{}", 20_000_000_000_000u64 + rand::random::<u32>() as u64);
    lock(&sandbox.inner.media).insert(
        id.clone(),
        StoredMedia {
            bytes,
            mime_type,
            sha256,
        },
    );
    lock(&sandbox.inner.stats).stats.uploads += 1;
    Json(json!({ "id": id })).into_response()
}

impl Sandbox {
    /// Whether a media id is one the sandbox holds (uploaded, or sent by a user).
    pub(super) fn has_media(&self, id: &str) -> bool {
        lock(&self.inner.media).contains_key(id)
    }
}
