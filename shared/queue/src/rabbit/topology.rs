//! The topology: the exchange, the dead-letter queue, and a quorum queue per route; and the
//! AMQP headers jobs carry.

use std::collections::BTreeMap;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::BusError;

use super::*;

pub(super) async fn declare_common(
    channel: &Channel,
    config: &RabbitConfig,
    exchange: &str,
    dead: &str,
) -> Result<(), BusError> {
    // With an expiry, the exchanges go too once their expired queues have unbound.
    let durable = ExchangeDeclareOptions {
        durable: true,
        auto_delete: config.queue_expiry_secs > 0,
        ..Default::default()
    };
    channel
        .exchange_declare(
            ShortString::from(exchange),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    channel
        .exchange_declare(
            ShortString::from(dead),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    declare_bound(channel, dead, quorum(config), dead, "").await?;
    Ok(())
}

pub(super) async fn declare_route(
    channel: &Channel,
    config: &RabbitConfig,
    route: &str,
    queue: &str,
    exchange: &str,
    dead: &str,
) -> Result<u32, BusError> {
    let mut args = quorum(config);
    args.insert(
        ShortString::from("x-single-active-consumer"),
        AMQPValue::Boolean(true),
    );
    args.insert(
        ShortString::from("x-delivery-limit"),
        AMQPValue::LongInt(i32::try_from(config.delivery_limit).unwrap_or(20)),
    );
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(dead)),
    );
    declare_bound(channel, queue, args, exchange, route).await
}

/// The arguments every queue is declared with: a quorum queue (replicated, durable), expiring
/// when configured to.
fn quorum(config: &RabbitConfig) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    add_expiry(&mut args, config);
    args
}

/// Declares the durable queue `queue` with `args` and binds it to `exchange` by `key`; returns
/// how many messages it holds.
async fn declare_bound(
    channel: &Channel,
    queue: &str,
    args: FieldTable,
    exchange: &str,
    key: &str,
) -> Result<u32, BusError> {
    let declared = channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map_err(unavailable)?;
    channel
        .queue_bind(
            ShortString::from(queue),
            ShortString::from(exchange),
            ShortString::from(key),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(declared.message_count())
}

fn add_expiry(args: &mut FieldTable, config: &RabbitConfig) {
    if config.queue_expiry_secs > 0 {
        let ms = config.queue_expiry_secs.saturating_mul(1000);
        args.insert(
            ShortString::from("x-expires"),
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
    }
}

pub(super) fn headers_table(headers: &BTreeMap<String, String>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in headers {
        table.insert(
            ShortString::from(k.as_str()),
            AMQPValue::LongString(LongString::from(v.as_str())),
        );
    }
    table
}

pub(super) fn read_headers(table: &FieldTable) -> BTreeMap<String, String> {
    table
        .inner()
        .iter()
        .filter_map(|(k, v)| match v {
            AMQPValue::LongString(s) => Some((k.to_string(), s.to_string())),
            AMQPValue::ShortString(s) => Some((k.to_string(), s.to_string())),
            _ => None,
        })
        .collect()
}
