//! Outbound events: what happened (a message received, a status, a campaign run fanned out)
//! becomes one `event_deliveries` row per endpoint that wants it; dispatchers claim due rows,
//! oldest first and one at a time per ordering key, and record each attempt on the row.

use chrono::{DateTime, SubsecRound, Utc};
use heydoc_entity::{event_delivery, event_endpoint};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QuerySelect, Statement,
};
use serde_json::{json, Value};

use crate::Result;

pub use crate::outbound::{
    OutboundEvent, EVENT_TYPES, MESSAGE_RECEIVED, MESSAGE_STATUS, OCCURRENCE_COMPLETED,
};

pub const PENDING: &str = heydoc_domain::EventDeliveryState::Pending.as_str();
pub const DELIVERED: &str = heydoc_domain::EventDeliveryState::Delivered.as_str();
/// Given up on: the endpoint refused this event again and again (a 4xx).
pub const FAILED: &str = heydoc_domain::EventDeliveryState::Failed.as_str();

/// An event ready to be written: its type, ordering key and `data`.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: &'static str,
    pub ordering_key: String,
    pub data: Value,
}

/// Records the event for every endpoint that wants it (inside the caller's transaction when it
/// has one). Returns how many deliveries were created.
pub async fn emit(
    db: &impl ConnectionTrait,
    event: OutboundEvent,
    now: DateTime<Utc>,
) -> Result<usize> {
    emit_many(db, vec![Event::from(event)], now).await
}

impl From<OutboundEvent> for Event {
    fn from(e: OutboundEvent) -> Self {
        Event {
            event_type: e.event_type(),
            ordering_key: e.ordering_key(),
            data: e.data(),
        }
    }
}

/// Every endpoint, with the event types it wants. A disabled one collects its events too: they
/// go out when it is enabled again.
async fn listeners(db: &impl ConnectionTrait) -> Result<Vec<event_endpoint::Model>> {
    Ok(event_endpoint::Entity::find().all(db).await?)
}

/// Records several events, in order, with one query for the endpoints and one insert. Call it
/// inside the transaction that makes the change the events announce: on PostgreSQL it takes a
/// transaction-scoped lock per ordering key first, so two writers for one contact commit their
/// events in id order (the dispatcher sends them in id order).
pub async fn emit_many(
    db: &impl ConnectionTrait,
    events: Vec<Event>,
    now: DateTime<Utc>,
) -> Result<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    let endpoints = listeners(db).await?;
    emit_to(db, &endpoints, events, now).await
}

/// `emit_many` with the endpoints already read.
async fn emit_to(
    db: &impl ConnectionTrait,
    endpoints: &[event_endpoint::Model],
    events: Vec<Event>,
    now: DateTime<Utc>,
) -> Result<usize> {
    if !events
        .iter()
        .any(|e| endpoints.iter().any(|p| wants(&p.events, e.event_type)))
    {
        return Ok(0);
    }
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let keys: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.ordering_key.as_str()).collect();
        for key in keys {
            db.execute(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                [key.into()],
            ))
            .await?;
        }
    }
    let mut rows = Vec::new();
    for event in &events {
        for endpoint in endpoints
            .iter()
            .filter(|e| wants(&e.events, event.event_type))
        {
            // Each endpoint's copy has its own id; a retry repeats it, so receivers can
            // recognise a delivery they already have.
            let payload = json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "type": event.event_type,
                "created_at": now.to_rfc3339(),
                "data": event.data,
            });
            rows.push(event_delivery::ActiveModel {
                endpoint_id: Set(endpoint.id),
                event_type: Set(event.event_type.into()),
                ordering_key: Set(event.ordering_key.clone()),
                payload: Set(payload),
                status: Set(PENDING.into()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                created_at: Set(now),
                ..Default::default()
            });
        }
    }
    let created = rows.len();
    for part in rows.chunks(500) {
        event_delivery::Entity::insert_many(part.to_vec())
            .exec(db)
            .await?;
    }
    Ok(created)
}

