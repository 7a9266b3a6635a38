//! Scheduled and recurring messages: creating, listing, pausing, cancelling.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use heydoc_domain::recurrence::{parse_time_zone, resolve_local};
use heydoc_domain::{template, validate, Phone, Recurrence, ScheduleStatus};
use heydoc_entity::{message, occurrence, scheduled_message as schedule};
use heydoc_store::deliveries;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::tags::ensure_exist;
use crate::routes::{Ack, Envelope};
use crate::state::AppState;

/// How far in the past a `scheduled_time` may be (clock skew between client and server).
const PAST_GRACE_SECS: i64 = 60;
const MAX_RECIPIENTS: usize = 10_000;

/// A WhatsApp template to send instead of (or, outside the 24-hour window, in place of) text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateSpec {
    /// The approved template's name.
    pub name: String,
    /// Its language code, such as `en_US`.
    pub language: String,
    /// WhatsApp's `components` array (header, body and button parameters).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSchedule {
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
    pub max_occurrences: Option<i32>,
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// The business number it sends from (its phone number id, see `GET /api/numbers`);
    /// default: the default number.
    #[serde(default)]
    pub from: Option<String>,
}

/// A scheduled message as the seed shows it, plus HeyDoc's additions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledOut {
    pub id: i32,
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
}

impl From<schedule::Model> for ScheduledOut {
    fn from(s: schedule::Model) -> Self {
        Self {
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
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusChange {
    /// `pending` (resume), `paused`, `cancelled` or `sent` (the client sent it itself: the
    /// schedule ends).
    #[schema(example = "paused")]
    pub status: String,
}

/// Every scheduled message, newest first.
#[utoipa::path(
    get, path = "/api/scheduled-messages", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<ScheduledOut>), (status = 401, body = ErrorBody))
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<ScheduledOut>>> {
    let rows = schedule::Entity::find()
        .order_by_desc(schedule::Column::Id)
        .all(&state.db)
        .await?;
    Ok(axum::Json(
        rows.into_iter().map(ScheduledOut::from).collect(),
    ))
}

/// Scheduled messages still waiting to fire (status `pending`), soonest first.
#[utoipa::path(
    get, path = "/api/scheduled-messages/pending", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Vec<ScheduledOut>), (status = 401, body = ErrorBody))
)]
pub async fn pending(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<ScheduledOut>>> {
    let rows = schedule::Entity::find()
        .filter(schedule::Column::Status.eq(ScheduleStatus::Pending.as_str()))
        .order_by_asc(schedule::Column::NextRunAt)
        .order_by_asc(schedule::Column::Id)
        .all(&state.db)
        .await?;
    Ok(axum::Json(
        rows.into_iter().map(ScheduledOut::from).collect(),
    ))
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
}

/// A scheduled message with its last occurrences.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledDetail {
    #[serde(flatten)]
    pub schedule: ScheduledOut,
    /// The last 20 occurrences, newest first.
    pub occurrences: Vec<OccurrenceOut>,
}

