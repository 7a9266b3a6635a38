//! The send loop, in named stages: `take` a batch of jobs (conversational lane first),
//! `prepare` it (the rows that may go now, their recipients, the pacing slots for those
//! alone), `dispatch` each send (bounded concurrency; each claims its own row through the
//! `claimer` just before `call::send_one` calls the Cloud API), and hand the results to the
//! writer, which `record`s a batch in one transaction and then acks it. Tracing wraps the
//! stages: each job's span is made in `take`'s caller and every stage runs inside it or as its
//! child.

mod call;
mod claimer;
mod content;
mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
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
use claimer::{Claimed, Claimer};
use content::{recipients, Known, Recipient};

/// Results written back in one transaction, at most.
const WRITE_BATCH: usize = 1000;
/// A send woken this long after its slot takes a new one instead of bunching.
const LATE_SLOT: Duration = Duration::from_millis(20);
/// How long the writer waits to fill a batch.
const WRITE_LINGER: Duration = Duration::from_millis(5);
/// A number paused for longer than this hands a batch back to the database (the rows wait as
/// retries due when it may send again) instead of holding the jobs.
const HOLD_AFTER: chrono::Duration = chrono::Duration::seconds(1);

type Done = (SendResult, Received);

/// The number's two lanes: conversational sends (API sends, replies, confirmations) are taken
/// before campaign deliveries, whatever the campaigns' backlog on the bus.
struct Lanes {
    now: JobStream,
    campaigns: JobStream,
}

/// Deliveries this sender has taken and not finished: a second job for one of them (the
/// reconciler republished it while it waited for its slot) is acked at once, spending no slot.
#[derive(Clone, Default)]
struct InHand(Arc<Mutex<HashSet<i64>>>);

