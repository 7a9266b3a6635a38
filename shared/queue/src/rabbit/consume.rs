//! Consuming a route: one consumer per connection, manual acks, and the settle handle each
//! received job carries (ack, requeue, reject; a dropped one is requeued).

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Acker, Connection, ConnectionProperties};
use tokio::sync::mpsc;

use crate::{decode, BusError, Received, Settle};

use super::*;

pub(super) enum ConsumeEnd {
    /// The receiving side went away: stop.
    Closed,
    /// The connection or channel broke: reconnect.
    Broken(String),
}

pub(super) async fn consume_once(
    config: &RabbitConfig,
    route: &str,
    names: &Names,
    prefetch: u16,
    tx: &mpsc::Sender<Received>,
) -> Result<ConsumeEnd, BusError> {
    let (_connection, mut consumer) = bounded("a new consuming connection", async {
        let connection = Connection::connect(&config.url, ConnectionProperties::default())
            .await
            .map_err(unavailable)?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        declare_common(&channel, config, &names.exchange, &names.dead).await?;
        declare_route(
            &channel,
            config,
            route,
            &names.queue,
            &names.exchange,
            &names.dead,
        )
        .await?;
        channel
            .basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                ShortString::from(names.queue.as_str()),
                ShortString::from(format!("heydoc-sender-{}", std::process::id())),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok((connection, consumer))
    })
    .await?;
    tracing::info!(queue = %names.queue, "consuming");
    while let Some(delivery) = consumer.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => return Ok(ConsumeEnd::Broken(e.to_string())),
        };
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .map(read_headers)
            .unwrap_or_default();
        let job = decode(&delivery.data, headers);
        let settle = RabbitSettle {
            acker: Some(delivery.acker.clone()),
        };
        if tx
            .send(Received::new(job, delivery.redelivered, Box::new(settle)))
            .await
            .is_err()
        {
            return Ok(ConsumeEnd::Closed);
        }
    }
    Ok(ConsumeEnd::Broken("the consumer stream ended".into()))
}

pub(super) struct RabbitSettle {
    acker: Option<Acker>,
}

#[async_trait::async_trait]
impl Settle for RabbitSettle {
    async fn ack(mut self: Box<Self>) {
        if let Some(a) = self.acker.take() {
            if let Err(e) = a.ack(BasicAckOptions::default()).await {
                tracing::debug!(error = %e, "ack lost (the channel was replaced); the claim absorbs the redelivery");
            }
        }
    }

    async fn requeue(mut self: Box<Self>) {
        if let Some(a) = self.acker.take() {
            let _ = a
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
    }

    async fn reject(mut self: Box<Self>) {
        if let Some(a) = self.acker.take() {
            // Not requeued: RabbitMQ dead-letters it.
            let _ = a
                .nack(BasicNackOptions {
                    requeue: false,
                    ..Default::default()
                })
                .await;
        }
    }
}

impl Drop for RabbitSettle {
    fn drop(&mut self) {
        if let Some(a) = self.acker.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = a
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await;
                });
            }
        }
    }
}
