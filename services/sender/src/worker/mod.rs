//! The send loop, in named stages: `take` a batch of jobs (conversational lane first),
//! `prepare` it (pace, claim, read the recipients), `dispatch` each send (bounded concurrency;
//! `call::send_one` calls the Cloud API), and hand the results to the writer, which `record`s a
//! batch in one transaction and then acks it. Tracing wraps the stages: each job's span is made
//! in `take`'s caller and every stage runs inside it or as its child.

mod call;
mod content;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use heydoc_queue::{JobStream, Received};
use heydoc_store::deliveries::{self, SendResult};
use heydoc_store::messages::Message;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::pacing::Pacer;
use crate::trace;
use crate::{secs, SenderContext, SenderError};
use content::{recipients, Known, Recipient};

/// Results written back in one transaction, at most.
const WRITE_BATCH: usize = 1000;
/// A send woken this long after its slot takes a new one instead of bunching.
const LATE_SLOT: Duration = Duration::from_millis(20);
/// How long the writer waits to fill a batch.
const WRITE_LINGER: Duration = Duration::from_millis(5);

type Done = (SendResult, Received);

/// The number's two lanes: conversational sends (API sends, replies, confirmations) are taken
/// before campaign deliveries, whatever the campaigns' backlog on the bus.
struct Lanes {
    now: JobStream,
    campaigns: JobStream,
}

pub async fn run(ctx: SenderContext, shutdown: CancellationToken) -> Result<(), SenderError> {
    let pacer = Arc::new(Pacer::new(ctx.settings.mps));
    let mut lanes = Lanes {
        now: ctx
            .bus
            .consume(
                &heydoc_queue::conversation_route(&ctx.route),
                ctx.settings.prefetch,
            )
            .await?,
        campaigns: ctx.bus.consume(&ctx.route, ctx.settings.prefetch).await?,
    };
    let (done_tx, done_rx) = mpsc::channel::<Done>(WRITE_BATCH * 4);
    let writer = tokio::spawn(writer::write_results(ctx.db.clone(), done_rx));
    let concurrency = ctx.settings.concurrency.max(1);
    // A paced batch reserves a slot per send (a tenth of a second of the number's rate, so one
    // claim serves many sends) and each send waits for its own slot: sends stay evenly spaced,
    // never a burst. The permits cover the calls in flight and the batch waiting for its slots.
    let batch_max = match ctx.settings.mps {
        0 => 256,
        mps => (mps as usize / 10).clamp(1, 256),
    };
    let permits = Arc::new(Semaphore::new(concurrency + batch_max));
    // Pair budgets of recipients not messaged for a while are forgotten this often, so memory
    // holds at most this long of a campaign's recipients.
    let mut prune = tokio::time::interval(Duration::from_secs(10));
    tracing::info!(route = %ctx.route, mps = ctx.settings.mps, concurrency, "sender started");

    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            next = lanes.now.recv() => match next {
                Some(r) => r,
                None => break,
            },
            next = lanes.campaigns.recv() => match next {
                Some(r) => r,
                None => break,
            },
            _ = prune.tick() => { pacer.prune(); continue }
        };
        let valid = take(&mut lanes, first, batch_max).await;
        if valid.is_empty() {
            continue;
        }
        // One trace per send: each job's span continues the trace its headers carry.
        let spans: Vec<tracing::Span> = valid
            .iter()
            .map(|r| trace::delivery_span(&ctx.route, r))
            .collect();
        let ids: Vec<i64> = valid
            .iter()
            .filter_map(|r| r.job.as_ref().ok().map(|j| j.delivery_id))
            .collect();
        // Stored with the rows, the spans' contexts make the status webhooks their children.
        let traces = trace::contexts(&valid, &spans);
        let Some(batch) = prepare(&ctx, &pacer, &ids, &traces, &spans).await else {
            for r in valid {
                r.requeue().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        dispatch(&ctx, &pacer, &permits, &done_tx, batch, valid, spans).await;
    }

    // Stop taking jobs (unsettled ones go back to the bus), let in-flight sends finish.
    drop(lanes);
    let grace = secs(ctx.settings.shutdown_grace_secs);
    let all = u32::try_from(concurrency + batch_max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown grace period over with sends in flight; they will be reconciled as unknown"
        );
    }
    drop(done_tx);
    let _ = writer.await;
    tracing::info!("sender stopped");
    Ok(())
}

