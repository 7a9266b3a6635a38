//! RabbitMQ through lapin. Topology: a durable direct exchange `{prefix}.sends`; per route (a
//! business phone number id) a quorum queue `{prefix}.sends.{route}` with single-active-consumer
//! (one replica paces a number; the others stand by), an explicit delivery limit and a
//! dead-letter exchange `{prefix}.sends.dead` feeding the queue of the same name.
//!
//! Publishing uses its own connection, publisher confirms on every message, `mandatory` (an
//! unroutable job is an error, not a silent drop) and waits for the whole window of confirms.
//! Consuming uses another connection with manual acks and a prefetch. Both reconnect with
//! back-off; after a reconnect old delivery tags are void, and the database claim absorbs the
//! redeliveries.
mod consume;
mod topology;

use consume::{consume_once, ConsumeEnd};
use topology::{declare_common, declare_route, headers_table, read_headers};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::{mpsc, Mutex};

use crate::{encode, BusError, Job, JobBus, JobStream};

#[derive(Debug, Clone)]
pub struct RabbitConfig {
    pub url: String,
    /// Prefix of every exchange and queue name (tests use a unique one).
    pub prefix: String,
    /// Deliveries of one job before RabbitMQ dead-letters it.
    pub delivery_limit: u32,
    /// RabbitMQ deletes a queue unused (no consumer, no redeclare) this long, with its messages
    /// (`x-expires`). 0, the default, keeps queues forever; tests and benchmarks set it so their
    /// uniquely named queues do not pile up on a shared broker.
    pub queue_expiry_secs: u64,
}

struct Publisher {
    _connection: Connection,
    channel: Channel,
    routes: HashSet<String>,
}

pub struct RabbitBus {
    config: RabbitConfig,
    publisher: Mutex<Option<Publisher>>,
    ready: Arc<AtomicBool>,
}

impl RabbitBus {
    /// Connects the publisher (or keeps trying in the background when the broker is down).
    pub async fn connect(config: RabbitConfig) -> Arc<Self> {
        let bus = Arc::new(Self {
            config,
            publisher: Mutex::new(None),
            ready: Arc::new(AtomicBool::new(false)),
        });
        if let Err(e) = bus.ensure_publisher().await {
            tracing::warn!(error = %e, "RabbitMQ not reachable yet; will keep trying");
        }
        let keeper = Arc::downgrade(&bus);
        tokio::spawn(async move {
            let mut backoff = Backoff::default();
            loop {
                tokio::time::sleep(backoff.next()).await;
                let Some(bus) = keeper.upgrade() else { return };
                if bus.is_ready() {
                    backoff.reset();
                    continue;
                }
                match bus.ensure_publisher().await {
                    Ok(()) => {
                        tracing::info!("RabbitMQ publisher connected");
                        backoff.reset();
                    }
                    Err(e) => tracing::debug!(error = %e, "RabbitMQ publisher still down"),
                }
            }
        });
        bus
    }

    fn exchange(&self) -> String {
        format!("{}.sends", self.config.prefix)
    }

    fn dead_name(&self) -> String {
        format!("{}.sends.dead", self.config.prefix)
    }

    pub fn queue_name(&self, route: &str) -> String {
        format!("{}.sends.{route}", self.config.prefix)
    }

