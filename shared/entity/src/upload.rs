use sea_orm::entity::prelude::*;

/// A file staff attached to send: kept in the media store and uploaded once to Meta for one
/// business number (`POST /{phone-number-id}/media`), then sent by Meta's media id.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub phone_number_id: String,
    pub meta_media_id: String,
    /// `image`, `document`, `audio`, `video` or `sticker`.
    pub kind: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub created_by: Option<i32>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