/// `message.status` events for the results a sender just wrote to the rows in `changed` (a
/// retry is not one: the message is still on its way). One query when nobody listens.
pub async fn emit_send_results(
    db: &impl ConnectionTrait,
    results: &[crate::deliveries::SendResult],
    changed: &std::collections::HashSet<i64>,
    now: DateTime<Utc>,
) -> Result<usize> {
    use crate::deliveries::Outcome;
    if changed.is_empty() {
        return Ok(0);
    }
    let endpoints = listeners(db).await?;
    if !endpoints.iter().any(|e| wants(&e.events, MESSAGE_STATUS)) {
        return Ok(0);
    }
    let results: Vec<&crate::deliveries::SendResult> =
        results.iter().filter(|r| changed.contains(&r.id)).collect();
    let phones: std::collections::HashMap<i64, String> = heydoc_entity::message::Entity::find()
        .select_only()
        .column(heydoc_entity::message::Column::Id)
        .column(heydoc_entity::message::Column::ReceiverPhone)
        .filter(heydoc_entity::message::Column::Id.is_in(results.iter().map(|r| r.id)))
        .into_tuple::<(i64, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let events = results
        .iter()
        .filter_map(|r| {
            let (status, wamid, code, reason) = match &r.outcome {
                Outcome::Sent { wamid } => ("sent", Some(wamid.clone()), None, None),
                Outcome::Failed { code, reason } => ("failed", None, *code, Some(reason.clone())),
                Outcome::Skipped { reason } => ("skipped", None, None, Some(reason.clone())),
                Outcome::Unknown { reason } => ("unknown", None, None, Some(reason.clone())),
                Outcome::Retry { .. } | Outcome::Held { .. } => return None,
            };
            Some(Event::from(OutboundEvent::MessageStatus(
                crate::outbound::MessageStatusChanged {
                    message_id: r.id,
                    wamid,
                    contact_id: r.contact_id,
                    phone: phones.get(&r.id).cloned(),
                    status,
                    error_code: code,
                    error_reason: reason,
                    occurrence_id: None,
                    pricing: None,
                },
            )))
        })
        .collect();
    emit_to(db, &endpoints, events, now).await
}

/// Whether an endpoint's `events` list (empty: all) takes `event_type`.
pub fn wants(events: &Value, event_type: &str) -> bool {
    match events.as_array() {
        Some(list) if !list.is_empty() => list.iter().any(|e| e.as_str() == Some(event_type)),
        _ => true,
    }
}

/// A delivery to attempt, with where it goes.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    /// The claim's lease, which also identifies the claim.
    pub lease: DateTime<Utc>,
    pub attempts: i32,
    pub payload: Value,
    pub event_type: String,
    pub endpoint_id: i32,
    pub url: String,
    pub secret: String,
}

/// Claims up to `limit` due deliveries of enabled endpoints: only the oldest pending one of
/// each (endpoint, ordering key), so events of one contact stay in order. The claim moves
/// `next_attempt_at` to `lease_until`: a dispatcher that dies leaves them to be claimed again.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Due>> {
    // Read back exactly as written (PostgreSQL keeps microseconds): it is the claim's token.
    let lease_until = lease_until.trunc_subsecs(6);
    let backend = db.get_database_backend();
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE OF d SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE event_deliveries SET next_attempt_at = $1
         WHERE id IN (
            SELECT d.id FROM event_deliveries d
            JOIN event_endpoints e ON e.id = d.endpoint_id AND e.enabled
            WHERE d.status = '{PENDING}' AND d.next_attempt_at <= $2
              AND NOT EXISTS (
                SELECT 1 FROM event_deliveries o
                WHERE o.endpoint_id = d.endpoint_id AND o.ordering_key = d.ordering_key
                  AND o.status = '{PENDING}' AND o.id < d.id)
            ORDER BY d.id LIMIT {limit}{lock})
         RETURNING id"
    );
    let claimed: Vec<i64> = db
        .query_all(Statement::from_sql_and_values(
            backend,
            sql,
            [lease_until.into(), now.into()],
        ))
        .await?
        .into_iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect();
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries = event_delivery::Entity::find()
        .filter(event_delivery::Column::Id.is_in(claimed))
        .all(db)
        .await?;
    let endpoint_ids: Vec<i32> = deliveries.iter().map(|d| d.endpoint_id).collect();
    let endpoints: std::collections::HashMap<i32, event_endpoint::Model> =
        event_endpoint::Entity::find()
            .filter(event_endpoint::Column::Id.is_in(endpoint_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
    let mut due: Vec<Due> = deliveries
        .into_iter()
        .filter_map(|d| {
            let e = endpoints.get(&d.endpoint_id)?;
            Some(Due {
                id: d.id,
                lease: lease_until,
                attempts: d.attempts,
                payload: d.payload,
                event_type: d.event_type,
                endpoint_id: d.endpoint_id,
                url: e.url.clone(),
                secret: e.secret.clone(),
            })
        })
        .collect();
    due.sort_by_key(|d| d.id);
    Ok(due)
}

/// How an attempt went.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered {
        status: i32,
    },
    Failed {
        status: Option<i32>,
        error: String,
        retry_at: DateTime<Utc>,
        /// Stop trying this event (the endpoint keeps refusing it); the next of its key goes.
        give_up: bool,
    },
}

