//! Schedules (the API's scheduled messages, the dashboard's campaigns): creating, reading,
//! previewing, pausing, cancelling, deleting.

mod cost;
mod preview;
mod shapes;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use heydoc_domain::schedule::{transition, Audience, Timing, Transition};
use heydoc_domain::{codes, template, validate, MessageStatus, ScheduleStatus};
use heydoc_store::{deliveries, occurrences, schedules as store};

pub use cost::{estimate, CategoryCost, EstimateOut, EstimateRequest, RunCost};
pub use preview::preview;
pub use shapes::*;

use crate::auth::AuthUser;
use crate::core::tags::ensure_exist;
use crate::error::{ApiError, ApiResult};
use crate::routes::page_size;
use crate::state::AppState;

/// Occurrences a schedule's detail shows.
const RECENT_OCCURRENCES: u64 = 20;

/// A page of schedules and the `X-Next-Cursor` of the next (none on the last page).
pub type Page = (Vec<ScheduledOut>, Option<String>);

/// Schedules newest first, a page at a time (`cursor`: the previous page's last id).
pub async fn list(state: &AppState, params: PageParams) -> ApiResult<Page> {
    let limit = page_size(params.limit, 200, 500);
    let before = params.cursor_id()?;
    let rows = store::all(&state.db, before, limit).await?;
    Ok(paged(rows, limit, |s| s.id.to_string()))
}

/// Pending schedules soonest first, a page at a time (`cursor`: where the previous page
/// ended in that order).
pub async fn pending(state: &AppState, params: PendingPageParams) -> ApiResult<Page> {
    let limit = page_size(params.limit, 200, 500);
    let after = params.position()?;
    let rows = store::pending(&state.db, after, limit).await?;
    Ok(paged(rows, limit, PendingPageParams::after))
}

fn paged(
    rows: Vec<heydoc_store::schedules::Schedule>,
    limit: u64,
    cursor: impl Fn(&heydoc_store::schedules::Schedule) -> String,
) -> Page {
    let next = (rows.len() as u64 == limit)
        .then(|| rows.last().map(cursor))
        .flatten();
    (rows.into_iter().map(ScheduledOut::from).collect(), next)
}

/// How the latest run of each of these schedules is doing (a schedule that never ran has
/// none): the campaign list shows it.
pub async fn latest_run_counts(
    state: &AppState,
    schedule_ids: &[i32],
) -> ApiResult<HashMap<i32, DeliveryCounts>> {
    let latest = occurrences::latest_of(&state.db, schedule_ids).await?;
    let runs: HashMap<i64, i32> = latest.iter().map(|(s, o)| (*o, *s)).collect();
    let ids: Vec<i64> = runs.keys().copied().collect();
    let mut out: HashMap<i32, DeliveryCounts> = HashMap::new();
    for (occ, status, n) in occurrences::status_counts(&state.db, &ids).await? {
        if let Some(schedule) = runs.get(&occ) {
            out.entry(*schedule).or_default().add(&status, n);
        }
    }
    Ok(out)
}

/// One schedule with its last occurrences and their deliveries' counts.
pub async fn get(state: &AppState, id: i32) -> ApiResult<ScheduledDetail> {
    let schedule = store::get(&state.db, id).await?;
    let recent = occurrences::recent(&state.db, id, RECENT_OCCURRENCES).await?;
    let ids: Vec<i64> = recent.iter().map(|o| o.id).collect();
    let mut by_occurrence: HashMap<i64, DeliveryCounts> = HashMap::new();
    for (occ, status, n) in occurrences::status_counts(&state.db, &ids).await? {
        by_occurrence.entry(occ).or_default().add(&status, n);
    }
    let mut costs = cost::of_runs(state, &ids).await?;
    let occurrences: Vec<OccurrenceOut> = recent
        .into_iter()
        .map(|o| OccurrenceOut {
            counts: by_occurrence.remove(&o.id).unwrap_or_default(),
            cost: costs.remove(&o.id).unwrap_or_else(|| RunCost {
                currency: state.settings.pricing.currency.clone(),
                ..RunCost::default()
            }),
            id: o.id,
            fire_at: o.fire_at,
            state: o.state,
            planned: o.planned,
        })
        .collect();
    let mut schedule: ScheduledOut = schedule.into();
    // A run still sending (or fanning out) makes a live campaign "running".
    let sending = occurrences
        .iter()
        .any(|o: &OccurrenceOut| o.counts.queued > 0 || o.state == "fanning_out");
    if sending && schedule.state != "cancelled" && schedule.state != "paused" {
        schedule.state = "running".into();
    }
    Ok(ScheduledDetail {
        schedule,
        occurrences,
    })
}

