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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use heydoc_queue::{Job, Received, Settle};
    use heydoc_store::deliveries::{Outcome, SendResult};
    use heydoc_testkit::{Backend, TestDatabase};

    use super::*;

    struct Counted(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl Settle for Counted {
        async fn ack(self: Box<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        async fn requeue(self: Box<Self>) {}
        async fn reject(self: Box<Self>) {}
    }

    /// A batch holding one result the database can never take (a message id longer than its
    /// column) does not wedge the number: the rest is written, the bad one set aside, every
    /// job acked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_result_the_database_refuses_does_not_hold_up_the_rest() {
        let db = TestDatabase::create(Backend::Postgres).await.unwrap();
        heydoc_testkit::sql::execute(
            &db.conn,
            "INSERT INTO contacts (phone, name, is_group, attributes, last_activity_at, message_count, unread_count, created_at, updated_at)
             VALUES ('15550000001', '', false, '{}', now(), 0, 0, now(), now());
             INSERT INTO messages (contact_id, direction, sender_phone, receiver_phone, message_type, message_text, timestamp,
                                   is_read, status, attempts, origin, updated_at)
             SELECT 1, 'outgoing', 'b', '15550000001', 'text', 'hi', now(), true, 'sending', 1, 'api', now()
             FROM generate_series(1, 20);",
        )
        .await;
        let (tx, rx) = mpsc::channel::<Done>(100);
        let writer = tokio::spawn(write_results(db.conn.clone(), rx));
        let acks = Arc::new(AtomicUsize::new(0));
        for id in 1..=20i64 {
            let wamid = if id == 7 {
                format!("wamid.{}", "X".repeat(300))
            } else {
                format!("wamid.{id}")
            };
            let result = SendResult {
                id,
                contact_id: 1,
                outcome: Outcome::Sent { wamid },
                suppress: None,
                pause_campaign: None,
            };
            let job = Received::new(Ok(Job::new(id)), false, Box::new(Counted(acks.clone())));
            tx.send((result, job)).await.unwrap();
        }
        let started = std::time::Instant::now();
        while acks.load(Ordering::SeqCst) < 20 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the writer is stuck on the batch ({} acked)",
                acks.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            heydoc_testkit::sql::scalar(
                &db.conn,
                "SELECT COUNT(*) FROM messages WHERE status = 'sent'"
            )
            .await,
            19
        );
        assert_eq!(
            heydoc_testkit::sql::scalar(
                &db.conn,
                "SELECT COUNT(*) FROM messages WHERE id = 7 AND status = 'unknown'"
            )
            .await,
            1
        );
        drop(tx);
        writer.await.unwrap();
    }
}
