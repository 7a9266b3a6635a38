//! Small pieces of markup several pages share: times, tag chips, delivery ticks.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup};

/// A time as a `<time>` element: UTC in the markup, shown in the browser's zone by the script.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) }
    }
}

/// A time as a list row shows it: the page's script writes "8:30" today, "Yesterday", "Mon"
/// or "4 Dec" (the exact time on hover).
pub fn time_compact(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) data-compact { (at.format("%Y-%m-%d %H:%M UTC")) }
    }
}

/// A time in a schedule's own zone (`2030-01-16 09:00 IST`).
pub fn time_in(at: DateTime<Utc>, zone: &str) -> Markup {
    let shown = match zone.parse::<Tz>() {
        Ok(tz) => at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    // The page's script writes it as every other time (relative), in the schedule's zone.
    let zone = zone
        .parse::<Tz>()
        .map(|tz| tz.name().to_string())
        .unwrap_or_else(|_| "UTC".into());
    html! { time datetime=(at.to_rfc3339()) data-zone=(zone) { (shown) } }
}

/// A colored tag chip; the text color is chosen to stay readable on the tag's color.
pub fn tag_chip(name: &str, color: &str) -> Markup {
    html! {
        span.chip style={ "background:" (color) ";color:" (ink_on(color)) } { (name) }
    }
}

/// Near-black or white, whichever has more contrast on `#rrggbb` (white when the color is
/// not one).
pub fn ink_on(color: &str) -> &'static str {
    let dark = crate::ui::contrast::ratio("#111111", color);
    let light = crate::ui::contrast::ratio("#ffffff", color);
    match (dark, light) {
        (Some(d), Some(l)) if d > l => "#111",
        _ => "#fff",
    }
}

/// What a message's status looks like: a tick symbol and words for screen readers and tests.
pub fn tick(status: &str) -> (&'static str, &'static str) {
    match status {
        "queued" | "sending" => ("🕓", "queued"),
        "retrying" => ("↻", "retrying"),
        "sent" => ("✓", "sent"),
        "delivered" => ("✓✓", "delivered"),
        "read" => ("✓✓", "read"),
        "failed" => ("⚠", "failed"),
        "skipped" => ("⊘", "skipped"),
        "unknown" => ("?", "outcome unknown"),
        _ => ("", "received"),
    }
}

/// A phone as people read it: `+` and the digits (a business-scoped user id as it is).
pub fn phone_shown(phone: &str) -> String {
    if phone.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{phone}")
    } else {
        phone.to_string()
    }
}

/// What a WhatsApp error means for the person reading the chat, in plain words, when the code
/// is one people meet; `None` keeps Meta's own reason.
pub fn plain_error(code: Option<i32>) -> Option<&'static str> {
    Some(match code? {
        131047 | 470 => "Not delivered: more than 24 hours have passed since this person last wrote, so WhatsApp accepts only an approved template. Send it as a template.",
        131026 => "Not delivered: this number cannot receive WhatsApp messages (no WhatsApp, an old app, or the person has not accepted the latest terms).",
        131049 => "Held back by WhatsApp to keep people from getting too many marketing messages; HeyDoc tries again on another day.",
        131050 => "Not delivered: this person has stopped marketing messages from businesses.",
        131056 => "Too many messages to this person in a short time; it is tried again shortly.",
        131042 => "Not delivered: there is a problem with the WhatsApp account's payment method.",
        131053 => "The file could not be sent: WhatsApp could not read it.",
        132000 | 132001 | 132015 | 132016 => "The template cannot be sent as it is: WhatsApp does not have it approved in this language, or it was paused.",
        _ => return None,
    })
}

/// A cron expression the campaign form writes, in words: weekdays (`0 9 * * 1-5`), days of the
/// week (`30 8 * * 1,3`) or a day of the month (`0 9 15 * *`). `None` for anything else.
pub fn cron_in_words(cron: &str) -> Option<String> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let parts: Vec<&str> = cron.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = parts.as_slice() else {
        return None;
    };
    let minute: u32 = minute.parse().ok().filter(|m| *m < 60)?;
    let hour: u32 = hour.parse().ok().filter(|h| *h < 24)?;
    let at = format!("at {hour:02}:{minute:02}");
    if *month != "*" {
        return None;
    }
    match (*day, *weekday) {
        ("*", "1-5") => Some(format!("every weekday {at}")),
        ("*", "*") => Some(format!("every day {at}")),
        ("*", list) => {
            let names: Option<Vec<&str>> = list
                .split(',')
                .map(|d| d.parse::<usize>().ok().map(|d| d % 7).map(|d| DAYS[d]))
                .collect();
            Some(format!("every {} {at}", names?.join(", ")))
        }
        (day, "*") => {
            let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
            Some(format!("every month on day {day} {at}"))
        }
        _ => None,
    }
}

/// A status as a small badge (campaign results, deliveries).
pub fn status_badge(status: &str) -> Markup {
    html! { span class={ "status status-" (status) } { (status) } }
}

/// Cuts text to `max` characters, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// A query string from pairs, skipping empty values.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    match serde_urlencoded::to_string(present) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crons_the_form_writes_read_as_words() {
        assert_eq!(
            cron_in_words("0 9 * * 1-5").as_deref(),
            Some("every weekday at 09:00")
        );
        assert_eq!(
            cron_in_words("30 8 * * 1,3").as_deref(),
            Some("every Mon, Wed at 08:30")
        );
        assert_eq!(
            cron_in_words("0 9 15 * *").as_deref(),
            Some("every month on day 15 at 09:00")
        );
        assert_eq!(
            cron_in_words("0 9 * * 0").as_deref(),
            Some("every Sun at 09:00")
        );
        assert_eq!(cron_in_words("*/5 * * * *"), None);
        assert_eq!(cron_in_words("0 9 1 1 *"), None);
    }

    #[test]
    fn ink_stays_readable() {
        assert_eq!(ink_on("#ffffff"), "#111");
        assert_eq!(ink_on("#ffeb3b"), "#111");
        assert_eq!(ink_on("#1a237e"), "#fff");
        assert_eq!(ink_on("#ff4444"), "#111");
        assert_eq!(ink_on("#0e7a6e"), "#fff");
        assert_eq!(ink_on("garbage"), "#fff");
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("héllo wörld", 5), "héllo…");
        assert_eq!(clip("short", 5), "short");
    }

    #[test]
    fn query_skips_empty_values_and_encodes() {
        assert_eq!(
            query(&[
                ("q", Some("a b&c".into())),
                ("tag", None),
                ("x", Some(String::new()))
            ]),
            "?q=a+b%26c"
        );
        assert_eq!(query(&[("q", None)]), "");
    }
}
