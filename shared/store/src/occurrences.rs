//! Occurrences (a schedule's runs): reading them with their deliveries' progress. The
//! scheduler's writes (firing, fan-out) are in `firing` and `fanout`.

use heydoc_entity::{message, occurrence};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::messages::Message;
use crate::{Conn, Result};

pub use occurrence::Model as Occurrence;

/// A schedule's last `limit` occurrences, newest first.
pub async fn recent(db: &impl Conn, schedule_id: i32, limit: u64) -> Result<Vec<Occurrence>> {
    Ok(occurrence::Entity::find()
        .filter(occurrence::Column::ScheduleId.eq(schedule_id))
        .order_by_desc(occurrence::Column::FireAt)
        .limit(limit)
        .all(db)
        .await?)
}

/// Each of these schedules' latest occurrence (run), as `(schedule id, occurrence id)`.
pub async fn latest_of(db: &impl Conn, schedule_ids: &[i32]) -> Result<Vec<(i32, i64)>> {
    if schedule_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i32, Option<i64>)> = occurrence::Entity::find()
        .select_only()
        .column(occurrence::Column::ScheduleId)
        .column_as(occurrence::Column::Id.max(), "latest")
        .filter(occurrence::Column::ScheduleId.is_in(schedule_ids.iter().copied()))
        .group_by(occurrence::Column::ScheduleId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, o)| o.map(|o| (s, o)))
        .collect())
}

/// `(occurrence id, message status, deliveries)` for these occurrences.
pub async fn status_counts(db: &impl Conn, ids: &[i64]) -> Result<Vec<(i64, String, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Option<i64>, String, i64)> = message::Entity::find()
        .select_only()
        .column(message::Column::OccurrenceId)
        .column(message::Column::Status)
        .column_as(message::Column::Id.count(), "n")
        .filter(message::Column::OccurrenceId.is_in(ids.iter().copied()))
        .group_by(message::Column::OccurrenceId)
        .group_by(message::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(occ, status, n)| (occ.unwrap_or_default(), status, n))
        .collect())
}

/// Messages of one run with the same pricing and the same first four digits of recipient.
#[derive(Debug, Clone)]
pub struct PricedGroup {
    pub occurrence_id: i64,
    pub category: String,
    pub billable: bool,
    /// The first four digits of the recipients' numbers (their country calling code is in it).
    pub prefix: String,
    pub messages: i64,
}

type PricedRow = (Option<i64>, Option<String>, Option<bool>, String, i64);

/// What Meta reported it charges for these occurrences' messages; messages without a pricing
/// report yet are left out.
pub async fn pricing_counts(db: &impl Conn, ids: &[i64]) -> Result<Vec<PricedGroup>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Literal (no bound parameters): PostgreSQL matches the GROUP BY expression to the
    // selected one only when they are written the same.
    let prefix = sea_orm::sea_query::Expr::cust("substr(receiver_phone, 1, 4)");
    let rows: Vec<PricedRow> = message::Entity::find()
        .select_only()
        .column(message::Column::OccurrenceId)
        .column(message::Column::PricingCategory)
        .column(message::Column::Billable)
        .column_as(prefix.clone(), "prefix")
        .column_as(message::Column::Id.count(), "n")
        .filter(message::Column::OccurrenceId.is_in(ids.iter().copied()))
        .filter(message::Column::PricingCategory.is_not_null())
        .group_by(message::Column::OccurrenceId)
        .group_by(message::Column::PricingCategory)
        .group_by(message::Column::Billable)
        .group_by(prefix)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(occ, category, billable, prefix, n)| PricedGroup {
            occurrence_id: occ.unwrap_or_default(),
            category: category.unwrap_or_default(),
            billable: billable.unwrap_or(false),
            prefix,
            messages: n,
        })
        .collect())
}

/// A schedule's deliveries (of one occurrence, if given), newest first, older than delivery
/// `before`.
pub async fn deliveries(
    db: &impl Conn,
    schedule_id: i32,
    occurrence_id: Option<i64>,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Message>> {
    let mut occurrences = sea_orm::sea_query::Query::select()
        .column(occurrence::Column::Id)
        .from(occurrence::Entity)
        .and_where(occurrence::Column::ScheduleId.eq(schedule_id))
        .to_owned();
    if let Some(o) = occurrence_id {
        occurrences.and_where(occurrence::Column::Id.eq(o));
    }
    let mut query =
        message::Entity::find().filter(message::Column::OccurrenceId.in_subquery(occurrences));
    if let Some(before) = before {
        query = query.filter(message::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(message::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// `(occurrence id, traceparent)` of these occurrences that have one.
pub async fn trace_contexts(db: &impl Conn, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    let rows: Vec<(i64, Option<String>)> = occurrence::Entity::find()
        .select_only()
        .column(occurrence::Column::Id)
        .column(occurrence::Column::TraceContext)
        .filter(occurrence::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, tc)| tc.map(|tc| (id, tc)))
        .collect())
}
