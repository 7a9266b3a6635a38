//! The upload, spooled to a private temporary file (memory stays flat whatever its size) with
//! its header row read back, and the sweep of files an earlier run left behind.

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};

/// The largest CSV an import takes.
pub const MAX_UPLOAD: usize = 50 * 1024 * 1024;

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
pub async fn spool(body: Body, path: &std::path::Path) -> ApiResult<(usize, csv::StringRecord)> {
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
