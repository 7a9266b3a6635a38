use sea_orm::entity::prelude::*;

/// A business account's template catalog as a whole: when it was last read from Meta (null:
/// never; sends naming templates are then not checked) and the last sync's error.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "template_catalogs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub waba_id: String,
    pub synced_at: Option<DateTimeUtc>,
    pub template_count: i32,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