/// One scheduled message, with `next_run_at` and per-occurrence progress.
#[utoipa::path(
    get, path = "/api/scheduled-messages/{id}", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id")),
    responses((status = 200, body = ScheduledDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<ScheduledDetail>> {
    let schedule = find(&state, id).await?;
    let occurrences = occurrence::Entity::find()
        .filter(occurrence::Column::ScheduleId.eq(id))
        .order_by_desc(occurrence::Column::FireAt)
        .limit(20)
        .all(&state.db)
        .await?;
    let ids: Vec<i64> = occurrences.iter().map(|o| o.id).collect();
    let counts: Vec<(Option<i64>, String, i64)> = if ids.is_empty() {
        Vec::new()
    } else {
        message::Entity::find()
            .select_only()
            .column(message::Column::OccurrenceId)
            .column(message::Column::Status)
            .column_as(message::Column::Id.count(), "n")
            .filter(message::Column::OccurrenceId.is_in(ids))
            .group_by(message::Column::OccurrenceId)
            .group_by(message::Column::Status)
            .into_tuple()
            .all(&state.db)
            .await?
    };
    let mut by_occurrence: std::collections::HashMap<i64, DeliveryCounts> =
        std::collections::HashMap::new();
    for (occ, status, n) in counts {
        let c = by_occurrence.entry(occ.unwrap_or_default()).or_default();
        match status.as_str() {
            "queued" | "sending" | "retrying" => c.queued += n,
            "sent" => c.sent += n,
            "delivered" => c.delivered += n,
            "read" => c.read += n,
            "failed" => c.failed += n,
            "skipped" => c.skipped += n,
            _ => c.unknown += n,
        }
    }
    let occurrences = occurrences
        .into_iter()
        .map(|o| OccurrenceOut {
            counts: by_occurrence.remove(&o.id).unwrap_or_default(),
            id: o.id,
            fire_at: o.fire_at,
            state: o.state,
            planned: o.planned,
        })
        .collect();
    Ok(axum::Json(ScheduledDetail {
        schedule: schedule.into(),
        occurrences,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryParams {
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u64>,
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
    pub status: String,
    pub error_code: Option<i32>,
    pub error_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Per-recipient results of a scheduled message, newest first.
#[utoipa::path(
    get, path = "/api/scheduled-messages/{id}/deliveries", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id"), DeliveryParams),
    responses((status = 200, body = Vec<DeliveryOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn deliveries_of(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Query(params): Query<DeliveryParams>,
) -> ApiResult<axum::Json<Vec<DeliveryOut>>> {
    find(&state, id).await?;
    let mut occurrences = sea_orm::sea_query::Query::select()
        .column(occurrence::Column::Id)
        .from(occurrence::Entity)
        .and_where(occurrence::Column::ScheduleId.eq(id))
        .to_owned();
    if let Some(o) = params.occurrence_id {
        occurrences.and_where(occurrence::Column::Id.eq(o));
    }
    let mut query =
        message::Entity::find().filter(message::Column::OccurrenceId.in_subquery(occurrences));
    if let Some(before) = params.before {
        query = query.filter(message::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(message::Column::Id)
        .limit(crate::routes::page_size(params.limit, 100, 500))
        .all(&state.db)
        .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|m| DeliveryOut {
                id: m.id,
                occurrence_id: m.occurrence_id.unwrap_or_default(),
                phone: m.receiver_phone,
                status: m.status,
                error_code: m.last_error_code,
                error_reason: m.last_error_reason,
                updated_at: m.updated_at,
            })
            .collect(),
    ))
}

/// Schedules a message, once or recurring.
#[utoipa::path(
    post, path = "/api/scheduled-messages", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    request_body = NewSchedule,
    responses(
        (status = 201, body = Envelope<ScheduledOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Json(body): Json<NewSchedule>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<ScheduledOut>>)> {
    let from = body
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string);
    if let Some(from) = &from {
        crate::routes::numbers::usable(&state, from).await?;
    }
    let plan = Plan::check(body, Utc::now())?;
    ensure_exist(&state.db, &plan.tag_ids).await?;
    let now = Utc::now();
    let row = schedule::ActiveModel {
        message: Set(plan.message),
        template: Set(plan.template),
        recipients: Set(serde_json::json!(plan.recipients)),
        tag_ids: Set(serde_json::json!(plan.tag_ids)),
        scheduled_time: Set(plan.scheduled_time),
        recurrence: Set(plan.recurrence.to_stored()),
        timezone: Set(plan.timezone),
        end_time: Set(plan.end_time),
        max_occurrences: Set(plan.max_occurrences),
        occurrence_count: Set(0),
        status: Set(ScheduleStatus::Pending.as_str().into()),
        sender_number: Set(from),
        next_run_at: Set(Some(plan.first_run)),
        created_by: Set(me.username),
        created_at: Set(now),
        updated_at: Set(now),
        // Each occurrence's trace links back to this request.
        trace_context: Set(heydoc_telemetry::propagation::traceparent_of(
            &tracing::Span::current(),
        )),
        ..Default::default()
    };
    let created = schedule::Entity::insert(row)
        .exec_with_returning(&state.db)
        .await?;
    tracing::info!(schedule_id = created.id, next_run_at = %plan.first_run, "schedule created");
    if let Some(wake) = &state.scheduler_wake {
        wake.notify_waiters();
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(
            created.into(),
            "Scheduled message created successfully",
        )),
    ))
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

/// How many runs a preview shows.
const PREVIEW_RUNS: usize = 5;

/// Checks a schedule's timing as `POST /api/scheduled-messages` would and answers with its next
/// runs, saving nothing: what the dashboard shows before "Schedule". The rest of a create
/// body may be sent along; it is ignored.
#[utoipa::path(
    post, path = "/api/scheduled-messages/preview", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    request_body = TimingRequest,
    responses(
        (status = 200, body = PreviewOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    Json(body): Json<TimingRequest>,
) -> ApiResult<axum::Json<PreviewOut>> {
    let timing = Timing::check(&body, Utc::now())?;
    let sample = match body.message.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(text) => {
            template::check_text(text)
                .map_err(|e| ApiError::validation(format!("message: {e}")))?;
            sample(&state, text, &body.recipients, &body.tag_ids).await?
        }
        None => None,
    };
    let tz = parse_time_zone(&timing.timezone)?;
    let next_runs = timing.runs().take(PREVIEW_RUNS).collect::<Vec<_>>();
    let next_runs_local = next_runs
        .iter()
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
        .collect();
    Ok(axum::Json(PreviewOut {
        timezone: timing.timezone,
        next_runs,
        next_runs_local,
        sample,
    }))
}

/// `text` as the audience's first member reads it: the first listed recipient, or else the
/// first contact carrying one of the tags.
async fn sample(
    state: &AppState,
    text: &str,
    recipients: &[String],
    tag_ids: &[i32],
) -> ApiResult<Option<SampleOut>> {
    let listed = recipients.iter().find_map(|r| Phone::parse(r).ok());
    let contact = match &listed {
        Some(phone) => heydoc_store::contacts::find_by_phone(&state.db, phone.as_str()).await?,
        None => heydoc_store::contacts::first_tagged(&state.db, tag_ids).await?,
    };
    let (phone, name, attributes) = match (contact, listed) {
        (Some(c), _) => (c.phone, c.name, c.attributes),
        (None, Some(phone)) => (phone.into_string(), String::new(), serde_json::json!({})),
        (None, None) => return Ok(None),
    };
    let filled = template::fill_text(
        text,
        &template::ContactFields {
            name: &name,
            phone: &phone,
            attributes: &attributes,
        },
    );
    let (text, problem) = match filled {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(format!("would be skipped: {e}"))),
    };
    Ok(Some(SampleOut {
        phone,
        name,
        text,
        problem,
    }))
}

/// Deletes a scheduled message; deliveries already made stay in the chat log, and those not
/// sent yet are skipped ("the campaign was deleted").
#[utoipa::path(
    delete, path = "/api/scheduled-messages/{id}", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id")),
    responses((status = 200, body = Ack), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> ApiResult<axum::Json<Ack>> {
    // Its deliveries not sent yet are skipped first, in the same transaction: once the
    // schedule is gone they belong to no campaign that could hold them back.
    let txn = state.db.begin().await?;
    // Waits for a fan-out chunk in progress (it holds the row), so its deliveries are skipped
    // too.
    let mut find = schedule::Entity::find_by_id(id);
    if sea_orm::ConnectionTrait::get_database_backend(&txn) == sea_orm::DatabaseBackend::Postgres {
        find = find.lock_exclusive();
    }
    find.one(&txn).await?;
    deliveries::cancel_schedule(&txn, id, "the campaign was deleted", Utc::now()).await?;
    let result = schedule::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    if result.rows_affected == 0 {
        return Err(ApiError::not_found(format!(
            "scheduled message {id} not found"
        )));
    }
    Ok(axum::Json(Ack::new(
        "Scheduled message deleted successfully",
    )))
}

/// Pauses, resumes (`pending`), cancels, or marks a schedule as sent. `sent` (the seed's flow:
/// the client sent the message itself) ends any schedule, recurring ones too: nothing more is
/// sent, and it leaves `/pending`.
#[utoipa::path(
    put, path = "/api/scheduled-messages/{id}/status", tag = "scheduled messages", security(("bearer" = []), ("cookie" = [])),
    params(("id" = i32, Path, description = "scheduled message id")),
    request_body = StatusChange,
    responses(
        (status = 200, body = Envelope<ScheduledOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn update_status(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Json(body): Json<StatusChange>,
) -> ApiResult<axum::Json<Envelope<ScheduledOut>>> {
    let next = ScheduleStatus::parse(body.status.trim()).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "status {:?} must be one of pending, paused, cancelled, sent",
            body.status
        ))
    })?;
    let existing = find(&state, id).await?;
    let current = ScheduleStatus::parse(&existing.status).unwrap_or(ScheduleStatus::Pending);
    if current == next {
        return Ok(axum::Json(Envelope::ok(
            existing.into(),
            "Status unchanged",
        )));
    }
    if current.is_final() {
        return Err(ApiError::Conflict(format!(
            "scheduled message {id} is {current}; it cannot change any more"
        )));
    }
    let mut model: schedule::ActiveModel = existing.into();
    model.status = Set(next.as_str().into());
    // A person decided: the reason HeyDoc paused it (if it did) no longer stands.
    model.status_reason = Set(None);
    if next.is_final() {
        model.next_run_at = Set(None);
    }
    model.updated_at = Set(Utc::now());
    // Only the status moves; a concurrent change to the same row simply wins or loses whole.
    let txn = state.db.begin().await?;
    let updated = schedule::Entity::update(model)
        .filter(schedule::Column::Status.eq(current.as_str()))
        .exec(&txn)
        .await
        .map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => ApiError::Conflict(format!(
                "scheduled message {id} changed meanwhile; read it and try again"
            )),
            other => other.into(),
        })?;
    match next {
        ScheduleStatus::Pending => {
            deliveries::resume_schedule(&txn, id, Utc::now()).await?;
        }
        ScheduleStatus::Cancelled => {
            deliveries::cancel_schedule(&txn, id, "the campaign was cancelled", Utc::now()).await?;
        }
        // The seed's flow: the client sent it itself. Like a cancel, nothing more goes out
        // (a recurring schedule ends here).
        ScheduleStatus::Sent => {
            deliveries::cancel_schedule(&txn, id, "marked sent by the client", Utc::now()).await?;
        }
        ScheduleStatus::Paused => {}
    }
    txn.commit().await?;
    Ok(axum::Json(Envelope::ok(
        updated.into(),
        format!("Status changed to {next}"),
    )))
}

async fn find(state: &AppState, id: i32) -> ApiResult<schedule::Model> {
    schedule::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("scheduled message {id} not found")))
}

/// A create request that passed every check.
struct Plan {
    message: Option<String>,
    template: Option<serde_json::Value>,
    recipients: Vec<String>,
    tag_ids: Vec<i32>,
    scheduled_time: DateTime<Utc>,
    recurrence: Recurrence,
    timezone: String,
    end_time: Option<DateTime<Utc>>,
    max_occurrences: Option<i32>,
    first_run: DateTime<Utc>,
}

impl Plan {
    fn check(body: NewSchedule, now: DateTime<Utc>) -> ApiResult<Self> {
        let message = body.message.filter(|m| !m.is_empty());
        if let Some(text) = &message {
            validate::message_text("message", text)?;
            template::check_text(text)
                .map_err(|e| ApiError::validation(format!("message: {e}")))?;
        }
        let template = match body.template {
            Some(t) => {
                if t.name.trim().is_empty() || t.language.trim().is_empty() {
                    return Err(ApiError::validation("template needs a name and a language"));
                }
                if t.components
                    .as_ref()
                    .is_some_and(|c| !c.is_array() && !c.is_null())
                {
                    return Err(ApiError::validation("template.components must be an array"));
                }
                if let Some(components) = &t.components {
                    template::check(components)
                        .map_err(|e| ApiError::validation(format!("template: {e}")))?;
                }
                Some(serde_json::to_value(&t).map_err(|e| ApiError::Internal(e.to_string()))?)
            }
            None => None,
        };
        if message.is_none() && template.is_none() {
            return Err(ApiError::validation("give a message, a template, or both"));
        }
        if body.recipients.len() > MAX_RECIPIENTS {
            return Err(ApiError::validation(format!(
                "at most {MAX_RECIPIENTS} explicit recipients; use tag_ids for larger audiences"
            )));
        }
        let mut recipients = Vec::with_capacity(body.recipients.len());
        for r in &body.recipients {
            let phone =
                Phone::parse(r).map_err(|e| ApiError::validation(format!("recipients: {e}")))?;
            recipients.push(phone.into_string());
        }
        recipients.sort();
        recipients.dedup();
        let mut tag_ids = body.tag_ids;
        tag_ids.sort_unstable();
        tag_ids.dedup();
        if recipients.is_empty() && tag_ids.is_empty() {
            return Err(ApiError::validation(
                "the audience is empty: give recipients, tag_ids, or both",
            ));
        }
        let Timing {
            scheduled_time,
            recurrence,
            timezone,
            end_time,
            max_occurrences,
            first_run,
        } = Timing::check(
            &TimingRequest {
                scheduled_time: body.scheduled_time,
                recurrence: body.recurrence,
                timezone: body.timezone,
                end_time: body.end_time,
                max_occurrences: body.max_occurrences,
                message: None,
                recipients: Vec::new(),
                tag_ids: Vec::new(),
            },
            now,
        )?;
        Ok(Self {
            message,
            template,
            recipients,
            tag_ids,
            scheduled_time,
            recurrence,
            timezone,
            end_time,
            max_occurrences,
            first_run,
        })
    }
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

/// A schedule's timing that passed every check.
struct Timing {
    scheduled_time: DateTime<Utc>,
    recurrence: Recurrence,
    timezone: String,
    end_time: Option<DateTime<Utc>>,
    max_occurrences: Option<i32>,
    first_run: DateTime<Utc>,
}

impl Timing {
    fn check(body: &TimingRequest, now: DateTime<Utc>) -> ApiResult<Self> {
        let timezone = body.timezone.clone().unwrap_or_else(|| "UTC".into());
        let tz = parse_time_zone(timezone.trim())?;
        let recurrence = Recurrence::parse(body.recurrence.as_deref())?;
        let scheduled_time = parse_time("scheduled_time", &body.scheduled_time, tz)?;
        if scheduled_time < now - Duration::seconds(PAST_GRACE_SECS) {
            return Err(ApiError::validation(format!(
                "scheduled_time {} is in the past",
                scheduled_time.to_rfc3339()
            )));
        }
        let end_time = body
            .end_time
            .as_deref()
            .map(|t| parse_time("end_time", t, tz))
            .transpose()?;
        if let Some(n) = body.max_occurrences {
            if n < 1 {
                return Err(ApiError::validation("max_occurrences must be at least 1"));
            }
        }
        let first_run = recurrence
            .next_after(scheduled_time, tz, scheduled_time - Duration::seconds(1))
            .ok_or_else(|| {
                ApiError::validation("the recurrence never fires after scheduled_time")
            })?;
        if let Some(end) = end_time {
            if end < first_run {
                return Err(ApiError::validation(format!(
                    "end_time {} is before the first run {}",
                    end.to_rfc3339(),
                    first_run.to_rfc3339()
                )));
            }
        }
        Ok(Self {
            scheduled_time,
            recurrence,
            timezone: tz.name().to_string(),
            end_time,
            max_occurrences: body.max_occurrences,
            first_run,
        })
    }

    /// Every run, in order, within the end time and the occurrence limit.
    fn runs(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let tz = parse_time_zone(&self.timezone).ok();
        let limit = self
            .max_occurrences
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(0));
        std::iter::successors(Some(self.first_run), move |&last| {
            tz.and_then(|tz| self.recurrence.next_after(self.scheduled_time, tz, last))
        })
        .take_while(move |t| self.end_time.is_none_or(|end| *t <= end))
        .take(limit)
    }
}

/// RFC 3339, or a local date-time without offset read in `tz`.
fn parse_time(field: &str, value: &str, tz: Tz) -> ApiResult<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(resolve_local(tz, local));
        }
    }
    Err(ApiError::validation(format!(
        "{field} {value:?} is not a date-time such as \"2030-01-16T09:00:00Z\""
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> NewSchedule {
        serde_json::from_value(json).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn accepts_the_seed_body() {
        let plan = Plan::check(
            body(
                serde_json::json!({"message":"Good morning!","recipients":["1234567890"],
                "scheduled_time":"2030-01-16T09:00:00Z","recurrence":"daily"}),
            ),
            now(),
        )
        .unwrap();
        assert_eq!(
            plan.first_run,
            "2030-01-16T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn local_times_follow_the_time_zone() {
        let plan = Plan::check(
            body(
                serde_json::json!({"message":"hi","recipients":["1234567890"],
                "scheduled_time":"2030-01-16T09:00","timezone":"Asia/Kolkata"}),
            ),
            now(),
        )
        .unwrap();
        assert_eq!(
            plan.scheduled_time,
            "2030-01-16T03:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        let base = serde_json::json!({"message":"hi","recipients":["1234567890"],"scheduled_time":"2030-01-16T09:00:00Z"});
        let cases = [
            (
                "scheduled_time",
                serde_json::json!("2029-01-01T00:00:00Z"),
                "in the past",
            ),
            ("timezone", serde_json::json!("Mars/Olympus"), "IANA"),
            ("recurrence", serde_json::json!("0 25 * * *"), "cron"),
            ("recipients", serde_json::json!([]), "audience is empty"),
            ("message", serde_json::json!("x".repeat(4097)), "4096"),
            (
                "end_time",
                serde_json::json!("2030-01-01T00:00:00Z"),
                "before the first run",
            ),
        ];
        for (field, value, expected) in cases {
            let mut b = base.clone();
            b[field] = value;
            let err = Plan::check(body(b), now()).err().expect(field).to_string();
            assert!(err.contains(expected), "{field}: {err}");
        }
    }
}