impl InHand {
    fn take(&self, id: i64) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id)
    }

    fn done(&self, id: i64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

/// What every send task shares.
#[derive(Clone)]
struct Shared {
    ctx: SenderContext,
    pacer: Arc<Pacer>,
    claimer: Claimer,
    in_hand: InHand,
    done: mpsc::Sender<Done>,
}

pub async fn run(
    ctx: SenderContext,
    pacer: Arc<Pacer>,
    shutdown: CancellationToken,
) -> Result<(), SenderError> {
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
    // A paced batch reserves a slot per send (a tenth of a second of the number's rate) and
    // each send waits for its own slot: sends stay evenly spaced, never a burst. The permits
    // cover the calls in flight and the batch waiting for its slots.
    let batch_max = match ctx.settings.mps {
        0 => 256,
        mps => (mps as usize / 10).clamp(1, 256),
    };
    let permits = Arc::new(Semaphore::new(concurrency + batch_max));
    let shared = Shared {
        claimer: Claimer::spawn(ctx.db.clone()),
        ctx: ctx.clone(),
        pacer: pacer.clone(),
        in_hand: InHand::default(),
        done: done_tx,
    };
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
        let ids: Vec<i64> = valid.iter().filter_map(delivery_id).collect();
        // The number cannot send for a while: the rows wait in the database, not the jobs in
        // this process (a restart or another replica finds them there).
        if let Some(until) = pacer
            .paused_until()
            .filter(|u| *u - Utc::now() > HOLD_AFTER)
        {
            hold_jobs(&ctx, valid, &ids, until, &held_reason(&pacer)).await;
            continue;
        }
        let Some(batch) = prepare(&shared, &ids, &spans).await else {
            for r in valid {
                r.requeue().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        dispatch(&shared, &permits, batch, valid, spans).await;
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
    drop(shared);
    let _ = writer.await;
    tracing::info!("sender stopped");
    Ok(())
}

fn delivery_id(r: &Received) -> Option<i64> {
    r.job.as_ref().ok().map(|j| j.delivery_id)
}

/// Why the number's deliveries wait, for their rows.
fn held_reason(pacer: &Pacer) -> String {
    pacer.circuit().map_or_else(
        || "the business number is paused".to_string(),
        |why| format!("the business number cannot send: {why}"),
    )
}

/// Rows whose jobs were taken but must wait until `until` become retries due then (no attempt
/// spent) and their jobs are acked; if the database cannot say so, the jobs go back to the bus.
async fn hold_jobs(
    ctx: &SenderContext,
    jobs: Vec<Received>,
    ids: &[i64],
    until: chrono::DateTime<Utc>,
    reason: &str,
) {
    match deliveries::hold(&ctx.db, ids, until, None, reason, Utc::now()).await {
        Ok(_) => {
            for r in jobs {
                r.ack().await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot hold deliveries; giving the jobs back");
            for r in jobs {
                r.requeue().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
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

/// A batch ready to go: the rows that may be sent now, their pacing slots, and what is known
/// of their recipients.
struct Prepared {
    slots: Vec<Instant>,
    sendable: HashMap<i64, Message>,
    recipients: HashMap<i32, Recipient>,
    contacts_read: bool,
    occurrence_traces: HashMap<i64, String>,
}

/// Prepare: read which of the rows `ids` may go now (the others go back to the outbox or are
/// duplicates, and take no pacing slot), read their recipients, reserve a slot each. `None`
/// when the database cannot be read (the jobs go back to the bus).
async fn prepare(shared: &Shared, ids: &[i64], spans: &[tracing::Span]) -> Option<Prepared> {
    let ctx = &shared.ctx;
    let reads = trace::children(spans, |parent| trace::claim_span(parent, &ctx.db));
    let rows = deliveries::sendable(&ctx.db, ids, Utc::now()).await;
    drop(reads);
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the deliveries to send; giving the jobs back");
            return None;
        }
    };
    // A row this sender already holds (its first job waits for a slot) is a duplicate.
    let rows: Vec<Message> = rows
        .into_iter()
        .filter(|m| shared.in_hand.take(m.id))
        .collect();
    let (recipients, contacts_read) = recipients(ctx, &rows).await;
    let occurrence_traces = trace::occurrence_contexts(&ctx.db, &rows).await;
    let waits = trace::children(
        spans,
        |parent| tracing::info_span!(parent: parent, "pacing wait"),
    );
    let (slots, waited) = if rows.is_empty() {
        (Vec::new(), Duration::ZERO)
    } else {
        shared.pacer.reserve(rows.len()).await
    };
    drop(waits);
    for _ in 0..rows.len() {
        metrics::histogram!(heydoc_telemetry::metrics::PACING_WAIT).record(waited.as_secs_f64());
    }
    Some(Prepared {
        slots,
        sendable: rows.into_iter().map(|m| (m.id, m)).collect(),
        recipients,
        contacts_read,
        occurrence_traces,
    })
}

/// Dispatch: each sendable row waits for its slot and is sent in a task of its own (inside its
/// job's span); its result goes to the writer. A job whose row may not go is a duplicate or
/// must wait: acked (its row is back in the outbox, or claimed elsewhere).
async fn dispatch(
    shared: &Shared,
    permits: &Arc<Semaphore>,
    mut batch: Prepared,
    valid: Vec<Received>,
    spans: Vec<tracing::Span>,
) {
    let mut slots = batch.slots.into_iter();
    for (r, span) in valid.into_iter().zip(spans) {
        let id = delivery_id(&r).unwrap_or_default();
        let Some(row) = batch.sendable.remove(&id) else {
            span.record("heydoc.duplicate", true);
            r.ack().await;
            continue;
        };
        let slot = slots.next();
        // A campaign delivery starts its own trace, linked to its occurrence's.
        if let Some(occurrence) = row.occurrence_id {
            heydoc_telemetry::propagation::link(
                &span,
                batch.occurrence_traces.get(&occurrence).map(String::as_str),
            );
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            // Never closed; were it, the job goes back to the bus.
            shared.in_hand.done(id);
            r.requeue().await;
            continue;
        };
        let recipient = match batch.recipients.remove(&row.contact_id) {
            Some(r) => Known::Found(r),
            None if batch.contacts_read => Known::Gone,
            None => Known::Unread,
        };
        let shared = shared.clone();
        tokio::spawn(
            async move {
                send(&shared, slot, row, recipient, r).await;
                shared.in_hand.done(id);
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// One send, in its job's span: its slot, the number's and the recipient's pace, its claim,
/// the call, its result to the writer.
async fn send(
    shared: &Shared,
    slot: Option<Instant>,
    mut row: Message,
    recipient: Known,
    job: Received,
) {
    let pacer = &shared.pacer;
    if let Some(at) = slot {
        tokio::time::sleep_until(at.into()).await;
        // Woken late (a stalled runtime): the slot is gone, and sending now would bunch with
        // the sends of the slots after it. Take a new one.
        if at.elapsed() > LATE_SLOT && !pacer.paused() {
            pacer.reserve(1).await;
        }
    }
    // The number stopped after this send's slot was reserved (its circuit opened): the row
    // waits with the rest, spending no attempt.
    if let Some(until) = pacer.paused_until() {
        hold_jobs(
            &shared.ctx,
            vec![job],
            &[row.id],
            until,
            &held_reason(pacer),
        )
        .await;
        return;
    }
    if let Some(wait) = pacer.pair_wait(&row.receiver_phone) {
        let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let reason = "too many messages to this recipient (pair rate); paced locally";
        hold_jobs(&shared.ctx, vec![job], &[row.id], until, reason).await;
        return;
    }
    let traceparent = heydoc_telemetry::enabled()
        .then(|| heydoc_telemetry::propagation::traceparent_of(&tracing::Span::current()))
        .flatten();
    let claim = trace::claim_span(&tracing::Span::current(), &shared.ctx.db);
    let claimed = shared
        .claimer
        .claim(row.id, traceparent)
        .instrument(claim)
        .await;
    match claimed {
        Claimed::Yes { attempts } => row.attempts = attempts,
        Claimed::No => {
            // Claimed or finished elsewhere, or held meanwhile: nothing to send.
            tracing::Span::current().record("heydoc.duplicate", true);
            if let Err(e) = deliveries::return_unclaimed(&shared.ctx.db, &[row.id]).await {
                tracing::debug!(error = %e, "cannot hand an unclaimed row back; the reconciler will");
            }
            job.ack().await;
            return;
        }
        // The claimer undoes it and hands the row back to the outbox.
        Claimed::Failed => {
            job.ack().await;
            return;
        }
    }
    let result = call::send_one(&shared.ctx, pacer, row, recipient).await;
    trace::record_outcome(&tracing::Span::current(), &result.outcome);
    let _ = shared.done.send((result, job)).await;
}
