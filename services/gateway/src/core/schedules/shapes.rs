//! What the schedules API takes and returns.

use chrono::{DateTime, Utc};
use heydoc_domain::ScheduleStatus;
use heydoc_store::schedules::Schedule;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::core::templates::TemplateSpec;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSchedule {
    /// What the team calls it ("Monday reminders"), at most 120 characters. Default: the
    /// message's start.
    #[serde(default)]
    #[schema(max_length = 120, example = "Monday reminders")]
    pub name: Option<String>,
    /// The text, at most 4096 characters. Required unless `template` is given.
    #[serde(default)]
    pub message: Option<String>,
    /// Phone numbers, country code first.
    #[serde(default)]
    #[schema(example = json!(["14155550123"]))]
    pub recipients: Vec<String>,
    /// When to send (first, for recurring schedules): RFC 3339 (`2030-01-16T09:00:00Z`), or a
    /// local time without offset (`2030-01-16T09:00`) read in `timezone`.
    #[schema(example = "2030-01-16T09:00:00Z")]
    pub scheduled_time: String,
    /// `null`/`"none"`, `"daily"`, `"weekly"`, `"monthly"`, or a 5-field cron expression.
    #[serde(default)]
    pub recurrence: Option<String>,
    /// IANA time zone the recurrence follows (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Also send to every contact carrying one of these tags (resolved when the message fires).
    #[serde(default)]
    pub tag_ids: Vec<i32>,
    /// No occurrence after this time (RFC 3339).
    #[serde(default)]
    pub end_time: Option<String>,
    /// Stop after this many occurrences.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_occurrences: Option<i32>,
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// The business number it sends from (its phone number id, see `GET /api/numbers`);
    /// default: the default number.
    #[serde(default)]
    pub from: Option<String>,
    /// Spread each run over days: at most this many deliveries go out per day, the rest the
    /// days after (for an audience larger than the account's messaging limit).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000000)]
    pub daily_limit: Option<i32>,
    /// A file every recipient gets (from `POST /api/media`, uploaded for the campaign's
    /// number); `message` is its caption.
    #[serde(default)]
    pub media: Option<crate::core::uploads::MediaSpec>,
}

/// A scheduled message as the seed shows it, plus HeyDoc's additions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledOut {
    pub id: i32,
    /// Its name; the message's start (or the template's name) when it was given none.
    pub name: String,
    /// Where it stands, in plain words: `scheduled` (a run is ahead), `paused`, `finished`
    /// (no run ahead) or `cancelled`. The detail adds `running` while a run is sending.
    #[schema(value_type = CampaignState)]
    pub state: String,
    /// The text; empty for a template-only schedule.
    pub message: String,
    pub recipients: Vec<String>,
    pub scheduled_time: DateTime<Utc>,
    /// `pending`, `paused`, `cancelled` or `sent`.
    pub status: String,
    /// The username of the creator.
    pub created_by: String,
    pub recurrence: Option<String>,
    pub timezone: String,
    pub tag_ids: Vec<i32>,
    pub end_time: Option<DateTime<Utc>>,
    #[schema(minimum = 1)]
    pub max_occurrences: Option<i32>,
    pub occurrence_count: i32,
    /// The next fire time, in UTC; null when the schedule will not fire again.
    pub next_run_at: Option<DateTime<Utc>>,
    pub template: Option<TemplateSpec>,
    pub created_at: DateTime<Utc>,
    /// Why HeyDoc paused it (a template WhatsApp paused or refused); absent when a person did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// The business number it sends from, when not the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// At most this many deliveries of a run per day, when spread over days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<i32>,
    /// The file every recipient gets: its `kind`, `upload_id` and Meta's media `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub media: Option<serde_json::Value>,
    /// On creation only: what to look at before it runs, in words (the campaign estimate's
    /// warning that the audience is larger than the account's messaging limit, when it is not
    /// spread over days within it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A campaign's state, as the dashboard says it.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the document's enum; the server writes the strings
