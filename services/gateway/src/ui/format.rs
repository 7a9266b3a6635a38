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

/// A time in a schedule's own zone (`2030-01-16 09:00 IST`).
pub fn time_in(at: DateTime<Utc>, zone: &str) -> Markup {
    let shown = match zone.parse::<Tz>() {
        Ok(tz) => at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    html! { time datetime=(at.to_rfc3339()) data-fixed { (shown) } }
}

/// A colored tag chip; the text color is chosen to stay readable on the tag's color.
pub fn tag_chip(name: &str, color: &str) -> Markup {
    html! {
        span.chip style={ "background:" (color) ";color:" (ink_on(color)) } { (name) }
    }
}

/// Black or white, whichever reads better on `#rrggbb`.
pub fn ink_on(color: &str) -> &'static str {
    let hex = color.trim_start_matches('#');
    let channel = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|c| u8::from_str_radix(c, 16).ok())
            .map_or(0.5, |v| f64::from(v) / 255.0)
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
    if luminance > 0.55 {
        "#111"
    } else {
        "#fff"
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
    fn ink_stays_readable() {
        assert_eq!(ink_on("#ffffff"), "#111");
        assert_eq!(ink_on("#ffeb3b"), "#111");
        assert_eq!(ink_on("#1a237e"), "#fff");
        assert_eq!(ink_on("#ff4444"), "#fff");
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