/// Records an attempt on the delivery and on its endpoint, only while this claim still holds
/// the row (a late answer to an attempt whose lease ran out records nothing). A success clears
/// the endpoint's run of failures; a failure starts one, and an endpoint failing since before
/// `disable_before` is disabled with the reason (its events wait for it).
pub async fn record(
    db: &impl ConnectionTrait,
    due: &Due,
    attempt: &Attempt,
    now: DateTime<Utc>,
    disable_before: DateTime<Utc>,
) -> Result<()> {
    let ours = |q: sea_orm::UpdateMany<event_delivery::Entity>| {
        q.col_expr(
            event_delivery::Column::Attempts,
            Expr::value(due.attempts + 1),
        )
        .filter(event_delivery::Column::Id.eq(due.id))
        .filter(event_delivery::Column::Status.eq(PENDING))
        .filter(event_delivery::Column::NextAttemptAt.eq(due.lease))
    };
    match attempt {
        Attempt::Delivered { status } => {
            let done = ours(
                event_delivery::Entity::update_many()
                    .col_expr(event_delivery::Column::Status, Expr::value(DELIVERED))
                    .col_expr(event_delivery::Column::LastStatus, Expr::value(*status))
                    .col_expr(
                        event_delivery::Column::LastError,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(event_delivery::Column::DeliveredAt, Expr::value(now)),
            )
            .exec(db)
            .await?;
            if done.rows_affected == 0 {
                return Ok(());
            }
            event_endpoint::Entity::update_many()
                .col_expr(
                    event_endpoint::Column::FailingSince,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(event_endpoint::Column::Id.eq(due.endpoint_id))
                .exec(db)
                .await?;
        }
        Attempt::Failed {
            status,
            error,
            retry_at,
            give_up,
        } => {
            let mut update = event_delivery::Entity::update_many()
                .col_expr(event_delivery::Column::LastStatus, Expr::value(*status))
                .col_expr(
                    event_delivery::Column::LastError,
                    Expr::value(error.clone()),
                )
                .col_expr(
                    event_delivery::Column::NextAttemptAt,
                    Expr::value(*retry_at),
                );
            if *give_up {
                update = update.col_expr(event_delivery::Column::Status, Expr::value(FAILED));
            }
            if ours(update).exec(db).await?.rows_affected == 0 {
                return Ok(());
            }
            event_endpoint::Entity::update_many()
                .col_expr(event_endpoint::Column::FailingSince, Expr::value(now))
                .filter(event_endpoint::Column::Id.eq(due.endpoint_id))
                .filter(event_endpoint::Column::FailingSince.is_null())
                .exec(db)
                .await?;
            let reason = format!(
                "disabled on {}: failing since before {}; last error: {error}",
                now.format("%Y-%m-%d %H:%M UTC"),
                disable_before.format("%Y-%m-%d %H:%M:%S UTC"),
            );
            let disabled = event_endpoint::Entity::update_many()
                .col_expr(event_endpoint::Column::Enabled, Expr::value(false))
                .col_expr(event_endpoint::Column::DisabledReason, Expr::value(reason))
                .filter(event_endpoint::Column::Id.eq(due.endpoint_id))
                .filter(event_endpoint::Column::Enabled.eq(true))
                .filter(event_endpoint::Column::FailingSince.lt(disable_before))
                .exec(db)
                .await?;
            if disabled.rows_affected > 0 {
                tracing::warn!(
                    endpoint_id = due.endpoint_id,
                    "event endpoint disabled after failing too long"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_wants_everything() {
        assert!(wants(&json!([]), MESSAGE_STATUS));
        assert!(wants(&Value::Null, MESSAGE_STATUS));
        assert!(wants(&json!([MESSAGE_STATUS]), MESSAGE_STATUS));
        assert!(!wants(&json!([MESSAGE_RECEIVED]), MESSAGE_STATUS));
    }
}