pub enum CampaignState {
    Scheduled,
    Running,
    Paused,
    Finished,
    Cancelled,
}

/// The name a campaign shows: its own, else the start of its message or its template's name.
fn name_of(s: &Schedule) -> String {
    if let Some(name) = s.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    let message = s.message.as_deref().unwrap_or_default().trim();
    if !message.is_empty() {
        let first_line = message.lines().next().unwrap_or_default();
        let mut short: String = first_line.chars().take(60).collect();
        if short.chars().count() < message.chars().count() {
            short.push('…');
        }
        return short;
    }
    match s
        .template
        .as_ref()
        .and_then(|t| t.get("name"))
        .and_then(|n| n.as_str())
    {
        Some(name) => format!("Template {name}"),
        None => format!("Campaign {}", s.id),
    }
}

/// `scheduled`, `paused`, `finished` or `cancelled` from the row alone.
fn state_of(s: &Schedule) -> &'static str {
    match ScheduleStatus::parse(&s.status) {
        Some(ScheduleStatus::Paused) => "paused",
        Some(ScheduleStatus::Cancelled) => "cancelled",
        Some(ScheduleStatus::Sent) => "finished",
        Some(ScheduleStatus::Pending) | None => {
            if s.next_run_at.is_some() {
                "scheduled"
            } else {
                "finished"
            }
        }
    }
}

impl From<Schedule> for ScheduledOut {
    fn from(s: Schedule) -> Self {
        Self {
            name: name_of(&s),
            state: state_of(&s).into(),
            id: s.id,
            message: s.message.unwrap_or_default(),
            recipients: serde_json::from_value(s.recipients).unwrap_or_default(),
            scheduled_time: s.scheduled_time,
            status: s.status,
            created_by: s.created_by,
            recurrence: s.recurrence,
            timezone: s.timezone,
            tag_ids: serde_json::from_value(s.tag_ids).unwrap_or_default(),
            end_time: s.end_time,
            max_occurrences: s.max_occurrences,
            occurrence_count: s.occurrence_count,
            next_run_at: s.next_run_at,
            template: s.template.and_then(|t| serde_json::from_value(t).ok()),
            created_at: s.created_at,
            status_reason: s.status_reason,
            from: s.sender_number,
            daily_limit: s.daily_limit,
            media: s.media,
            warnings: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusChange {
    /// `pending` (resume), `paused`, `cancelled` or `sent` (the client sent it itself: the
    /// schedule ends).
    #[schema(example = "paused", value_type = StatusName)]
    pub status: String,
}

/// The statuses a client may set, as the document lists them.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the document's enum; the handler reads the string and says what is wrong
pub enum StatusName {
    Pending,
    Paused,
    Cancelled,
    Sent,
}

/// Per-occurrence delivery counts by status.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DeliveryCounts {
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub skipped: i64,
    pub unknown: i64,
}

/// One firing of a schedule and how its deliveries are doing.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceOut {
    pub id: i64,
    pub fire_at: DateTime<Utc>,
    /// `fanning_out`, `done`, `skipped` (missed while the scheduler was down) or `cancelled`.
    pub state: String,
    /// Deliveries created so far.
    pub planned: i32,
    pub counts: DeliveryCounts,
    /// What Meta reported it charges for this run's messages so far, and the estimate.
    pub cost: super::RunCost,
}

/// A scheduled message with its last occurrences.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledDetail {
    #[serde(flatten)]
    pub schedule: ScheduledOut,
    /// The last 20 occurrences, newest first.
    pub occurrences: Vec<OccurrenceOut>,
}

/// A page of a schedule list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size (default 200; asked for outside 1 to 500, the nearest of the two).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` header of the previous page.
    #[param(pattern = r"^[0-9]{0,9}$")]
    pub cursor: Option<String>,
}

