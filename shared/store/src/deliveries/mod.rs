//! The outgoing side of the messages table: the outbox relay's lease, the sender's claim, and
//! the sender's results written back in batches.
//!
//! `relay`: what the outbox relay and the reconciler lease and hand back; `claim`: the
//! sender's claim and a campaign's pause, resume and cancel; `results`: the outcomes written
//! back.

mod claim;
mod relay;
mod results;

pub use claim::*;
pub use relay::*;
pub use results::*;

use chrono::{DateTime, Utc};
use heydoc_domain::MessageStatus;
use heydoc_entity::{message, occurrence, scheduled_message};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

/// `1,2,3` for an `IN (...)` of ids (integers only, so nothing to escape).
pub(super) fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Deliveries of paused, cancelled or ended (marked sent) campaigns are not sent: they stay
/// queued (a resumed campaign hands them back to the relay, a cancelled one skips them).
pub(super) fn not_held() -> Condition {
    let held = Query::select()
        .column((occurrence::Entity, occurrence::Column::Id))
        .from(occurrence::Entity)
        .inner_join(
            scheduled_message::Entity,
            Expr::col((scheduled_message::Entity, scheduled_message::Column::Id))
                .equals((occurrence::Entity, occurrence::Column::ScheduleId)),
        )
        .and_where(
            Expr::col((scheduled_message::Entity, scheduled_message::Column::Status)).is_in([
                "paused",
                "cancelled",
                "sent",
            ]),
        )
        .to_owned();
    Condition::any()
        .add(message::Column::OccurrenceId.is_null())
        .add(message::Column::OccurrenceId.not_in_subquery(held))
}

/// Rows still to send (queued, or retrying).
pub(super) fn unsent() -> sea_orm::sea_query::SimpleExpr {
    message::Column::Status.is_in([
        MessageStatus::Queued.as_str(),
        MessageStatus::Retrying.as_str(),
    ])
}

/// An update handing rows still to send back to the outbox (`enqueued_at` cleared).
pub(super) fn to_outbox() -> sea_orm::UpdateMany<message::Entity> {
    message::Entity::update_many()
        .col_expr(
            message::Column::EnqueuedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(unsent())
}

/// An update skipping rows still to send, with the reason.
pub(crate) fn skip_unsent(
    reason: &str,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<message::Entity> {
    message::Entity::update_many()
        .col_expr(
            message::Column::Status,
            Expr::value(MessageStatus::Skipped.as_str()),
        )
        .col_expr(message::Column::LastErrorReason, Expr::value(reason))
        .col_expr(message::Column::UpdatedAt, Expr::value(now))
        .filter(unsent())
}

pub(super) fn occurrences_of(schedule_id: i32) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(occurrence::Column::Id)
        .from(occurrence::Entity)
        .and_where(occurrence::Column::ScheduleId.eq(schedule_id))
        .to_owned()
}
