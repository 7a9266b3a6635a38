//! The rules of a schedule (the API's "scheduled message", the dashboard's "campaign"): when
//! it runs, who it reaches, and how its status may change.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::recurrence::{parse_time_zone, resolve_local};
use crate::{codes, Invalid, Phone, Recurrence, ScheduleStatus};

/// How far in the past a `scheduled_time` may be (clock skew between client and server).
const PAST_GRACE_SECS: i64 = 60;
/// The most explicit recipients a schedule takes; larger audiences go by tag.
pub const MAX_RECIPIENTS: usize = 10_000;

/// When a schedule runs, as a client wrote it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimingInput<'a> {
    /// RFC 3339, or a local date-time without offset read in `timezone`.
    pub scheduled_time: &'a str,
    pub recurrence: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub end_time: Option<&'a str>,
    pub max_occurrences: Option<i32>,
}

/// A schedule's timing that passed every check.
#[derive(Debug, Clone)]
pub struct Timing {
    pub scheduled_time: DateTime<Utc>,
    pub recurrence: Recurrence,
    /// The IANA name, as `chrono-tz` spells it.
    pub timezone: String,
    pub end_time: Option<DateTime<Utc>>,
    pub max_occurrences: Option<i32>,
    pub first_run: DateTime<Utc>,
    /// `scheduled_time` as the local wall-clock time it was written in (no offset given):
    /// every run keeps its time of day, even when the first fell in a daylight-saving gap.
    pub local_anchor: Option<NaiveDateTime>,
}

impl Timing {
    pub fn check(input: TimingInput<'_>, now: DateTime<Utc>) -> Result<Self, Invalid> {
        let tz = parse_time_zone(input.timezone.unwrap_or("UTC").trim())?;
        let recurrence = Recurrence::parse(input.recurrence)?;
        let (scheduled_time, local_anchor) =
            parse_time_local("scheduled_time", input.scheduled_time, tz)?;
        if scheduled_time < now - Duration::seconds(PAST_GRACE_SECS) {
            return Err(Invalid::at(
                "scheduled_time",
                codes::IN_THE_PAST,
                format!(
                    "scheduled_time {} is in the past",
                    scheduled_time.to_rfc3339()
                ),
            ));
        }
        let end_time = input
            .end_time
            .map(|t| parse_time("end_time", t, tz))
            .transpose()?;
        if input.max_occurrences.is_some_and(|n| n < 1) {
            return Err(Invalid::at(
                "max_occurrences",
                codes::INVALID_END,
                "max_occurrences must be at least 1",
            ));
        }
        let first_run = recurrence
            .next_after_local(
                scheduled_time,
                local_anchor,
                tz,
                scheduled_time - Duration::seconds(1),
            )
            .ok_or_else(|| {
                Invalid::at(
                    "recurrence",
                    codes::INVALID_RECURRENCE,
                    "the recurrence never fires after scheduled_time",
                )
            })?;
        if let Some(end) = end_time {
            if end < first_run {
                return Err(Invalid::at(
                    "end_time",
                    codes::INVALID_END,
                    format!(
                        "end_time {} is before the first run {}",
                        end.to_rfc3339(),
                        first_run.to_rfc3339()
                    ),
                ));
            }
        }
        Ok(Self {
            scheduled_time,
            recurrence,
            timezone: tz.name().to_string(),
            end_time,
            max_occurrences: input.max_occurrences,
            first_run,
            local_anchor,
        })
    }

    /// Every run, in order, within the end time and the occurrence limit.
    pub fn runs(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let tz = parse_time_zone(&self.timezone).ok();
        let limit = self
            .max_occurrences
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(0));
        std::iter::successors(Some(self.first_run), move |&last| {
            tz.and_then(|tz| {
                self.recurrence
                    .next_after_local(self.scheduled_time, self.local_anchor, tz, last)
            })
        })
        .take_while(move |t| self.end_time.is_none_or(|end| *t <= end))
        .take(limit)
    }
}

/// RFC 3339, or a local date-time without offset read in `tz`.
pub fn parse_time(field: &str, value: &str, tz: Tz) -> Result<DateTime<Utc>, Invalid> {
    parse_time_local(field, value, tz).map(|(t, _)| t)
}

/// How a local anchor is stored (`scheduled_messages.local_anchor`).
pub const LOCAL_ANCHOR_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// As `parse_time`, with the local wall-clock time when the value had no offset.
pub fn parse_time_local(
    field: &str,
    value: &str,
    tz: Tz,
) -> Result<(DateTime<Utc>, Option<NaiveDateTime>), Invalid> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok((t.with_timezone(&Utc), None));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(value, format) {
            return Ok((resolve_local(tz, local), Some(local)));
        }
    }
    Err(Invalid::at(
        field,
        codes::INVALID_TIME,
        format!("{field} {value:?} is not a date-time such as \"2030-01-16T09:00:00Z\""),
    ))
}

