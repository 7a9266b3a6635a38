//! Scheduled messages and campaigns: the list, the form (with the next runs shown before
//! saving), and one campaign's progress per occurrence and per recipient.

use axum::extract::State;
use maud::{html, Markup};
use serde::Deserialize;

use crate::core::schedules::{self as scheduled, DeliveryParams, OccurrenceOut, ScheduledOut};
use crate::core::tags::{self, TagWithCount};
use crate::extract::{Path, Query};
use crate::state::AppState;
use crate::ui::format::{phone_shown, plain_error, query, status_badge, tag_chip, time, time_in};
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

/// Deliveries per page of a campaign's results.
const DELIVERIES_PAGE: i64 = 100;

pub async fn list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    axum::extract::Query(page): axum::extract::Query<scheduled::PageParams>,
) -> PageResult {
    let (schedules, older) = scheduled::list(&state, page).await?;
    let all_tags = tags::list(&state).await?;
    let ids: Vec<i32> = schedules.iter().map(|s| s.id).collect();
    let runs = scheduled::latest_run_counts(&state, &ids).await?;
    let main = html! {
        div.heading {
            h1 { "Campaigns" }
            a.button href="/campaigns/new" { "New campaign" }
        }
        @if schedules.is_empty() {
            p.empty { "Nothing scheduled yet. A campaign sends a message once or on a schedule to contacts and tags." }
        } @else {
            div.scroll {
                table.campaigns {
                    caption.sr-only { "Scheduled messages and campaigns" }
                    thead { tr { th scope="col" { "Campaign" } th scope="col" { "Audience" } th scope="col" { "Repeats" } th scope="col" { "State" } th scope="col" { "Last run" } th scope="col" { "Next run" } } }
                    tbody {
                        @for s in &schedules {
                            tr data-id=(s.id) data-state=(s.state) {
                                td data-label="Campaign" { a href={ "/campaigns/" (s.id) } { (s.name) } }
                                td data-label="Audience" { (audience(s, &all_tags)) }
                                td data-label="Repeats" { (repeats(s)) }
                                td data-label="State" { (state_badge(&s.state)) }
                                td data-label="Last run" {
                                    @match runs.get(&s.id) {
                                        Some(c) => { (run_counts(c)) }
                                        None => { "not yet" }
                                    }
                                }
                                td data-label="Next run" {
                                    @match (s.state.as_str(), s.next_run_at) {
                                        ("scheduled" | "running", Some(at)) => { (time_in(at, &s.timezone)) }
                                        ("paused", _) => { "when resumed" }
                                        _ => { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(cursor) = older {
                p { a href={ "/campaigns?cursor=" (cursor) } { "Older campaigns" } }
            }
        }
    };
    Ok(shell("Campaigns", &user, Nav::Campaigns, main))
}

/// A run's deliveries in a line: sent (delivered and read included), delivered, read, failed,
/// and those still waiting.
fn run_counts(c: &scheduled::DeliveryCounts) -> Markup {
    let sent = c.sent + c.delivered + c.read;
    html! {
        ul.run-counts {
            li { span.num { (sent) } " sent" }
            li { span.num { (c.delivered + c.read) } " delivered" }
            li { span.num { (c.read) } " read" }
            @if c.failed > 0 { li.failed { span.num { (c.failed) } " failed" } }
            @if c.queued > 0 { li { span.num { (c.queued) } " waiting" } }
        }
    }
}

/// A campaign's state as a badge, in the words the team uses.
fn state_badge(state: &str) -> Markup {
    html! { span class={ "status state-" (state) } { (state) } }
}

fn repeats(s: &ScheduledOut) -> String {
    let every = match s.recurrence.as_deref() {
        None | Some("none") => return "once".into(),
        Some("daily") => "every day".to_string(),
        Some("weekly") => format!("every {}", s.scheduled_time.format("%A")),
        Some("monthly") => format!("every month on day {}", s.scheduled_time.format("%-d")),
        Some(cron) => {
            crate::ui::format::cron_in_words(cron).unwrap_or_else(|| format!("cron {cron}"))
        }
    };
    format!("{every} ({})", s.timezone)
}

fn audience(s: &ScheduledOut, all_tags: &[TagWithCount]) -> Markup {
    html! {
        @if !s.recipients.is_empty() {
            span { (s.recipients.len()) " recipient" @if s.recipients.len() != 1 { "s" } }
        }
        @for id in &s.tag_ids {
            @if let Some(t) = all_tags.iter().find(|t| t.id == *id) {
                " " (tag_chip(&t.name, &t.color))
            } @else {
                " " span.chip { "deleted tag " (id) }
            }
        }
    }
}

pub async fn new(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult {
    let all_tags = tags::list(&state).await?;
    let catalog = crate::ui::templates::approved(&state, None).await?;
    let main = html! {
        h1 { "New campaign" }
        form #campaign-form.card data-campaign novalidate {
            label for="name" { "Name" }
            input #name name="name" maxlength="120" placeholder="Weekday appointment reminders" aria-describedby="error-name";
            p.field-error #error-name hidden {}
            fieldset {
                legend { "Message" }
                label for="message" { "Text" }
                textarea #message name="message" rows="4" maxlength="4096" aria-describedby="message-hint error-message" {}
                p.field-error #error-message hidden {}
                p.hint #message-hint { "Personalise with {{name}}, {{phone}} or {{attributes.KEY}}; give a fallback for contacts without one: {{name|there}}. Without a fallback, a contact without that value is skipped." }
                div #sample hidden aria-live="polite" {
                    p.label-like #sample-who {}
                    p.bubble #sample-text {}
                }
                label for="attach" { "Attach a file (optional; the text is its caption)" }
                input #attach type="file" data-attach
                    accept="image/jpeg,image/png,video/mp4,video/3gpp,audio/aac,audio/amr,audio/mpeg,audio/mp4,audio/ogg,application/pdf,text/plain,.doc,.docx,.xls,.xlsx,.ppt,.pptx";
                (crate::ui::templates::picker(&catalog, "Send a template instead (works outside the 24-hour window)", false))
                p.field-error #error-template hidden {}
            }
            fieldset #audience-fields aria-describedby="error-audience" {
                legend { "Audience" }
                label for="recipients" { "Phone numbers (one per line or comma-separated)" }
                textarea #recipients name="recipients" rows="3" inputmode="tel" {}
                @if !all_tags.is_empty() {
                    p.label-like { "Contacts with any of these tags" }
                    div.checks {
                        @for t in &all_tags {
                            label.check {
                                input type="checkbox" name="tag_ids[]" data-type="int" value=(t.id);
                                " " (tag_chip(&t.name, &t.color))
                                " (" (t.contact_count) ")"
                            }
                        }
                    }
                }
                p.field-error #error-audience hidden {}
            }
            fieldset {
                legend { "When" }
                label for="scheduled_time" { "First run (date and time in the time zone below)" }
                input #scheduled_time name="scheduled_time" type="datetime-local" required aria-describedby="error-scheduled_time";
                p.field-error #error-scheduled_time hidden {}
                label for="timezone" { "Time zone" }
                input #timezone name="timezone" list="zones" value="UTC" required autocomplete="off" aria-describedby="error-timezone";
                datalist #zones {
                    @for tz in chrono_tz::TZ_VARIANTS { option value=(tz.name()) {} }
                }
                p.field-error #error-timezone hidden {}
                label for="recurrence" { "Repeats" }
                select #recurrence name="recurrence" {
                    option value="none" { "Once" }
                    option value="daily" { "Every day" }
                    option value="weekdays" { "Every weekday (Monday to Friday)" }
                    option value="weekly" { "Every week, on the days below" }
                    option value="monthly" { "Every month, on the day below" }
                    option value="cron" { "Custom (cron, for experts)" }
                }
                fieldset #weekday-field.days hidden {
                    legend { "On" }
                    @for (value, day) in [(1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (0, "Sun")] {
                        label.check.day { input type="checkbox" name="weekday" value=(value); " " (day) }
                    }
                }
                div #monthday-field hidden {
                    label for="monthday" { "Day of the month" }
                    input #monthday name="monthday" type="number" min="1" max="31" step="1" aria-describedby="monthday-hint";
                    p.hint #monthday-hint { "Months without this day (29, 30 or 31) are skipped." }
                }
                div #cron-field hidden {
                    label for="cron" { "Cron expression: minute hour day-of-month month day-of-week" }
                    input #cron name="cron" placeholder="0 9 * * 1-5" autocomplete="off";
                }
                p.field-error #error-recurrence hidden {}
                label for="daily_limit" { "At most this many people a day (optional)" }
                input #daily_limit name="daily_limit" type="number" min="1" step="1" aria-describedby="daily-limit-hint";
                p.hint #daily-limit-hint { "For an audience larger than your WhatsApp messaging limit: each run sends this many a day and the rest on the days after." }
                p.field-error #error-daily_limit hidden {}
                div #ends-field hidden {
                    label for="end" { "Ends" }
                    select #end name="end" {
                        option value="never" { "Never" }
                        option value="time" { "At a date" }
                        option value="count" { "After a number of runs" }
                    }
                    div #end-time-field hidden {
                        label for="end_time" { "Last run no later than" }
                        input #end_time name="end_time" type="datetime-local";
                    }
                    div #max-field hidden {
                        label for="max_occurrences" { "Number of runs" }
                        input #max_occurrences name="max_occurrences" type="number" min="1" step="1";
                    }
                    p.field-error #error-end hidden {}
                }
            }
            section #estimate aria-live="polite" aria-label="Audience and cost" {
                h2 { "Audience and cost" }
                p.hint #estimate-text { "Choose who receives it to see how many people it reaches and what it will likely cost." }
                ul #estimate-warnings {}
            }
            section #preview aria-live="polite" aria-label="Next runs" {
                h2 { "Next runs" }
                p.hint #preview-note { "Fill in the first run to see when this will send." }
                ol #next-runs {}
            }
            (form_error())
            button type="submit" { "Schedule" }
        }
    };
    Ok(shell("New campaign", &user, Nav::Campaigns, main))
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailParams {
    pub before: Option<i64>,
}