/// Take: `first` and whatever else is ready (conversational lane first), up to `max`; an
/// undecodable job goes to the dead-letter queue.
async fn take(lanes: &mut Lanes, first: Received, max: usize) -> Vec<Received> {
    let mut batch = vec![first];
    while batch.len() < max {
        match lanes.now.try_recv().or_else(|_| lanes.campaigns.try_recv()) {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
    let mut valid = Vec::with_capacity(batch.len());
    for r in batch {
        match &r.job {
            Ok(_) => valid.push(r),
            Err(e) => {
                tracing::error!(error = %e, "undecodable job sent to the dead-letter queue");
                r.reject().await;
            }
        }
    }
    valid
}

/// A batch ready to go: the pacing slots, the claimed rows, and what is known of their
/// recipients.
struct Prepared {
    slots: Vec<Instant>,
    claimed: HashMap<i64, Message>,
    recipients: HashMap<i32, Recipient>,
    contacts_read: bool,
    occurrence_traces: HashMap<i64, String>,
}

/// Prepare: wait for the batch's pacing slots, claim its rows `ids` (invariant 2) with their
/// spans' `traces`, read their recipients. `None` when the claim failed (the jobs go back to
/// the bus).
async fn prepare(
    ctx: &SenderContext,
    pacer: &Pacer,
    ids: &[i64],
    traces: &[(i64, String)],
    spans: &[tracing::Span],
) -> Option<Prepared> {
    let waits = trace::children(
        spans,
        |parent| tracing::info_span!(parent: parent, "pacing wait"),
    );
    let (slots, waited) = pacer.reserve(ids.len()).await;
    drop(waits);
    for _ in 0..ids.len() {
        metrics::histogram!(heydoc_telemetry::metrics::PACING_WAIT).record(waited.as_secs_f64());
    }
    let claims = trace::children(spans, |parent| trace::claim_span(parent, &ctx.db));
    let claimed = deliveries::claim(&ctx.db, ids, traces, Utc::now()).await;
    drop(claims);
    let claimed = match claimed {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim deliveries; giving the jobs back");
            return None;
        }
    };
    let (recipients, contacts_read) = recipients(ctx, &claimed).await;
    let occurrence_traces = trace::occurrence_contexts(&ctx.db, &claimed).await;
    Some(Prepared {
        slots,
        claimed: claimed.into_iter().map(|m| (m.id, m)).collect(),
        recipients,
        contacts_read,
        occurrence_traces,
    })
}

/// Dispatch: each claimed send waits for its slot and calls the Cloud API in a task of its own
/// (inside its job's span); its result goes to the writer. A job whose row was not claimed is a
/// duplicate wake-up: acked.
async fn dispatch(
    ctx: &SenderContext,
    pacer: &Arc<Pacer>,
    permits: &Arc<Semaphore>,
    done: &mpsc::Sender<Done>,
    mut batch: Prepared,
    valid: Vec<Received>,
    spans: Vec<tracing::Span>,
) {
    let mut slots = batch.slots.into_iter();
    for (r, span) in valid.into_iter().zip(spans) {
        let slot = slots.next();
        let id = r.job.as_ref().map(|j| j.delivery_id).unwrap_or_default();
        let Some(row) = batch.claimed.remove(&id) else {
            // Already claimed or finished elsewhere: a duplicate wake-up.
            span.record("heydoc.duplicate", true);
            r.ack().await;
            continue;
        };
        // A campaign delivery starts its own trace, linked to its occurrence's.
        if let Some(occurrence) = row.occurrence_id {
            heydoc_telemetry::propagation::link(
                &span,
                batch.occurrence_traces.get(&occurrence).map(String::as_str),
            );
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            // Never closed; were it, the rest of the batch goes back to the bus.
            break;
        };
        let recipient = match batch.recipients.remove(&row.contact_id) {
            Some(r) => Known::Found(r),
            None if batch.contacts_read => Known::Gone,
            None => Known::Unread,
        };
        let (ctx, pacer, done) = (ctx.clone(), pacer.clone(), done.clone());
        tokio::spawn(
            async move {
                if let Some(at) = slot {
                    tokio::time::sleep_until(at.into()).await;
                    // Woken late (a stalled runtime): the slot is gone, and sending now
                    // would bunch with the sends of the slots after it. Take a new one.
                    if at.elapsed() > LATE_SLOT && !pacer.paused() {
                        pacer.reserve(1).await;
                    }
                }
                let result = call::send_one(&ctx, &pacer, row, recipient).await;
                trace::record_outcome(&tracing::Span::current(), &result.outcome);
                let _ = done.send((result, r)).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}