impl DeliveryCounts {
    fn add(&mut self, status: &str, n: i64) {
        use MessageStatus as S;
        match MessageStatus::parse(status) {
            Some(S::Queued | S::Sending | S::Retrying) => self.queued += n,
            Some(S::Sent) => self.sent += n,
            Some(S::Delivered) => self.delivered += n,
            Some(S::Read) => self.read += n,
            Some(S::Failed) => self.failed += n,
            Some(S::Skipped) => self.skipped += n,
            Some(S::Unknown | S::Received) | None => self.unknown += n,
        }
    }
}

pub async fn deliveries_of(
    state: &AppState,
    id: i32,
    params: DeliveryParams,
) -> ApiResult<Vec<DeliveryOut>> {
    store::get(&state.db, id).await?;
    let rows = occurrences::deliveries(
        &state.db,
        id,
        params.occurrence_id,
        params.before,
        page_size(params.limit, 100, 500),
    )
    .await?;
    let ids: Vec<i32> = rows.iter().map(|m| m.contact_id).collect();
    let names: HashMap<i32, String> = heydoc_store::contacts::by_ids(&state.db, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    Ok(rows
        .into_iter()
        .map(|m| DeliveryOut {
            id: m.id,
            occurrence_id: m.occurrence_id.unwrap_or_default(),
            name: names.get(&m.contact_id).cloned().unwrap_or_default(),
            phone: m.receiver_phone,
            status: m.status,
            error_code: m.last_error_code,
            error_reason: m.last_error_reason,
            updated_at: m.updated_at,
        })
        .collect())
}

pub async fn create(state: &AppState, me: &AuthUser, body: NewSchedule) -> ApiResult<ScheduledOut> {
    let from = body
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string);
    if let Some(from) = &from {
        crate::core::numbers::usable(state, from).await?;
    }
    if let Some(t) = &body.template {
        t.check_name()?;
        crate::core::templates::check(state, from.as_deref(), t).await?;
    }
    let media = match &body.media {
        None => None,
        Some(_) if body.template.is_some() => {
            return Err(ApiError::validation(
                "give a template or a file (media), not both",
            ))
        }
        Some(spec) => {
            let number = from
                .clone()
                .unwrap_or_else(|| state.business_number().to_string());
            let caption = body.message.clone().unwrap_or_default();
            let (_, payload) =
                crate::core::uploads::payload_for(state, spec, &number, &caption).await?;
            payload.get("media").cloned()
        }
    };
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if name.as_ref().is_some_and(|n| n.chars().count() > 120) {
        return Err(ApiError::field(
            "name",
            codes::TOO_LONG,
            "name: at most 120 characters",
        ));
    }
    let estimate = cost::EstimateRequest {
        recipients: body.recipients.clone(),
        tag_ids: body.tag_ids.clone(),
        template: body.template.clone(),
        from: from.clone(),
    };
    let plan = Plan::check(body, Utc::now())?;
    ensure_exist(&state.db, &plan.audience.tag_ids).await?;
    let warnings = limit_warnings(state, estimate, plan.daily_limit).await?;
    let first_run = plan.timing.first_run;
    let new = store::NewSchedule {
        name,
        message: plan.message,
        template: plan.template,
        recipients: plan.audience.recipients,
        tag_ids: plan.audience.tag_ids,
        scheduled_time: plan.timing.scheduled_time,
        recurrence: plan.timing.recurrence.to_stored(),
        timezone: plan.timing.timezone,
        end_time: plan.timing.end_time,
        max_occurrences: plan.timing.max_occurrences,
        sender_number: from,
        daily_limit: plan.daily_limit,
        media,
        first_run,
        local_anchor: plan.timing.local_anchor.map(|t| {
            t.format(heydoc_domain::schedule::LOCAL_ANCHOR_FORMAT)
                .to_string()
        }),
        created_by: me.username.clone(),
        trace_context: heydoc_telemetry::propagation::traceparent_of(&tracing::Span::current()),
    };
    let created = store::insert(&state.db, new, Utc::now()).await?;
    tracing::info!(schedule_id = created.id, next_run_at = %first_run, "schedule created");
    if let Some(wake) = &state.scheduler_wake {
        wake.notify_waiters();
    }
    let mut out = ScheduledOut::from(created);
    out.warnings = warnings;
    Ok(out)
}

