//! What a schedule would do before it is saved: its next runs, and its message as the first
//! recipient would read it.

use chrono::Utc;
use heydoc_domain::recurrence::parse_time_zone;
use heydoc_domain::schedule::Timing;
use heydoc_domain::{template, Phone};

use super::{PreviewOut, SampleOut, TimingRequest};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How many runs a preview shows.
const PREVIEW_RUNS: usize = 5;

/// Checks a schedule's timing as creating it would and answers with its next runs, saving
/// nothing.
pub async fn preview(state: &AppState, body: TimingRequest) -> ApiResult<PreviewOut> {
    let timing = Timing::check(body.timing(), Utc::now())?;
    let sample = match body.message.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(text) => {
            template::check_text(text)
                .map_err(|e| ApiError::validation(format!("message: {e}")))?;
            sample(state, text, &body.recipients, &body.tag_ids).await?
        }
        None => None,
    };
    let tz = parse_time_zone(&timing.timezone)?;
    let next_runs = timing.runs().take(PREVIEW_RUNS).collect::<Vec<_>>();
    let next_runs_local = next_runs
        .iter()
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
        .collect();
    Ok(PreviewOut {
        timezone: timing.timezone,
        next_runs,
        next_runs_local,
        sample,
    })
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
