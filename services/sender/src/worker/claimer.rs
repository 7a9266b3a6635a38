//! The claim, one send at a time and many per statement: each send asks for its own row just
//! before its Cloud API call (so a sender that dies leaves `sending` only the calls it had
//! started), and the claimer gathers the requests that arrive together into one `UPDATE`.

use std::time::Duration;

use chrono::Utc;
use heydoc_store::deliveries::{self, ClaimRequest};
use heydoc_store::Db;
use tokio::sync::{mpsc, oneshot};

/// Requests claimed in one statement, at most.
const CLAIM_BATCH: usize = 256;
/// How long a claim whose answer was lost is undone for before the reconciler is left to it.
const RELEASE_FOR: Duration = Duration::from_secs(60);

/// What a send's claim answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claimed {
    /// The row is this send's: its attempt number, this one included.
    Yes { attempts: i32 },
    /// Claimed or finished elsewhere, or it must wait: a duplicate job.
    No,
    /// The database did not answer; the claim is being undone and the row goes back to the
    /// outbox.
    Failed,
}

type Request = (ClaimRequest, oneshot::Sender<Claimed>);

/// A handle to the number's claimer task.
#[derive(Clone)]
pub(super) struct Claimer {
    tx: mpsc::Sender<Request>,
}

impl Claimer {
    /// Starts the claimer; it ends when every handle is dropped.
    pub(super) fn spawn(db: Db) -> Self {
        let (tx, rx) = mpsc::channel::<Request>(CLAIM_BATCH * 4);
        tokio::spawn(run(db, rx));
        Self { tx }
    }

    /// Claims one row (with its send's `traceparent`).
    pub(super) async fn claim(&self, id: i64, traceparent: Option<String>) -> Claimed {
        let (answer, wait) = oneshot::channel();
        if self
            .tx
            .send((ClaimRequest { id, traceparent }, answer))
            .await
            .is_err()
        {
            return Claimed::Failed;
        }
        wait.await.unwrap_or(Claimed::Failed)
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < CLAIM_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let requests: Vec<ClaimRequest> = batch.iter().map(|(r, _)| r.clone()).collect();
        let now = Utc::now();
        match deliveries::claim(&db, &requests, now).await {
            Ok(claimed) => {
                let claimed: std::collections::HashMap<i64, i32> = claimed.into_iter().collect();
                for (request, answer) in batch {
                    let _ = answer.send(match claimed.get(&request.id) {
                        Some(&attempts) => Claimed::Yes { attempts },
                        None => Claimed::No,
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, count = batch.len(), "cannot claim deliveries; they go back to the outbox");
                let ids: Vec<i64> = requests.iter().map(|r| r.id).collect();
                for (_, answer) in batch {
                    let _ = answer.send(Claimed::Failed);
                }
                tokio::spawn(undo(db.clone(), ids, now));
            }
        }
    }
}

/// A claim that may or may not have committed (its answer was lost): rows it moved to
/// `sending` wait again with the attempt given back, and rows it did not move leave the bus's
/// count, so the relay publishes them again. Tried until it works, for a while.
async fn undo(db: Db, ids: Vec<i64>, claimed_at: chrono::DateTime<Utc>) {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(200);
    loop {
        let released = async {
            deliveries::release_claims(&db, &ids, claimed_at, Utc::now()).await?;
            deliveries::return_unclaimed(&db, &ids).await
        }
        .await;
        match released {
            Ok(()) => return,
            Err(e) if started.elapsed() > RELEASE_FOR => {
                tracing::error!(error = %e, count = ids.len(), "cannot undo a claim whose answer was lost; the reconciler marks what it moved unknown");
                return;
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}
