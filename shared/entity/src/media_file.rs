use sea_orm::entity::prelude::*;

/// The file of an inbound media message (image, document, audio, video, sticker), downloaded
/// from Meta at once: `state` is `pending`, `stored` (at `storage_key`, its `sha256` checked
/// against Meta's) or `failed` (`error` says why).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "media_files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub message_id: i64,
    pub meta_media_id: String,
    pub mime_type: String,
    pub sha256: Option<String>,
    pub size: Option<i64>,
    pub filename: Option<String>,
    pub storage_key: Option<String>,
    pub state: String,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
