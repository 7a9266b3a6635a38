//! A deleted contact's files leave the media store: the deletion listed their keys
//! (`media_removals`, in its transaction); each sweep removes up to a batch of them, and a
//! listed key is forgotten only once its object is gone. Removing twice (two replicas at once)
//! is harmless: an object already gone counts as removed.

use heydoc_store::media as store;

use crate::state::AppState;

/// Keys handled per sweep.
const BATCH: u64 = 200;

/// Removes listed files from the store; those that fail stay listed for the next sweep.
pub async fn remove_deleted(state: &AppState) {
    let Some(media) = state.media.as_ref() else {
        return;
    };
    let listed = match store::removals(&state.db, BATCH).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::debug!(error = %e, "media removal cannot read its list");
            return;
        }
    };
    for removal in listed {
        match media.delete(&removal.storage_key).await {
            Ok(()) => {
                if let Err(e) = store::removed(&state.db, removal.id).await {
                    tracing::debug!(error = %e, "media removal cannot record a removed file");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, key = %removal.storage_key, "a deleted contact's file is still in the store; trying again at the next sweep");
            }
        }
    }
}