/// Who a schedule reaches: explicit phones (normalised, sorted, unique) and tag ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    pub recipients: Vec<String>,
    pub tag_ids: Vec<i32>,
}

impl Audience {
    pub fn check(recipients: &[String], mut tag_ids: Vec<i32>) -> Result<Self, Invalid> {
        if recipients.len() > MAX_RECIPIENTS {
            return Err(Invalid::at(
                "recipients",
                codes::TOO_MANY_RECIPIENTS,
                format!(
                    "at most {MAX_RECIPIENTS} explicit recipients; use tag_ids for larger audiences"
                ),
            ));
        }
        let mut phones = Vec::with_capacity(recipients.len());
        for (i, r) in recipients.iter().enumerate() {
            let phone = Phone::parse(r).map_err(|e| {
                Invalid {
                    message: format!("recipients: {e}"),
                    ..e
                }
                .in_field(format!("recipients[{i}]"))
            })?;
            phones.push(phone.into_string());
        }
        phones.sort();
        phones.dedup();
        tag_ids.sort_unstable();
        tag_ids.dedup();
        if phones.is_empty() && tag_ids.is_empty() {
            return Err(Invalid::at(
                "recipients",
                codes::EMPTY_AUDIENCE,
                "the audience is empty: give recipients, tag_ids, or both",
            ));
        }
        Ok(Self {
            recipients: phones,
            tag_ids,
        })
    }
}

/// What a status change asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Already there: nothing to do.
    Unchanged,
    /// Move from `from` to `to`.
    Move {
        from: ScheduleStatus,
        to: ScheduleStatus,
    },
}

/// Whether a schedule in `current` may move to `next`: `cancelled` and `sent` are final.
pub fn transition(current: ScheduleStatus, next: ScheduleStatus) -> Result<Transition, Invalid> {
    if current == next {
        return Ok(Transition::Unchanged);
    }
    if current.is_final() {
        return Err(Invalid::new(format!(
            "is {current}; it cannot change any more"
        )));
    }
    Ok(Transition::Move {
        from: current,
        to: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn timing(scheduled_time: &str) -> TimingInput<'_> {
        TimingInput {
            scheduled_time,
            ..Default::default()
        }
    }

    #[test]
    fn local_times_follow_the_time_zone() {
        let t = Timing::check(
            TimingInput {
                timezone: Some("Asia/Kolkata"),
                ..timing("2030-01-16T09:00")
            },
            now(),
        )
        .unwrap();
        assert_eq!(t.scheduled_time.to_rfc3339(), "2030-01-16T03:30:00+00:00");
    }

    #[test]
    fn refuses_times_that_cannot_run() {
        let past = Timing::check(timing("2029-01-01T00:00:00Z"), now()).unwrap_err();
        assert!(past.message.contains("in the past"), "{past}");
        assert_eq!(
            (past.code, past.field.as_deref()),
            (codes::IN_THE_PAST, Some("scheduled_time"))
        );
        let end = Timing::check(
            TimingInput {
                end_time: Some("2030-01-01T00:00:00Z"),
                ..timing("2030-01-16T09:00:00Z")
            },
            now(),
        )
        .unwrap_err();
        assert!(end.message.contains("before the first run"), "{end}");
        assert_eq!(
            (end.code, end.field.as_deref()),
            (codes::INVALID_END, Some("end_time"))
        );
    }

    #[test]
    fn runs_stop_at_the_limit() {
        let t = Timing::check(
            TimingInput {
                recurrence: Some("daily"),
                max_occurrences: Some(3),
                ..timing("2030-01-16T09:00:00Z")
            },
            now(),
        )
        .unwrap();
        assert_eq!(t.runs().count(), 3);
    }

    #[test]
    fn an_audience_is_normalised_and_never_empty() {
        let a = Audience::check(
            &["+1 415 555 0123".into(), "14155550123".into()],
            vec![3, 3],
        )
        .unwrap();
        assert_eq!(a.recipients, vec!["14155550123".to_string()]);
        assert_eq!(a.tag_ids, vec![3]);
        assert!(Audience::check(&[], vec![]).is_err());
    }

    #[test]
    fn final_statuses_stay_final() {
        use ScheduleStatus::*;
        assert_eq!(transition(Paused, Paused), Ok(Transition::Unchanged));
        assert!(transition(Cancelled, Pending).is_err());
        assert!(transition(Pending, Sent).is_ok());
    }
}
