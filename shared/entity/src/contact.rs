use sea_orm::entity::prelude::*;

/// A WhatsApp contact with the counters the inbox shows. The counters change in the same
/// transaction as the message that changes them; listing never aggregates over messages.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contacts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub phone: String,
    pub name: String,
    pub is_group: bool,
    /// Custom attributes: a JSON object.
    pub attributes: Json,
    pub last_message: Option<String>,
    pub last_message_at: Option<DateTimeUtc>,
    /// The inbox's sort key: the last message's time, or the creation time.
    pub last_activity_at: DateTimeUtc,
    pub message_count: i32,
    pub unread_count: i32,
    /// Opens WhatsApp's 24-hour customer-service window.
    pub last_inbound_at: Option<DateTimeUtc>,
    pub opted_out_at: Option<DateTimeUtc>,
    pub suppressed_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The business number (phone number id) the contact last wrote to: replies go from it.
    pub last_number: Option<String>,
    /// WhatsApp's business-scoped user id (`US.1349...`), when WhatsApp gave one; a contact
    /// known only by it has it as its `phone` too.
    pub user_id: Option<String>,
    /// The WhatsApp username the user chose, as last seen.
    pub username: Option<String>,
    /// The conversation's state for the team: `open`, `pending` or `resolved` (an inbound
    /// message reopens it).
    pub conversation_status: String,
    /// The last conversation message is inbound and nobody has answered it.
    pub awaiting_reply: bool,
    /// The last inbound message or reply from a person; null while the contact only received
    /// campaigns or was imported. The inbox's order.
    pub conversation_at: Option<DateTimeUtc>,
    /// The colleague the conversation is assigned to.
    pub assignee_id: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
