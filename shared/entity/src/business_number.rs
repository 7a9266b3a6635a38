use sea_orm::entity::prelude::*;

/// A WhatsApp business phone number HeyDoc sends from. `phone_number_id` is Meta's id (the
/// Cloud API path and the bus route); `access_token` is a secret never returned by the API
/// (null: the environment's `WHATSAPP_ACCESS_TOKEN`); `state` is `active`, `paused` (it cannot
/// send: `state_reason` says why) or `disabled` (an admin stopped it).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "business_numbers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub phone_number_id: String,
    pub display_number: String,
    pub waba_id: String,
    pub access_token: Option<String>,
    pub mps: i32,
    pub is_default: bool,
    pub state: String,
    pub state_reason: Option<String>,
    /// The business portfolio's messaging limit as Meta last reported it (`TIER_250`,
    /// `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`), and the number's quality
    /// (`GREEN`, `YELLOW`, `RED`).
    pub messaging_limit: Option<String>,
    pub quality: Option<String>,
    /// The number's circuit: while in the future, nothing is sent from it (an error about the
    /// token, the account, payment or policy, from a send's answer or a status webhook).
    pub held_until: Option<DateTimeUtc>,
    /// The business name Meta verified for the number, and its throughput level
    /// (`STANDARD`, `HIGH`, ...), as `GET /{phone-number-id}` last said.
    pub verified_name: Option<String>,
    pub throughput: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
