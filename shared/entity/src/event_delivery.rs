use sea_orm::entity::prelude::*;

/// One event for one endpoint: `pending` until a 2xx answer makes it `delivered`. Events of
/// the same `ordering_key` (a contact, a schedule) go out in id order: a newer one waits while
/// an older one is pending. `next_attempt_at` is the back-off, and the lease while in flight.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub endpoint_id: i32,
    pub event_type: String,
    pub ordering_key: String,
    pub payload: Json,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
