use sea_orm::entity::prelude::*;

/// One security-relevant or bulk action: who (kept by name too, so it reads after the account
/// is gone), what, on what, when and from where.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    pub actor_id: Option<i32>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    /// JSON with the action's particulars (counts, the role given, ...).
    pub detail: Option<String>,
    pub address: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