/// The estimate's warning that the audience is larger than the account's messaging limit,
/// unless the campaign is spread over days within it (`daily_limit` at most the limit).
async fn limit_warnings(
    state: &AppState,
    request: cost::EstimateRequest,
    daily_limit: Option<i32>,
) -> ApiResult<Vec<String>> {
    let estimate = match cost::estimate(state, request).await {
        Ok(e) => e,
        // Nobody reachable now (a tag filled later) is not the creation's error.
        Err(ApiError::Validation(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let within = matches!((daily_limit, estimate.limit), (Some(d), Some(l)) if i64::from(d) <= l);
    if !estimate.exceeds_limit || within {
        return Ok(Vec::new());
    }
    Ok(vec![format!(
        "{} recipients is more than the account's messaging limit of {} people a day: Meta refuses the rest; spread the campaign over days (daily_limit at most {})",
        estimate.audience,
        estimate.limit.unwrap_or_default(),
        estimate.limit.unwrap_or_default()
    )])
}

pub async fn delete(state: &AppState, id: i32) -> ApiResult<()> {
    let txn = heydoc_store::begin(&state.db).await?;
    store::delete(&txn, id, "the campaign was deleted", Utc::now()).await?;
    heydoc_store::commit(txn).await?;
    Ok(())
}

/// The schedule after the change, and whether anything changed.
pub async fn update_status(
    state: &AppState,
    id: i32,
    body: StatusChange,
) -> ApiResult<(ScheduledOut, Option<ScheduleStatus>)> {
    let next = ScheduleStatus::parse(body.status.trim()).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "status {:?} must be one of pending, paused, cancelled, sent",
            body.status
        ))
    })?;
    let existing = store::get(&state.db, id).await?;
    let current = ScheduleStatus::parse(&existing.status).unwrap_or(ScheduleStatus::Pending);
    let (from, to) = match transition(current, next)
        .map_err(|e| ApiError::Conflict(format!("scheduled message {id} {e}")))?
    {
        Transition::Unchanged => return Ok((existing.into(), None)),
        Transition::Move { from, to } => (from, to),
    };
    let now = Utc::now();
    // Only the status moves; a concurrent change to the same row simply wins or loses whole.
    let txn = heydoc_store::begin(&state.db).await?;
    let paused_at = existing.paused_at;
    let updated = store::set_status(&txn, existing, from, to, now).await?;
    match to {
        ScheduleStatus::Pending => {
            deliveries::resume_schedule(&txn, id, paused_at, now).await?;
        }
        ScheduleStatus::Cancelled => {
            deliveries::cancel_schedule(&txn, id, "the campaign was cancelled", now).await?;
        }
        // The seed's flow: the client sent it itself. Like a cancel, nothing more goes out
        // (a recurring schedule ends here).
        ScheduleStatus::Sent => {
            deliveries::cancel_schedule(&txn, id, "marked sent by the client", now).await?;
        }
        ScheduleStatus::Paused => {}
    }
    heydoc_store::commit(txn).await?;
    Ok((updated.into(), Some(to)))
}

/// A create request that passed every check.
struct Plan {
    daily_limit: Option<i32>,
    message: Option<String>,
    template: Option<serde_json::Value>,
    audience: Audience,
    timing: Timing,
}

impl Plan {
    fn check(body: NewSchedule, now: DateTime<Utc>) -> ApiResult<Self> {
        let message = body.message.clone().filter(|m| !m.is_empty());
        if let Some(text) = &message {
            validate::message_text("message", text)?;
            template::check_text(text).map_err(|e| {
                ApiError::field(
                    "message",
                    codes::INVALID_PLACEHOLDER,
                    format!("message: {e}"),
                )
            })?;
        }
        let template = match &body.template {
            Some(t) => {
                t.check_name()?;
                if t.components
                    .as_ref()
                    .is_some_and(|c| !c.is_array() && !c.is_null())
                {
                    return Err(ApiError::field(
                        "template",
                        codes::TEMPLATE_UNUSABLE,
                        "template.components must be an array",
                    ));
                }
                if let Some(components) = &t.components {
                    template::check(components).map_err(|e| {
                        ApiError::field(
                            "template",
                            codes::TEMPLATE_UNUSABLE,
                            format!("template: {e}"),
                        )
                    })?;
                }
                Some(serde_json::to_value(t).map_err(|e| ApiError::Internal(e.to_string()))?)
            }
            None => None,
        };
        if message.is_none() && template.is_none() && body.media.is_none() {
            return Err(ApiError::field(
                "message",
                codes::EMPTY_MESSAGE,
                "give a message, a template, or both",
            ));
        }
        let audience = Audience::check(&body.recipients, body.tag_ids.clone())?;
        let timing = Timing::check(body.timing(), now)?;
        if body
            .daily_limit
            .is_some_and(|n| !(1..=10_000_000).contains(&n))
        {
            return Err(ApiError::field(
                "daily_limit",
                codes::OUT_OF_RANGE,
                "daily_limit must be between 1 and 10000000 deliveries a day",
            ));
        }
        Ok(Self {
            daily_limit: body.daily_limit,
            message,
            template,
            audience,
            timing,
        })
    }
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
            plan.timing.first_run,
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
            plan.timing.scheduled_time,
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
