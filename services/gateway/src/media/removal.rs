//! A deleted contact's files, and uploads past their retention, leave the media store: the deletion listed their keys
//! (`media_removals`, in its transaction); each sweep removes them a batch at a time, and a
//! listed key is forgotten only once its object is gone. Removing twice (two replicas at once)
//! is harmless: an object already gone counts as removed.

use heydoc_store::media as store;

use crate::state::AppState;

/// Keys handled per sweep.
const BATCH: u64 = 200;

/// Uploads past `media.upload_retention_days` leave (Meta forgets its copy after 30 days, so
/// no send could use them): their files join the removal list and their rows go.
pub async fn expire_uploads(state: &AppState) {
    let days = i64::from(state.settings.media.upload_retention_days.max(1));
    let before = chrono::Utc::now() - chrono::Duration::days(days);
    loop {
        match store::expire_uploads(&state.db, before, BATCH).await {
            Ok(n) if n == BATCH => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(count = n, "old uploads listed for removal");
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot expire old uploads");
                return;
            }
        }
    }
}

/// Removes listed files from the store, a batch at a time until the list is empty; a file
/// that cannot be removed stays listed for the next sweep.
pub async fn remove_deleted(state: &AppState) {
    let Some(media) = state.media.as_ref() else {
        return;
    };
    loop {
        let listed = match store::removals(&state.db, BATCH).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(error = %e, "media removal cannot read its list");
                return;
            }
        };
        let full = listed.len() as u64 == BATCH;
        for removal in listed {
            if let Err(e) = media.delete(&removal.storage_key).await {
                tracing::warn!(error = %e, key = %removal.storage_key, "a deleted contact's file is still in the store; trying again at the next sweep");
                return;
            }
            if let Err(e) = store::removed(&state.db, removal.id).await {
                tracing::debug!(error = %e, "media removal cannot record a removed file");
                return;
            }
        }
        if !full {
            return;
        }
    }
}
