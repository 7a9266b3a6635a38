use sea_orm::entity::prelude::*;

/// A private note a colleague left in a contact's chat: the team sees it, the contact never.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversation_notes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: i32,
    /// The user who wrote it (null once that user is deleted; `author` keeps the name).
    pub author_id: Option<i32>,
    pub author: String,
    pub body: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