pub async fn detail(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Path(id): Path<i32>,
    Query(params): Query<DetailParams>,
) -> PageResult {
    let detail = scheduled::get(&state, id).await?;
    let deliveries = scheduled::deliveries_of(
        &state,
        id,
        DeliveryParams {
            limit: Some(DELIVERIES_PAGE),
            before: params.before,
            occurrence_id: None,
        },
    )
    .await?;
    let all_tags = tags::list(&state).await?;
    let s = &detail.schedule;
    let older = (deliveries.len() as i64 == DELIVERIES_PAGE)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten();
    let status_url = format!("/api/scheduled-messages/{}/status", s.id);
    let main = html! {
        section #campaign data-live="campaign" data-status=(s.status) data-state=(s.state) aria-label="Campaign" {
            div.heading {
                h1 { (s.name) }
                (state_badge(&s.state))
            }
            @if let Some(why) = &s.status_reason {
                p.flag.status-reason role="status" { "Paused by HeyDoc: " (why) ". It resumes by itself when Meta approves the template again; you can also resume it yourself." }
            }
            dl.facts {
                @if let Some(from) = &s.from { dt { "Sends from" } dd { (from) } }
                dt { "Audience" } dd { (audience(s, &all_tags)) }
                dt { "Repeats" } dd { (repeats(s)) }
                dt { "First run" } dd { (time_in(s.scheduled_time, &s.timezone)) }
                @match (s.state.as_str(), s.next_run_at) {
                    ("scheduled" | "running", Some(at)) => { dt { "Next run" } dd #next-run { (time_in(at, &s.timezone)) } }
                    ("paused", _) => { dt { "Next run" } dd #next-run { "none while paused" } }
                    _ => {}
                }
                @if s.recurrence.as_deref().is_some_and(|r| r != "none") {
                    dt { "Ends" }
                    dd {
                        @match (s.end_time, s.max_occurrences) {
                            (Some(end), _) => { "no later than " (time_in(end, &s.timezone)) }
                            (None, Some(n)) => { "after " (n) " runs" }
                            (None, None) => { "never" }
                        }
                    }
                }
                @if let Some(n) = s.max_occurrences { dt { "Runs" } dd { (s.occurrence_count) " of " (n) } }
                dt { "Created by" } dd { (s.created_by) " on " (time(s.created_at)) }
            }
            @if !s.message.is_empty() {
                p.label-like { "The message (placeholders are filled for each recipient)" }
                blockquote.text { (s.message) }
            }
            @if let Some(t) = &s.template { p { "Template " strong { (t.name) } " (" (t.language) ")" } }
            div.actions {
                @match s.state.as_str() {
                    "scheduled" | "running" => {
                        (status_button(&status_url, "paused", "Pause"))
                        (status_button(&status_url, "cancelled", "Cancel"))
                    }
                    "paused" => {
                        (status_button(&status_url, "pending", "Resume"))
                        (status_button(&status_url, "cancelled", "Cancel"))
                    }
                    _ => {}
                }
            }
            h2 { "Runs" }
            @if detail.occurrences.is_empty() {
                p.empty { "No runs yet." }
            } @else {
                ul.occurrences { @for o in &detail.occurrences { (occurrence(o, &s.timezone)) } }
            }
            div.heading {
                h2 { "Recipients" }
                @if !deliveries.is_empty() {
                    a.button.small href={ "/api/scheduled-messages/" (s.id) "/deliveries.csv" } download { "Download results (CSV)" }
                }
            }
            @if deliveries.is_empty() {
                p.empty { "No deliveries yet." }
            } @else {
                div.scroll {
                    table.deliveries {
                        caption.sr-only { "Per-recipient results, newest first" }
                        thead { tr { th scope="col" { "Recipient" } th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Updated" } } }
                        tbody {
                            @for d in &deliveries {
                                tr data-phone=(d.phone) data-status=(d.status) {
                                    td data-label="Recipient" {
                                        a href={ "/chat/" (d.phone) } {
                                            @if d.name.is_empty() { (phone_shown(&d.phone)) } @else { (d.name) " " span.phone { (phone_shown(&d.phone)) } }
                                        }
                                    }
                                    td data-label="Status" { (status_badge(&d.status)) }
                                    td data-label="Reason" {
                                        @if let Some(r) = &d.error_reason {
                                            @match plain_error(d.error_code) {
                                                Some(plain) => { (plain) }
                                                None => { (r) }
                                            }
                                        }
                                    }
                                    td data-label="Updated" { (time(d.updated_at)) }
                                }
                            }
                        }
                    }
                }
                nav.pager aria-label="Recipient pages" {
                    @if params.before.is_some() { a href={ "/campaigns/" (s.id) } { "← Newest" } }
                    @if let Some(b) = older { a href={ "/campaigns/" (s.id) (query(&[("before", Some(b.to_string()))])) } rel="next" { "Older →" } }
                }
            }
        }
    };
    Ok(shell("Campaign", &user, Nav::Campaigns, main))
}

fn status_button(url: &str, status: &str, label: &str) -> Markup {
    html! {
        form.inline data-api=(url) data-method="PUT" data-then="refresh"
            data-confirm=[(status == "cancelled").then_some("Cancel this campaign for good? Nobody else gets it.")]
            data-confirm-yes=[(status == "cancelled").then_some("Yes, cancel it")]
            data-confirm-no=[(status == "cancelled").then_some("Keep it")] {
            input type="hidden" name="status" value=(status);
            button type="submit" class={ "action-" (status) } { (label) }
        }
    }
}

fn occurrence(o: &OccurrenceOut, zone: &str) -> Markup {
    let c = &o.counts;
    let total =
        (c.queued + c.sent + c.delivered + c.read + c.failed + c.skipped + c.unknown).max(1);
    let parts = [
        ("read", c.read),
        ("delivered", c.delivered),
        ("sent", c.sent),
        ("queued", c.queued),
        ("failed", c.failed),
        ("skipped", c.skipped),
        ("unknown", c.unknown),
    ];
    html! {
        li.occurrence data-state=(o.state) {
            p { (time_in(o.fire_at, zone)) " · " (o.state.replace('_', " ")) " · " (o.planned) " planned" }
            div.bar role="img" aria-label={ @for (name, n) in parts { @if n > 0 { (n) " " (name) ", " } } } {
                @for (name, n) in parts {
                    @if n > 0 { span class={ "seg seg-" (name) } style={ "width:" (n * 100 / total) "%" } {} }
                }
            }
            ul.counts {
                @for (name, n) in parts { li data-count=(name) { span { (name) } " " strong { (n) } } }
            }
            @if !o.cost.by_category.is_empty() {
                p.cost data-cost=(format!("{:.4}", o.cost.estimated_total)) {
                    "Meta charges for "
                    @for (i, c) in o.cost.by_category.iter().enumerate() {
                        @if i > 0 { ", " }
                        (c.billable) " " (c.category)
                    }
                    " message(s): about " strong { (format!("{:.2}", o.cost.estimated_total)) " " (o.cost.currency) }
                }
            }
        }
    }
}
