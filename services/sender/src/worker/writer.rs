//! The writer: results recorded a batch per transaction, then their jobs acked.

use std::time::Duration;

use chrono::Utc;
use heydoc_store::deliveries::{self, SendResult};
use heydoc_store::Db;
use tokio::sync::mpsc;

use super::{Done, WRITE_BATCH, WRITE_LINGER};

/// Records results in batches, then acks their jobs: a job is only acked once its result is in
/// the database.
pub(super) async fn write_results(db: Db, mut rx: mpsc::Receiver<Done>) {
    let live = heydoc_store::live::LivePublisher::spawn(db.clone());
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + WRITE_LINGER;
        while batch.len() < WRITE_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(d)) => batch.push(d),
                _ => break,
            }
        }
        let results: Vec<SendResult> = batch.iter().map(|(r, _)| r.clone()).collect();
        // Results are never dropped: while the database is away they wait here (and the send
        // loop, once this channel is full, waits too), and their jobs stay unacked.
        let mut attempt = 0u32;
        loop {
            match deliveries::record(&db, &results, Utc::now()).await {
                Ok(()) => {
                    live.publish_all(
                        heydoc_store::live::LiveKind::Status,
                        results.iter().map(|r| r.contact_id),
                    );
                    if attempt > 0 {
                        tracing::info!(
                            count = results.len(),
                            attempt,
                            "send results written after the database came back"
                        );
                    }
                    break;
                }
                // The database answers, so this batch is what it refuses (a row it can never
                // take): each result is written alone, and one that still cannot be is set
                // aside with the reason, so one bad row never holds up a number's results.
                Err(e) if heydoc_store::ping(&db).await.is_ok() => {
                    tracing::warn!(error = %e, count = results.len(), "the database refuses a batch of send results; writing them one at a time");
                    if let Ok(aside) = deliveries::record_apart(&db, &results, Utc::now()).await {
                        for (id, why) in aside {
                            tracing::error!(delivery_id = id, reason = %why, "a send result was set aside");
                        }
                        live.publish_all(
                            heydoc_store::live::LiveKind::Status,
                            results.iter().map(|r| r.contact_id),
                        );
                        break;
                    }
                    attempt += 1;
                }
                Err(e) => {
                    if attempt < 5 {
                        tracing::warn!(error = %e, attempt, "writing send results failed; retrying");
                    } else {
                        tracing::error!(error = %e, attempt, count = results.len(), "the database is still away; keeping the send results until it returns");
                    }
                    tokio::time::sleep(Duration::from_millis((200u64 << attempt.min(4)).min(3000)))
                        .await;
                    attempt += 1;
                }
            }
        }
        for (_, received) in batch {
            received.ack().await;
        }
    }
}
