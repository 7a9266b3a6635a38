use sea_orm::entity::prelude::*;

/// One firing of a schedule, unique on (schedule_id, fire_at). `cursor` is how far the fan-out
/// into deliveries has come, so a crash resumes where it stopped.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "occurrences")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub schedule_id: i32,
    pub fire_at: DateTimeUtc,
    pub state: String,
    pub cursor: Option<i64>,
    pub planned: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The `traceparent` of the span that fired it; fan-out chunks and deliveries link to it.
    pub trace_context: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
