use sea_orm::entity::prelude::*;

/// A scheduled or recurring message. `next_run_at` (UTC) is derived from `scheduled_time`,
/// `recurrence` and `timezone`; the scheduler claims rows whose `next_run_at` has come.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scheduled_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub message: Option<String>,
    /// A WhatsApp template (name, language, components) for recipients outside the window.
    pub template: Option<Json>,
    /// Explicit recipients: a JSON array of phone numbers.
    pub recipients: Json,
    /// Audience by tag: a JSON array of tag ids.
    pub tag_ids: Json,
    pub scheduled_time: DateTimeUtc,
    pub recurrence: Option<String>,
    pub timezone: String,
    pub end_time: Option<DateTimeUtc>,
    pub max_occurrences: Option<i32>,
    pub occurrence_count: i32,
    pub status: String,
    pub next_run_at: Option<DateTimeUtc>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The `traceparent` of the request that created it; each occurrence links to it.
    pub trace_context: Option<String>,
    /// Why HeyDoc paused it (a template Meta paused or refused); empty when a person did.
    pub status_reason: Option<String>,
    /// The business number (phone number id) it sends from; null: the default number.
    pub sender_number: Option<String>,
    /// `name|language` of the template whose pause (by Meta) paused this campaign: its
    /// re-approval resumes it.
    pub paused_template: Option<String>,
    /// At most this many deliveries of a run go out per day; the rest wait for the next days
    /// (a campaign larger than the account's messaging limit).
    pub daily_limit: Option<i32>,
    /// A file every delivery sends (`kind`, Meta's media `id`, `caption`, `filename`).
    pub media: Option<Json>,
    /// What the team calls the campaign ("Monday reminders"); null for campaigns made before
    /// names (the message's start stands in).
    pub name: Option<String>,
    /// When it was paused (null while it runs): a resume moves its waiting deliveries on by
    /// the time it was held.
    pub paused_at: Option<DateTimeUtc>,
    /// The local wall-clock time of the first run (`2026-03-08T02:30:00`) when it was given
    /// without an offset: the later runs keep that time even when the first fell in a
    /// daylight-saving gap.
    pub local_anchor: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
