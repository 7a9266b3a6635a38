use sea_orm::entity::prelude::*;

/// A CSV row an import refused: its line number (the header is line 1), why, and
/// what it said.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "import_rejects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub import_id: i32,
    pub line: i64,
    pub reason: String,
    /// The row as the file had it (clipped), so that it can be found and fixed.
    pub content: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
