use sea_orm::entity::prelude::*;

/// One message of the chat log, either direction. An outgoing row is also the delivery the
/// sender works on: its state, attempts and errors live here, and `enqueued_at` stays null
/// until the job bus has confirmed the wake-up message (the transactional outbox).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub contact_id: i32,
    /// WhatsApp's message id (wamid), unique; null until Meta has accepted an outgoing message.
    #[sea_orm(unique)]
    pub message_id: Option<String>,
    pub direction: String,
    pub sender_phone: String,
    pub receiver_phone: String,
    pub message_type: String,
    pub message_text: String,
    /// What a non-text message carries (template name and parameters, media link ...).
    pub payload: Option<Json>,
    pub timestamp: DateTimeUtc,
    pub is_read: bool,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub last_error_code: Option<i32>,
    pub last_error_reason: Option<String>,
    pub enqueued_at: Option<DateTimeUtc>,
    /// `api`, `occurrence` or `webhook`.
    pub origin: String,
    pub occurrence_id: Option<i64>,
    #[sea_orm(unique)]
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request an Idempotency-Key was first used with.
    pub request_hash: Option<String>,
    pub created_by: Option<i32>,
    pub updated_at: DateTimeUtc,
    /// The `traceparent` the send continues: the API request's, then the sender's own; status
    /// webhooks become its children. For a fan-out delivery before it is sent, its occurrence's.
    pub trace_context: Option<String>,
    /// What Meta says it charges for this message (its status webhooks' `pricing`):
    /// `marketing`, `utility`, `authentication`, `service`, ...; `pricing_type` is `regular`
    /// (charged) or a free kind.
    pub pricing_category: Option<String>,
    pub pricing_type: Option<String>,
    pub billable: Option<bool>,
    /// What happened to the message after it was sent: `{"reactions": {sender: {emoji, at}},
    /// "edits": [{text, at}], "edited_at", "deleted_at"}` (null when nothing did).
    pub revisions: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