    async fn ensure_publisher(&self) -> Result<(), BusError> {
        let mut guard = self.publisher.lock().await;
        if guard
            .as_ref()
            .is_some_and(|p| p.channel.status().connected())
        {
            return Ok(());
        }
        *guard = None;
        self.ready.store(false, Ordering::SeqCst);
        let connection = Connection::connect(&self.config.url, ConnectionProperties::default())
            .await
            .map_err(unavailable)?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        declare_common(&channel, &self.config, &self.exchange(), &self.dead_name()).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        *guard = Some(Publisher {
            _connection: connection,
            channel,
            routes: HashSet::new(),
        });
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Declares `route`'s queue (idempotent) on the publishing channel; returns its ready count.
    async fn declare(&self, publisher: &mut Publisher, route: &str) -> Result<u32, BusError> {
        let ready = declare_route(
            &publisher.channel,
            &self.config,
            route,
            &self.queue_name(route),
            &self.exchange(),
            &self.dead_name(),
        )
        .await?;
        publisher.routes.insert(route.to_string());
        Ok(ready)
    }

    /// Publishes raw bytes to `route` (operators and tests use it to replay or to poison).
    pub async fn publish_bytes(&self, route: &str, bytes: &[u8]) -> Result<(), BusError> {
        self.ensure_publisher().await?;
        let mut guard = self.publisher.lock().await;
        let publisher = guard
            .as_mut()
            .ok_or_else(|| BusError::Unavailable("publisher lost".into()))?;
        if !publisher.routes.contains(route) {
            self.declare(publisher, route).await?;
        }
        let confirm = publisher
            .channel
            .basic_publish(
                ShortString::from(self.exchange()),
                ShortString::from(route),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                bytes,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .map_err(unavailable)?;
        confirm.await.map_err(unavailable)?;
        Ok(())
    }

    async fn publish_inner(&self, route: &str, jobs: &[Job]) -> Result<(), BusError> {
        self.ensure_publisher().await?;
        let mut guard = self.publisher.lock().await;
        let publisher = guard
            .as_mut()
            .ok_or_else(|| BusError::Unavailable("publisher lost".into()))?;
        if !publisher.routes.contains(route) {
            self.declare(publisher, route).await?;
        }
        // Publish the whole window, then wait for every confirm.
        let mut confirms = Vec::with_capacity(jobs.len());
        for job in jobs {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(ShortString::from("application/json"))
                .with_headers(headers_table(&job.headers));
            let confirm = publisher
                .channel
                .basic_publish(
                    ShortString::from(self.exchange()),
                    ShortString::from(route),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &encode(job),
                    properties,
                )
                .await
                .map_err(unavailable)?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            match confirm.await.map_err(unavailable)? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(BusError::Refused(format!(
                        "unroutable: {}",
                        returned.reply_text
                    )))
                }
                Confirmation::Nack(_) => {
                    return Err(BusError::Refused("the broker nacked a job".into()))
                }
                Confirmation::NotRequested => {
                    return Err(BusError::Refused("publisher confirms are off".into()))
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobBus for RabbitBus {
    async fn publish(&self, route: &str, jobs: &[Job]) -> Result<(), BusError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let result = self.publish_inner(route, jobs).await;
        if let Err(BusError::Unavailable(_)) = &result {
            // Drop the broken channel; the next publish (or the keeper) reconnects.
            *self.publisher.lock().await = None;
            self.ready.store(false, Ordering::SeqCst);
        }
        result
    }

    async fn consume(&self, route: &str, prefetch: u16) -> Result<JobStream, BusError> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let config = self.config.clone();
        let names = (self.queue_name(route), self.exchange(), self.dead_name());
        let route = route.to_string();
        tokio::spawn(async move {
            let mut backoff = Backoff::default();
            loop {
                match consume_once(&config, &route, &names, prefetch, &tx).await {
                    Ok(ConsumeEnd::Closed) => return,
                    Ok(ConsumeEnd::Broken(why)) => {
                        tracing::warn!(%why, "RabbitMQ consumer lost; reconnecting")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "RabbitMQ consumer cannot connect; retrying")
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff.next()).await;
            }
        });
        Ok(rx)
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    async fn ready(&self, route: &str) -> Result<Option<u64>, BusError> {
        self.ensure_publisher().await?;
        let mut guard = self.publisher.lock().await;
        let publisher = guard
            .as_mut()
            .ok_or_else(|| BusError::Unavailable("publisher lost".into()))?;
        // Declaring again (the same arguments) is harmless and answers with the ready count.
        let ready = self.declare(publisher, route).await?;
        Ok(Some(u64::from(ready)))
    }

    fn durable(&self) -> bool {
        true
    }

    async fn dead_letters(&self) -> Result<u64, BusError> {
        self.ensure_publisher().await?;
        let guard = self.publisher.lock().await;
        let publisher = guard
            .as_ref()
            .ok_or_else(|| BusError::Unavailable("publisher lost".into()))?;
        let queue = publisher
            .channel
            .queue_declare(
                ShortString::from(self.dead_name()),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(u64::from(queue.message_count()))
    }
}

fn unavailable(e: lapin::Error) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// Exponential back-off from 200 ms to 10 s.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ms = 200u64.saturating_mul(1 << self.attempt.min(6)).min(10_000);
        self.attempt += 1;
        Duration::from_millis(ms)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}
