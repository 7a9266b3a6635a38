//! Fetching one inbound file from Meta: `GET /{media-id}` for its short-lived URL, the file
//! with the number's token, its sha256 compared with what Meta announced (a file that does not
//! match is refused, never shown), then kept and its row marked `stored`. A failure Meta may
//! get over leaves the row pending for the sweep, for up to an hour.

use base64::Engine;
use chrono::{Duration, Utc};
use heydoc_store::media::{self as store, MediaFile};
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// A pending file is given up this long after its message arrived.
const GIVE_UP_AFTER_MINUTES: i64 = 60;

/// Fetches in the background (after the webhook's transaction committed), a few at a time
/// (`media.downloads_at_once`): a burst of photos waits its turn instead of opening a download
/// each.
pub fn spawn_fetch(state: &AppState, message_id: i64) {
    let state = state.clone();
    tokio::spawn(async move {
        let Ok(_turn) = state.media_downloads.clone().acquire_owned().await else {
            return;
        };
        match store::of_message(&state.db, message_id).await {
            Ok(Some(row)) if row.state == store::PENDING => fetch(&state, row).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, message_id, "cannot read the media row"),
        }
    });
}

/// Retries pending files whose last try is older than a minute (a replica stopped mid-way,
/// Meta was away); each replica takes a row only if nobody touched it meanwhile.
pub async fn sweep(state: &AppState) {
    let before = Utc::now() - Duration::seconds(60);
    let rows = match store::stale_pending(&state.db, before, 20).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "media sweep cannot read");
            return;
        }
    };
    for row in rows {
        let Ok(_turn) = state.media_downloads.clone().acquire_owned().await else {
            return;
        };
        if matches!(
            store::take(&state.db, row.id, row.updated_at, Utc::now()).await,
            Ok(true)
        ) {
            fetch(state, row).await;
        }
    }
}

pub async fn fetch(state: &AppState, row: MediaFile) {
    let now = Utc::now();
    let result = download(state, &row).await;
    let outcome = match result {
        Ok((key, size)) => match store::stored(&state.db, row.id, &key, size, now).await {
            // The contact was deleted while the file downloaded: nobody can reach it now.
            Ok(false) => forget(state, &key).await,
            other => other.map(|_| ()),
        },
        Err((error, retry)) => {
            let give_up = !retry || now - row.created_at > Duration::minutes(GIVE_UP_AFTER_MINUTES);
            tracing::warn!(message_id = row.message_id, error = %error, final_ = give_up, "inbound media not kept");
            store::failed(&state.db, row.id, &error, give_up, now).await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, message_id = row.message_id, "cannot record the media download");
    }
    // The chat shows the file (or why it is missing) now.
    if let Ok(Some(m)) = heydoc_store::messages::by_id(&state.db, row.message_id).await {
        state
            .live
            .publish(heydoc_store::live::LiveKind::Message, m.contact_id);
    }
}

/// Removes a file just kept for a media row that is gone.
async fn forget(state: &AppState, key: &str) -> heydoc_store::Result<()> {
    if let Some(media) = state.media.as_ref() {
        if let Err(e) = media.delete(key).await {
            tracing::warn!(error = %e, key, "cannot remove the file of a deleted contact");
        }
    }
    Ok(())
}

/// The stored key and size, or the error and whether trying again may help.
async fn download(state: &AppState, row: &MediaFile) -> Result<(String, i64), (String, bool)> {
    let message = heydoc_store::messages::by_id(&state.db, row.message_id)
        .await
        .map_err(|e| (e.to_string(), true))?
        .ok_or_else(|| ("the message is gone".to_string(), false))?;
    // The file belongs to the number the user wrote to (the webhook's phone number id, kept
    // as the contact's last number): its token fetches it.
    let contact = heydoc_store::contacts::by_id(&state.db, message.contact_id)
        .await
        .map_err(|e| (e.to_string(), true))?;
    let last = contact.as_ref().and_then(|c| c.last_number.clone());
    let numbers = heydoc_store::numbers::all(&state.db)
        .await
        .map_err(|e| (e.to_string(), true))?;
    let number = numbers
        .iter()
        .find(|n| last.as_deref() == Some(n.phone_number_id.as_str()))
        .or_else(|| {
            numbers.iter().find(|n| {
                n.display_number == message.receiver_phone
                    || n.phone_number_id == message.receiver_phone
            })
        })
        .cloned();
    let token = state
        .token_for(number.as_ref())
        .ok_or_else(|| ("no access token to fetch media with".to_string(), false))?;
    let info = state
        .graph
        .media_info(&row.meta_media_id, &token)
        .await
        .map_err(|e| (e.message.clone(), e.class.is_retryable()))?;
    let store = state.media.as_ref().ok_or_else(|| {
        (
            "no media store is configured (see the logs at start)".to_string(),
            true,
        )
    })?;
    let mut download = state
        .graph
        .download(&info.url, &token, state.settings.media.max_bytes)
        .await
        .map_err(|e| (e.message.clone(), e.class.is_retryable()))?;
    let at = message.timestamp;
    let key = format!("{}/{}", at.format("%Y/%m"), row.message_id);
    // Streamed from Meta to the store a piece at a time, hashed on the way: the file is never
    // held whole. A file that fails half-way or does not match leaves nothing behind.
    let mut writer = store
        .writer(&key)
        .await
        .map_err(|e| (format!("cannot keep the file: {e}"), true))?;
    let mut digest = Sha256::new();
    let mut size: i64 = 0;
    loop {
        let piece = match download.next_chunk().await {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => {
                writer.abort().await;
                return Err((e.message.clone(), e.class.is_retryable()));
            }
        };
        digest.update(&piece);
        size = size.saturating_add(i64::try_from(piece.len()).unwrap_or(i64::MAX));
        if let Err(e) = writer.write(&piece).await {
            writer.abort().await;
            return Err((format!("cannot keep the file: {e}"), true));
        }
    }
    let digest = digest.finalize();
    let announced = row
        .sha256
        .clone()
        .or_else(|| Some(info.sha256.clone()).filter(|s| !s.is_empty()));
    if let Some(expected) = announced {
        if !matches_digest(&expected, &digest) {
            writer.abort().await;
            return Err((
                "the file WhatsApp served does not match the sha256 it announced; it was refused"
                    .to_string(),
                false,
            ));
        }
    }
    writer
        .finish()
        .await
        .map_err(|e| (format!("cannot keep the file: {e}"), true))?;
    Ok((key, size))
}

/// Meta writes the sha256 in base64 (webhooks) or hex.
fn matches_digest(expected: &str, digest: &[u8]) -> bool {
    let expected = expected.trim();
    expected == base64::engine::general_purpose::STANDARD.encode(digest)
        || expected.eq_ignore_ascii_case(&hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_in_either_spelling() {
        let digest = Sha256::digest(b"photo");
        assert!(matches_digest(&hex::encode(digest), &digest));
        assert!(matches_digest(
            &base64::engine::general_purpose::STANDARD.encode(digest),
            &digest
        ));
        assert!(!matches_digest("abc", &digest));
    }
}
