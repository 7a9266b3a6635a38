//! How a schedule repeats, and when it fires next.
//!
//! Schedules are written in their own IANA time zone ("every day at 09:00 in Asia/Kolkata") and
//! stored and compared in UTC. A local time that does not exist (the hour skipped when clocks go
//! forward) fires at the first valid instant after the gap; a local time that happens twice (the
//! hour repeated when clocks go back) fires once, at its first occurrence.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::{codes, Invalid};

#[derive(Debug, Clone)]
pub enum Recurrence {
    /// Fires once, at the scheduled time.
    Once,
    Daily,
    Weekly,
    /// Same day of the month as the first run; in shorter months, the month's last day.
    Monthly,
    /// A 5-field cron expression (minute hour day-of-month month day-of-week) with Vixie
    /// semantics: when both day fields are restricted, either may match.
    Cron(Box<CronRule>),
}

#[derive(Debug, Clone)]
pub struct CronRule {
    pub expression: String,
    cron: Cron,
}

impl Recurrence {
    /// Parses the API's `recurrence` field: `null`, `"none"`, `"daily"`, `"weekly"`, `"monthly"`
    /// or a 5-field cron expression.
    pub fn parse(value: Option<&str>) -> Result<Self, Invalid> {
        let Some(raw) = value.map(str::trim) else {
            return Ok(Self::Once);
        };
        match raw.to_ascii_lowercase().as_str() {
            "" | "none" => return Ok(Self::Once),
            "daily" => return Ok(Self::Daily),
            "weekly" => return Ok(Self::Weekly),
            "monthly" => return Ok(Self::Monthly),
            _ => {}
        }
        let fields = raw.split_whitespace().count();
        if fields != 5 {
            return Err(Invalid::at("recurrence", codes::INVALID_RECURRENCE, format!(
                "recurrence {raw:?} is not one of none, daily, weekly, monthly, and not a cron expression \
                 of 5 fields (minute hour day-of-month month day-of-week); it has {fields}"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(raw)
            .map_err(|e| {
                Invalid::at(
                    "recurrence",
                    codes::INVALID_RECURRENCE,
                    format!("recurrence {raw:?} is not a valid cron expression: {e}"),
                )
            })?;
        Ok(Self::Cron(Box::new(CronRule {
            expression: raw.to_string(),
            cron,
        })))
    }

    /// The value stored in the database and shown by the API (`None` for one-off schedules).
    pub fn to_stored(&self) -> Option<String> {
        match self {
            Recurrence::Once => None,
            Recurrence::Daily => Some("daily".into()),
            Recurrence::Weekly => Some("weekly".into()),
            Recurrence::Monthly => Some("monthly".into()),
            Recurrence::Cron(rule) => Some(rule.expression.clone()),
        }
    }

    pub fn is_recurring(&self) -> bool {
        !matches!(self, Recurrence::Once)
    }

    /// The first fire time strictly after `after`, for a schedule whose first run was planned at
    /// `anchor`, in time zone `tz`. `None` when the schedule never fires again.
    pub fn next_after(
        &self,
        anchor: DateTime<Utc>,
        tz: Tz,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.next_after_local(anchor, None, tz, after)
    }

    /// As `next_after`, for a schedule whose first run was written as the wall-clock time
    /// `local` in `tz` (no offset). When that time fell in a daylight-saving gap, `anchor` is
    /// the end of the gap; the later runs still keep `local`'s time of day, so one gap does
    /// not move a daily 02:30 to 03:00 for good.
    pub fn next_after_local(
        &self,
        anchor: DateTime<Utc>,
        local: Option<NaiveDateTime>,
        tz: Tz,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if anchor > after {
            return match self {
                // A cron schedule's first run is its first match at or after the anchor.
                Recurrence::Cron(rule) => rule.next_at_or_after(anchor, tz),
                _ => Some(anchor),
            };
        }
        let local_anchor = local.unwrap_or_else(|| anchor.with_timezone(&tz).naive_local());
        match self {
            Recurrence::Once => None,
            Recurrence::Daily => step_days(local_anchor, tz, after, 1),
            Recurrence::Weekly => step_days(local_anchor, tz, after, 7),
            Recurrence::Monthly => step_months(local_anchor, tz, after),
            Recurrence::Cron(rule) => rule.next_at_or_after(after + Duration::seconds(1), tz),
        }
    }
}

impl CronRule {
    fn next_at_or_after(&self, from: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = from.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Parses an IANA time zone name (`"Asia/Kolkata"`).
pub fn parse_time_zone(name: &str) -> Result<Tz, Invalid> {
    name.parse::<Tz>().map_err(|_| {
        Invalid::at(
            "timezone",
            codes::UNKNOWN_TIME_ZONE,
            format!("timezone {name:?} is not an IANA time zone name such as \"Europe/London\""),
        )
    })
}

/// The UTC instant of a local wall-clock time: the first of two when the hour repeats, the end
/// of the gap when it is skipped.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    // Gaps are at most a few hours; step a minute at a time to the first time that exists.
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => {
                probe = (probe + Duration::minutes(1)).with_second(0);
            }
        }
    }
    // No zone skips a whole day of wall-clock time; treat the local time as UTC if one did.
    Utc.from_utc_datetime(&local)
}

trait WithSecond {
    fn with_second(self, s: u32) -> Self;
}

impl WithSecond for NaiveDateTime {
    fn with_second(self, s: u32) -> Self {
        chrono::Timelike::with_second(&self, s).unwrap_or(self)
    }
}

fn step_days(
    anchor: NaiveDateTime,
    tz: Tz,
    after: DateTime<Utc>,
    step: i64,
) -> Option<DateTime<Utc>> {
    let after_local = after.with_timezone(&tz).naive_local();
    let whole_steps = (after_local.date() - anchor.date())
        .num_days()
        .div_euclid(step);
    // Start a step early: the local-date estimate can be off by one around DST changes.
    let mut n = (whole_steps - 1).max(0);
    loop {
        let candidate = resolve_local(tz, anchor + Duration::days(n * step));
        if candidate > after {
            return Some(candidate);
        }
        n += 1;
    }
}

fn step_months(anchor: NaiveDateTime, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let after_local = after.with_timezone(&tz).naive_local();
    let months_between = (after_local.year() - anchor.year()) * 12 + after_local.month() as i32
        - anchor.month() as i32;
    let mut n = (months_between - 1).max(0);
    loop {
        let date = nth_month_clamped(anchor.date(), n)?;
        let candidate = resolve_local(tz, date.and_time(anchor.time()));
        if candidate > after {
            return Some(candidate);
        }
        n += 1;
    }
}

/// The anchor's day of month, `n` months later, clamped to that month's last day.
fn nth_month_clamped(anchor: NaiveDate, n: i32) -> Option<NaiveDate> {
    let month0 = anchor.month0() as i32 + n;
    let year = anchor.year() + month0.div_euclid(12);
    let month = month0.rem_euclid(12) as u32 + 1;
    let mut day = anchor.day();
    loop {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
            return Some(date);
        }
        if day <= 28 {
            return None;
        }
        day -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_keywords_and_cron() {
        assert!(matches!(Recurrence::parse(None).unwrap(), Recurrence::Once));
        assert!(matches!(
            Recurrence::parse(Some("none")).unwrap(),
            Recurrence::Once
        ));
        assert!(matches!(
            Recurrence::parse(Some("Daily")).unwrap(),
            Recurrence::Daily
        ));
        assert!(matches!(
            Recurrence::parse(Some("0 9 * * 1-5")).unwrap(),
            Recurrence::Cron(_)
        ));
        assert!(Recurrence::parse(Some("0 9 * *")).is_err());
        assert!(Recurrence::parse(Some("61 9 * * *")).is_err());
        assert!(Recurrence::parse(Some("every tuesday")).is_err());
    }

    #[test]
    fn daily_keeps_wall_clock_time_across_dst() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 09:00 EST on 2026-03-07 is 14:00 UTC; after the change on 03-08 it is 13:00 UTC.
        let anchor = utc("2026-03-07T14:00:00Z");
        let next = Recurrence::Daily.next_after(anchor, tz, anchor).unwrap();
        assert_eq!(next, utc("2026-03-08T13:00:00Z"));
    }

    #[test]
    fn skipped_hour_fires_at_end_of_gap() {
        let tz: Tz = "Europe/London".parse().unwrap();
        // 01:30 local does not exist on 2026-03-29: clocks jump from 01:00 to 02:00 BST.
        let anchor = utc("2026-03-28T01:30:00Z");
        let next = Recurrence::Daily.next_after(anchor, tz, anchor).unwrap();
        assert_eq!(next, utc("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn a_first_run_in_a_gap_does_not_move_the_later_runs() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 02:30 on 2026-03-08 does not exist in New York (02:00 -> 03:00): the first run is
        // at 03:00 EDT (07:00 UTC), the next days at 02:30 EDT (06:30 UTC) as written.
        let local =
            NaiveDateTime::parse_from_str("2026-03-08T02:30:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        let anchor = resolve_local(tz, local);
        assert_eq!(anchor, utc("2026-03-08T07:00:00Z"));
        let next = Recurrence::Daily
            .next_after_local(anchor, Some(local), tz, anchor)
            .unwrap();
        assert_eq!(next, utc("2026-03-09T06:30:00Z"));
        let after = Recurrence::Weekly
            .next_after_local(anchor, Some(local), tz, anchor)
            .unwrap();
        assert_eq!(after, utc("2026-03-15T06:30:00Z"));
        // Without the written time, the gap's end (03:00) would be kept for good.
        assert_eq!(
            Recurrence::Daily.next_after(anchor, tz, anchor).unwrap(),
            utc("2026-03-09T07:00:00Z")
        );
    }

    #[test]
    fn monthly_clamps_to_month_end_and_leap_day() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let anchor = utc("2028-01-31T03:30:00Z"); // 09:00 IST
        let feb = Recurrence::Monthly.next_after(anchor, tz, anchor).unwrap();
        assert_eq!(feb, utc("2028-02-29T03:30:00Z"));
        let mar = Recurrence::Monthly.next_after(anchor, tz, feb).unwrap();
        assert_eq!(mar, utc("2028-03-31T03:30:00Z"));
    }

    #[test]
    fn once_fires_only_at_anchor() {
        let tz: Tz = "UTC".parse().unwrap();
        let anchor = utc("2030-01-01T00:00:00Z");
        assert_eq!(
            Recurrence::Once.next_after(anchor, tz, utc("2029-01-01T00:00:00Z")),
            Some(anchor)
        );
        assert_eq!(Recurrence::Once.next_after(anchor, tz, anchor), None);
    }

    #[test]
    fn cron_uses_vixie_or_for_day_fields() {
        let tz: Tz = "UTC".parse().unwrap();
        // The 13th of the month or any Friday.
        let rule = Recurrence::parse(Some("0 12 13 * 5")).unwrap();
        let from = utc("2026-11-01T00:00:00Z");
        let first = rule.next_after(from, tz, from).unwrap();
        assert_eq!(first, utc("2026-11-06T12:00:00Z")); // a Friday before the 13th
    }

    /// (rule, zone, first run in UTC, after, expected next) across month ends, leap years and
    /// DST changes in America/New_York, Europe/London and Asia/Kolkata.
    #[test]
    fn recurrence_table() {
        let table: &[(&str, &str, &str, &str, &str)] = &[
            // New York, spring forward (2026-03-08 02:00 -> 03:00): 09:00 stays 09:00.
            (
                "daily",
                "America/New_York",
                "2026-03-07T14:00:00Z",
                "2026-03-07T14:00:00Z",
                "2026-03-08T13:00:00Z",
            ),
            // 02:30 does not exist that day: it fires at 03:00 EDT.
            (
                "daily",
                "America/New_York",
                "2026-03-07T07:30:00Z",
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z",
            ),
            // Fall back (2026-11-01 02:00 -> 01:00): 01:30 happens twice, fires once (the first).
            (
                "daily",
                "America/New_York",
                "2026-10-31T05:30:00Z",
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
            ),
            (
                "daily",
                "America/New_York",
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
            ),
            // London: 01:30 is skipped on 2026-03-29 and repeated on 2026-10-25.
            (
                "weekly",
                "Europe/London",
                "2026-03-22T01:30:00Z",
                "2026-03-22T01:30:00Z",
                "2026-03-29T01:00:00Z",
            ),
            (
                "daily",
                "Europe/London",
                "2026-10-24T00:30:00Z",
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
            ),
            (
                "daily",
                "Europe/London",
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ),
            // Weekly across a month end.
            (
                "weekly",
                "Asia/Kolkata",
                "2026-01-28T03:30:00Z",
                "2026-01-28T03:30:00Z",
                "2026-02-04T03:30:00Z",
            ),
            // Monthly on the 31st: February clamps, March is the 31st again.
            (
                "monthly",
                "Asia/Kolkata",
                "2027-01-31T03:30:00Z",
                "2027-01-31T03:30:00Z",
                "2027-02-28T03:30:00Z",
            ),
            (
                "monthly",
                "Asia/Kolkata",
                "2027-01-31T03:30:00Z",
                "2027-02-28T03:30:00Z",
                "2027-03-31T03:30:00Z",
            ),
            // Monthly from a leap day: 29th in months that have it, the 28th in a common February.
            (
                "monthly",
                "UTC",
                "2028-02-29T09:00:00Z",
                "2028-02-29T09:00:00Z",
                "2028-03-29T09:00:00Z",
            ),
            (
                "monthly",
                "UTC",
                "2028-02-29T09:00:00Z",
                "2029-01-29T09:00:00Z",
                "2029-02-28T09:00:00Z",
            ),
            // Cron: weekdays at 09:00 in Kolkata, from a Friday to the Monday.
            (
                "0 9 * * 1-5",
                "Asia/Kolkata",
                "2026-11-20T03:30:00Z",
                "2026-11-20T03:30:00Z",
                "2026-11-23T03:30:00Z",
            ),
            // Cron: the 29th of February only comes in leap years.
            (
                "0 9 29 2 *",
                "Asia/Kolkata",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
                "2028-02-29T03:30:00Z",
            ),
            // Cron: the last day patterns around a month end, in New York across the DST change.
            (
                "0 9 1 * *",
                "America/New_York",
                "2026-02-01T14:00:00Z",
                "2026-02-01T14:00:00Z",
                "2026-03-01T14:00:00Z",
            ),
            (
                "0 9 1 * *",
                "America/New_York",
                "2026-02-01T14:00:00Z",
                "2026-03-01T14:00:00Z",
                "2026-04-01T13:00:00Z",
            ),
        ];
        for (rule, zone, anchor, after, expected) in table {
            let recurrence = Recurrence::parse(Some(rule)).unwrap();
            let tz: Tz = zone.parse().unwrap();
            let got = recurrence.next_after(utc(anchor), tz, utc(after));
            assert_eq!(got, Some(utc(expected)), "{rule} in {zone} after {after}");
        }
    }

    #[test]
    fn cron_in_a_skipped_hour_fires_at_the_next_valid_instant_once() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let rule = Recurrence::parse(Some("30 2 * * *")).unwrap();
        let from = utc("2026-03-07T08:00:00Z");
        let next = rule.next_after(from, tz, from).unwrap();
        // 02:30 does not exist on 2026-03-08; the run is not lost.
        assert!(next <= utc("2026-03-08T07:30:00Z"), "{next}");
        assert!(next >= utc("2026-03-08T07:00:00Z"), "{next}");
    }

    #[test]
    fn cron_in_a_repeated_hour_fires_once() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let rule = Recurrence::parse(Some("30 1 * * *")).unwrap();
        let from = utc("2026-11-01T04:00:00Z");
        let first = rule.next_after(from, tz, from).unwrap();
        assert_eq!(first, utc("2026-11-01T05:30:00Z"));
        let second = rule.next_after(from, tz, first).unwrap();
        assert_eq!(
            second,
            utc("2026-11-02T06:30:00Z"),
            "01:30 EST on the same day is the same wall time"
        );
    }
}
