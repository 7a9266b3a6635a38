use sea_orm::entity::prelude::*;

/// One message template of a WhatsApp Business Account, as Meta last reported it (a sync or a
/// template webhook). `status` is Meta's (`APPROVED`, `PAUSED`, `DISABLED`, `REJECTED`,
/// `PENDING`, ...); only an approved template may be sent. `header_params` and `body_params`
/// count the `{{n}}` variables a send must fill.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "templates")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub waba_id: String,
    pub meta_id: Option<String>,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub quality: Option<String>,
    pub reason: Option<String>,
    pub components: Json,
    pub header_params: i32,
    pub body_params: i32,
    pub synced_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
