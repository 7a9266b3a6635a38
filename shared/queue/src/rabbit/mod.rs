//! RabbitMQ through lapin. Topology: a durable direct exchange `{prefix}.sends`; per route (a
//! business phone number id) a quorum queue `{prefix}.sends.{route}` with single-active-consumer
//! (one replica paces a number; the others stand by), an explicit delivery limit and a
//! dead-letter exchange `{prefix}.sends.dead` feeding the queue of the same name.
//!
//! Publishing uses its own connection, publisher confirms on every message, `mandatory` (an
//! unroutable job is an error, not a silent drop) and waits for the whole window of confirms.
//! Consuming uses another connection with manual acks and a prefetch. Both reconnect with
//! back-off; after a reconnect old delivery tags are void, and the database claim absorbs the
//! redeliveries. Every exchange with the broker is bounded by [`BROKER_TIMEOUT`]: lapin waits
//! for ever on a broker that accepts the connection and never answers (one starting up), and a
//! publisher stuck there would hold the relay and every publish behind its lock.
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

/// How long the broker may take to answer one exchange (connecting with its channel and
/// topology, or publishing a window and receiving its confirms) before it counts as away.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// `operation`, or `Unavailable` when the broker has not answered within [`BROKER_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    operation: impl std::future::Future<Output = Result<T, BusError>>,
) -> Result<T, BusError> {
    tokio::time::timeout(BROKER_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(BusError::Unavailable(format!(
                "the broker did not answer {what} within {} s",
                BROKER_TIMEOUT.as_secs()
            )))
        })
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
        let (connection, channel) = bounded("a new publishing connection", async {
            let connection = Connection::connect(&self.config.url, ConnectionProperties::default())
                .await
                .map_err(unavailable)?;
            let channel = connection.create_channel().await.map_err(unavailable)?;
            declare_common(&channel, &self.config, &self.exchange(), &self.dead_name()).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(unavailable)?;
            Ok((connection, channel))
        })
        .await?;
        *guard = Some(Publisher {
            _connection: connection,
            channel,
            routes: HashSet::new(),
        });
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The publisher, locked: connected first when it is not.
    async fn publisher(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Publisher>>, BusError> {
        self.ensure_publisher().await?;
        Ok(self.publisher.lock().await)
    }

    /// `result` of an exchange with the broker; one that found the broker away (or silent)
    /// drops the publisher, and the next call, or the keeper, connects a new one.
    fn settle<T>(
        &self,
        guard: &mut Option<Publisher>,
        result: Result<T, BusError>,
    ) -> Result<T, BusError> {
        if let Err(BusError::Unavailable(_)) = &result {
            *guard = None;
            self.ready.store(false, Ordering::SeqCst);
        }
        result
    }

    /// Publishes raw bytes to `route` (operators and tests use it to replay or to poison).
    pub async fn publish_bytes(&self, route: &str, bytes: &[u8]) -> Result<(), BusError> {
        let names = self.names(route);
        let mut guard = self.publisher().await?;
        let result = bounded("a publish", async {
            let message = (bytes.to_vec(), BasicProperties::default());
            publish_confirmed(
                connected(&mut guard)?,
                &self.config,
                route,
                &names,
                std::iter::once(message),
            )
            .await
        })
        .await;
        self.settle(&mut guard, result)
    }

    /// The names of `route`'s queue, the exchange and the dead-letter queue.
    fn names(&self, route: &str) -> Names {
        Names {
            queue: self.queue_name(route),
            exchange: self.exchange(),
            dead: self.dead_name(),
        }
    }
}

/// The names one route's topology is declared with.
pub(super) struct Names {
    pub queue: String,
    pub exchange: String,
    pub dead: String,
}

/// The publisher behind `guard`, if it is still connected.
fn connected(guard: &mut Option<Publisher>) -> Result<&mut Publisher, BusError> {
    guard
        .as_mut()
        .ok_or_else(|| BusError::Unavailable("publisher lost".into()))
}

/// Declares `route`'s queue on the publishing channel unless it did already.
async fn declare_once(
    publisher: &mut Publisher,
    config: &RabbitConfig,
    route: &str,
    names: &Names,
) -> Result<(), BusError> {
    if !publisher.routes.contains(route) {
        declare(publisher, config, route, names).await?;
    }
    Ok(())
}

/// Declares `route`'s queue (idempotent) on the publishing channel; returns its ready count.
async fn declare(
    publisher: &mut Publisher,
    config: &RabbitConfig,
    route: &str,
    names: &Names,
) -> Result<u32, BusError> {
    let ready = declare_route(
        &publisher.channel,
        config,
        route,
        &names.queue,
        &names.exchange,
        &names.dead,
    )
    .await?;
    publisher.routes.insert(route.to_string());
    Ok(ready)
}

/// Publishes the whole window of jobs, then waits for every confirm.
async fn publish_window(
    publisher: &mut Publisher,
    config: &RabbitConfig,
    route: &str,
    names: &Names,
    jobs: &[Job],
) -> Result<(), BusError> {
    let messages = jobs.iter().map(|job| {
        let properties = BasicProperties::default()
            .with_content_type(ShortString::from("application/json"))
            .with_headers(headers_table(&job.headers));
        (encode(job), properties)
    });
    publish_confirmed(publisher, config, route, names, messages).await
}

/// Publishes `messages` to `route` (persistent, mandatory), then waits for every confirm: an
/// unroutable or nacked message is an error, never a silent success.
async fn publish_confirmed(
    publisher: &mut Publisher,
    config: &RabbitConfig,
    route: &str,
    names: &Names,
    messages: impl Iterator<Item = (Vec<u8>, BasicProperties)>,
) -> Result<(), BusError> {
    declare_once(publisher, config, route, names).await?;
    let mut confirms = Vec::new();
    for (body, properties) in messages {
        let confirm = publisher
            .channel
            .basic_publish(
                ShortString::from(names.exchange.as_str()),
                ShortString::from(route),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &body,
                properties.with_delivery_mode(2),
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

#[async_trait::async_trait]
impl JobBus for RabbitBus {
    async fn publish(&self, route: &str, jobs: &[Job]) -> Result<(), BusError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let names = self.names(route);
        let mut guard = self.publisher().await?;
        let result = bounded("a publish", async {
            publish_window(connected(&mut guard)?, &self.config, route, &names, jobs).await
        })
        .await;
        self.settle(&mut guard, result)
    }

    async fn consume(&self, route: &str, prefetch: u16) -> Result<JobStream, BusError> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let config = self.config.clone();
        let names = self.names(route);
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
        let names = self.names(route);
        let mut guard = self.publisher().await?;
        // Declaring again (the same arguments) is harmless and answers with the ready count.
        let result = bounded("a queue declaration", async {
            declare(connected(&mut guard)?, &self.config, route, &names).await
        })
        .await;
        Ok(Some(u64::from(self.settle(&mut guard, result)?)))
    }

    fn durable(&self) -> bool {
        true
    }

    async fn dead_letters(&self) -> Result<u64, BusError> {
        let dead = self.dead_name();
        let mut guard = self.publisher().await?;
        let result = bounded("a queue inspection", async {
            let queue = connected(&mut guard)?
                .channel
                .queue_declare(
                    ShortString::from(dead),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
            Ok(u64::from(queue.message_count()))
        })
        .await;
        self.settle(&mut guard, result)
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