impl PageParams {
    /// The schedule id the cursor names.
    pub fn cursor_id(&self) -> ApiResult<Option<i32>> {
        match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => Ok(None),
            Some(c) if c.len() <= 9 && c.bytes().all(|b| b.is_ascii_digit()) => Ok(c.parse().ok()),
            Some(_) => Err(ApiError::BadRequest(
                "cursor is not one this API returned".into(),
            )),
        }
    }
}

/// A page of the pending schedules.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PendingPageParams {
    /// Page size (default 200; asked for outside 1 to 500, the nearest of the two).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` header of the previous page.
    #[param(pattern = r"^((-?[0-9]{1,18}|n)\.[0-9]{1,9})?$")]
    pub cursor: Option<String>,
}

impl PendingPageParams {
    /// The sort key the cursor names: the last row's next run (in microseconds, `n` for none)
    /// and its id.
    pub fn position(&self) -> ApiResult<Option<heydoc_store::schedules::PendingCursor>> {
        let bad = || ApiError::BadRequest("cursor is not one this API returned".into());
        let Some(cursor) = self.cursor.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
        if id.is_empty() || id.len() > 9 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let id = id.parse().map_err(|_| bad())?;
        let at = match at {
            "n" => None,
            micros => Some(
                micros
                    .parse::<i64>()
                    .ok()
                    .and_then(DateTime::<Utc>::from_timestamp_micros)
                    .ok_or_else(bad)?,
            ),
        };
        Ok(Some((at, id)))
    }

    /// The cursor after `schedule`.
    pub fn after(schedule: &heydoc_store::schedules::Schedule) -> String {
        match schedule.next_run_at {
            Some(at) => format!("{}.{}", at.timestamp_micros(), schedule.id),
            None => format!("n.{}", schedule.id),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<i64>,
    /// Only deliveries older than this delivery id (the last `id` of the previous page).
    pub before: Option<i64>,
    /// Only this occurrence's deliveries.
    pub occurrence_id: Option<i64>,
}

/// One recipient's delivery of a scheduled message.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    pub occurrence_id: i64,
    pub phone: String,
    /// The contact's name (empty when it has none).
    pub name: String,
    pub status: String,
    pub error_code: Option<i32>,
    pub error_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The next runs a schedule would have, before it is saved.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    /// The time zone the runs follow.
    pub timezone: String,
    /// Up to five next runs, in UTC (fewer when the schedule ends sooner).
    pub next_runs: Vec<DateTime<Utc>>,
    /// The same runs as local times in `timezone` (`2030-01-16 09:00 IST`).
    pub next_runs_local: Vec<String>,
    /// The message as the audience's first member will read it, when a message and an
    /// audience were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleOut>,
}

/// One recipient's personalised message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleOut {
    pub phone: String,
    /// The contact's name; empty when it has none.
    pub name: String,
    /// What this recipient receives; absent when a placeholder has no value for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Why this recipient would be skipped (a placeholder without value or fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// When a schedule runs: the part of a create request the preview checks on its own.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TimingRequest {
    /// As in `POST /api/scheduled-messages`.
    #[schema(example = "2030-01-16T09:00")]
    pub scheduled_time: String,
    #[serde(default)]
    pub recurrence: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_occurrences: Option<i32>,
    /// The text, to show it as its first recipient will read it (preview only).
    #[serde(default)]
    pub message: Option<String>,
    /// The audience, for that first recipient (preview only).
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub tag_ids: Vec<i32>,
}

/// Both requests carry a schedule's timing in the same five fields (`TimingRequest` does not
/// flatten into `NewSchedule`: serde's error texts for a bad body would change).
macro_rules! timing_of {
    ($($request:ty),+) => {$(
        impl $request {
            pub fn timing(&self) -> heydoc_domain::schedule::TimingInput<'_> {
                heydoc_domain::schedule::TimingInput {
                    scheduled_time: &self.scheduled_time,
                    recurrence: self.recurrence.as_deref(),
                    timezone: self.timezone.as_deref(),
                    end_time: self.end_time.as_deref(),
                    max_occurrences: self.max_occurrences,
                }
            }
        }
    )+};
}

timing_of!(TimingRequest, NewSchedule);
