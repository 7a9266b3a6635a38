use sea_orm::entity::prelude::*;

/// A URL that receives HeyDoc's events, signed with `secret`. `events` lists the event types
/// it wants (empty: all). An endpoint that keeps failing is disabled with the reason.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_endpoints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub url: String,
    pub secret: String,
    pub events: Json,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// When the current run of failures began (cleared by a success).
    pub failing_since: Option<DateTimeUtc>,
    pub created_by: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
