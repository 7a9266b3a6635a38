//! The job bus: how the database wakes the sender. A job names one delivery (an outgoing
//! message row) and carries the W3C trace context in its headers, nothing else the row holds.
//!
//! Two backends behind [`JobBus`]: RabbitMQ ([`rabbit::RabbitBus`], when `AMQP_URL` is set) and
//! in-process ([`memory::MemoryBus`], the embedded default). Both are at-least-once: a job is
//! delivered again until it is acked, and one that cannot be decoded, or that keeps coming
//! back, ends in the dead-letter queue.

pub mod memory;
pub mod rabbit;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The conversational lane of a number's route (API sends, replies from the chat, opt-out
/// confirmations): its own queue, which the sender drains before the campaign lane, so a
/// person's message never waits behind a campaign's window.
pub fn conversation_route(route: &str) -> String {
    format!("{route}.now")
}

/// The schema version of the job body; consumers refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// One unit of work: send delivery `delivery_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub delivery_id: i64,
    /// W3C trace context (`traceparent`, `tracestate`) and anything else tracing needs.
    pub headers: BTreeMap<String, String>,
}

impl Job {
    pub fn new(delivery_id: i64) -> Self {
        Self {
            delivery_id,
            headers: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Body {
    v: u32,
    delivery_id: i64,
}

/// The bytes on the wire: `{"v":1,"delivery_id":42}`.
pub fn encode(job: &Job) -> Vec<u8> {
    // Serialising two integers cannot fail.
    serde_json::to_vec(&Body {
        v: SCHEMA_VERSION,
        delivery_id: job.delivery_id,
    })
    .unwrap_or_default()
}

pub fn decode(bytes: &[u8], headers: BTreeMap<String, String>) -> Result<Job, BusError> {
    let body: Body = serde_json::from_slice(bytes).map_err(|e| BusError::Decode(e.to_string()))?;
    if body.v != SCHEMA_VERSION {
        return Err(BusError::Decode(format!(
            "job schema version {} is not {SCHEMA_VERSION}",
            body.v
        )));
    }
    Ok(Job {
        delivery_id: body.delivery_id,
        headers,
    })
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("the job bus is not connected: {0}")]
    Unavailable(String),
    #[error("the broker refused the job: {0}")]
    Refused(String),
    #[error("undecodable job: {0}")]
    Decode(String),
}

/// How a received job is settled.
#[async_trait::async_trait]
pub trait Settle: Send {
    /// Done with it: never deliver it again.
    async fn ack(self: Box<Self>);
    /// Give it back to be delivered again.
    async fn requeue(self: Box<Self>);
    /// Poison: move it to the dead-letter queue.
    async fn reject(self: Box<Self>);
}

/// A job taken from the bus, to be settled exactly once. Dropping it unsettled gives it back.
pub struct Received {
    pub job: Result<Job, BusError>,
    /// True when the broker delivered it before (another consumer died holding it).
    pub redelivered: bool,
    settle: Box<dyn Settle>,
}

impl Received {
    pub fn new(job: Result<Job, BusError>, redelivered: bool, settle: Box<dyn Settle>) -> Self {
        Self {
            job,
            redelivered,
            settle,
        }
    }

    pub async fn ack(self) {
        self.settle.ack().await
    }

    pub async fn requeue(self) {
        self.settle.requeue().await
    }

    pub async fn reject(self) {
        self.settle.reject().await
    }
}

/// The jobs of one route, as they arrive.
pub type JobStream = mpsc::Receiver<Received>;

/// One trait, two backends.
#[async_trait::async_trait]
pub trait JobBus: Send + Sync {
    /// Publishes `jobs` to `route` (a business phone number id) and returns once the broker has
    /// confirmed every one of them; an error means some may not have been taken.
    async fn publish(&self, route: &str, jobs: &[Job]) -> Result<(), BusError>;

    /// Starts consuming `route`, at most `prefetch` unsettled jobs at a time. Reconnects by
    /// itself; the stream ends only when the bus shuts down.
    async fn consume(&self, route: &str, prefetch: u16) -> Result<JobStream, BusError>;

    /// Connected and able to publish.
    fn is_ready(&self) -> bool;

    /// Jobs of `route` waiting to be delivered to a consumer (not those a consumer holds);
    /// `None` when the bus cannot tell.
    async fn ready(&self, route: &str) -> Result<Option<u64>, BusError>;

    /// Whether jobs outlive this process (a broker), or start empty with it (in-process).
    fn durable(&self) -> bool;

    /// Jobs in the dead-letter queue (for health and tests).
    async fn dead_letters(&self) -> Result<u64, BusError>;
}

/// Publishes a number's jobs, the conversational lane first, and records how long the broker
/// took to confirm them (`heydoc_queue_publish_seconds`) and how many it took. The one publish
/// path: the gateway's wake-up after a commit and the outbox relay both go through it.
pub async fn publish_lanes(
    bus: &dyn JobBus,
    route: &str,
    now: &[Job],
    campaigns: &[Job],
) -> Result<(), BusError> {
    let started = std::time::Instant::now();
    if !now.is_empty() {
        bus.publish(&conversation_route(route), now).await?;
    }
    if !campaigns.is_empty() {
        bus.publish(route, campaigns).await?;
    }
    metrics::histogram!(heydoc_telemetry::metrics::QUEUE_PUBLISH)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(heydoc_telemetry::metrics::QUEUE_PUBLISHED)
        .increment((now.len() + campaigns.len()) as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_and_foreign_bytes_do_not() {
        let job = Job::new(42);
        assert_eq!(decode(&encode(&job), BTreeMap::new()).unwrap(), job);
        assert!(decode(b"not json", BTreeMap::new()).is_err());
        assert!(decode(br#"{"v":2,"delivery_id":1}"#, BTreeMap::new()).is_err());
    }
}
