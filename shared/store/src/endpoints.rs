//! Outbound-event endpoints (admins register them) and their delivery log. Writing and
//! dispatching the events themselves is in `events`.

use chrono::{DateTime, Utc};
use heydoc_entity::{event_delivery, event_endpoint};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{Conn, Result, StoreError};

pub use event_delivery::Model as EventDelivery;
pub use event_endpoint::Model as Endpoint;

/// A new endpoint, enabled.
pub async fn insert(
    db: &impl Conn,
    url: String,
    secret: String,
    events: &[String],
    created_by: i32,
    now: DateTime<Utc>,
) -> Result<Endpoint> {
    Ok(event_endpoint::Entity::insert(event_endpoint::ActiveModel {
        url: Set(url),
        secret: Set(secret),
        events: Set(serde_json::json!(events)),
        enabled: Set(true),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_by: Set(created_by),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_with_returning(db)
    .await?)
}

pub async fn all(db: &impl Conn) -> Result<Vec<Endpoint>> {
    Ok(event_endpoint::Entity::find()
        .order_by_asc(event_endpoint::Column::Id)
        .all(db)
        .await?)
}

pub async fn get(db: &impl Conn, id: i32) -> Result<Endpoint> {
    event_endpoint::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("no event endpoint {id}")))
}

/// How many events wait for the endpoint.
pub async fn pending_count(db: &impl Conn, id: i32) -> Result<i64> {
    Ok(event_delivery::Entity::find()
        .select_only()
        .column_as(event_delivery::Column::Id.count(), "n")
        .filter(event_delivery::Column::EndpointId.eq(id))
        .filter(event_delivery::Column::Status.eq(crate::events::PENDING))
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or(0))
}

/// Enables (clearing the failure record) or disables (with the reason) an endpoint.
pub async fn set_enabled(
    db: &impl Conn,
    id: i32,
    enabled: bool,
    reason: Option<String>,
) -> Result<()> {
    event_endpoint::Entity::update_many()
        .col_expr(event_endpoint::Column::Enabled, Expr::value(enabled))
        .col_expr(event_endpoint::Column::DisabledReason, Expr::value(reason))
        .col_expr(
            event_endpoint::Column::FailingSince,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(event_endpoint::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes an endpoint and its delivery log.
pub async fn delete(db: &impl Conn, id: i32) -> Result<()> {
    event_delivery::Entity::delete_many()
        .filter(event_delivery::Column::EndpointId.eq(id))
        .exec(db)
        .await?;
    event_endpoint::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// The endpoint's delivery log, newest first, older than delivery `before`.
pub async fn log(
    db: &impl Conn,
    id: i32,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<EventDelivery>> {
    let mut query =
        event_delivery::Entity::find().filter(event_delivery::Column::EndpointId.eq(id));
    if let Some(before) = before {
        query = query.filter(event_delivery::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(event_delivery::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
