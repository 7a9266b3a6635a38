//! One conversation: messages oldest to newest with their delivery ticks and failure reasons,
//! the 24-hour window, a send box (with a template outside the window), and tagging. The page's
//! script marks the chat read (a POST) while someone looks at it.

use axum::extract::State;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::core::templates::TemplateOut;
use serde::Deserialize;

use crate::core::contacts::{self, ContactOut};
use crate::core::messages::{self, ChatParams, MessageOut};
use crate::core::tags;
use crate::extract::{Path, Query};
use crate::state::AppState;
use crate::ui::format::{query, tag_chip, tick, time};
use crate::ui::inbox::tagger;
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

/// Messages per page.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ChatPageParams {
    pub before: Option<i64>,
}

pub async fn page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Path(phone): Path<String>,
    Query(params): Query<ChatPageParams>,
) -> PageResult {
    // Showing a chat changes nothing: the page's script marks it read (POST) while someone
    // looks at it, never a GET (which another site could trigger).
    let contact = contacts::get(&state, &phone).await?;
    let mut chat = messages::list(
        &state,
        &contact.phone,
        ChatParams {
            limit: Some(PAGE),
            before: params.before,
        },
    )
    .await?;
    let older = (chat.len() as i64 == PAGE)
        .then(|| chat.last().map(|m| m.id))
        .flatten();
    chat.reverse();
    let all_tags = tags::list(&state).await?;
    let ids: Vec<i64> = chat
        .iter()
        .filter(|m| m.media_url.is_some())
        .map(|m| m.id)
        .collect();
    let media: std::collections::HashMap<i64, heydoc_store::media::MediaFile> =
        heydoc_store::media::of_messages(&state.db, &ids)
            .await?
            .into_iter()
            .map(|f| (f.message_id, f))
            .collect();
    let catalog = crate::ui::templates::approved(&state, contact.last_number.clone())
        .await
        .unwrap_or_default();
    let title = if contact.name.is_empty() {
        contact.phone.clone()
    } else {
        contact.name.clone()
    };
    let window = heydoc_domain::window::open_until(contact.last_inbound_at, Utc::now());
    let main = html! {
        div.heading {
            h1 { (title) }
            @if !contact.name.is_empty() { p.phone { (contact.phone) } }
            @if let Some(number) = &contact.last_number {
                p.phone.number { "On business number " (number) }
            }
        }
        div.meta {
            @for t in &contact.tags { (tag_chip(&t.name, &t.color)) }
            @if contact.opted_out { span.flag { "opted out of campaigns" } }
            @if let Some(reason) = &contact.suppressed_reason { span.flag { "suppressed: " (reason) } }
            (tagger(&contact.phone, &contact.tags.iter().map(|t| t.id).collect::<Vec<_>>(), &all_tags))
        }
        section #chat data-live="chat" data-contact-id=(contact.id) data-phone=(contact.phone) data-unread=(contact.unread_count) aria-label="Conversation" {
            @if let Some(before) = older {
                p.pager { a href={ "/chat/" (contact.phone) (query(&[("before", Some(before.to_string()))])) } { "Older messages" } }
            }
            @if params.before.is_some() {
                p.pager { a href={ "/chat/" (contact.phone) } { "Newest messages" } }
            }
            @if chat.is_empty() {
                p.empty { "No messages yet." }
            }
            ol.messages {
                @for m in &chat { (bubble(m, media.get(&m.id))) }
            }
            (window_note(window))
        }
        (send_box(&contact, window.is_some(), &catalog))
    };
    Ok(shell(&title, &user, Nav::Inbox, main))
}

/// When the contact's 24-hour window closes, if it is open now.
fn window_note(until: Option<DateTime<Utc>>) -> Markup {
    html! {
        @match until {
            Some(until) => p.window.open #window data-window="open" {
                "Inside the 24-hour window until " (time(until)) ": free text is delivered."
            },
            None => p.window.closed #window data-window="closed" {
                "Outside the 24-hour window: WhatsApp accepts only approved templates. "
                "Name one below to send it instead of the text."
            },
        }
    }
}

fn bubble(m: &MessageOut, media: Option<&heydoc_store::media::MediaFile>) -> Markup {
    let incoming = m.direction == "incoming";
    let (symbol, words) = tick(&m.status);
    html! {
        li class={ "msg " (if incoming { "in" } else { "out" }) } data-id=(m.id) data-status=(m.status) {
            @if let (Some(url), Some(file)) = (&m.media_url, media) {
                @match file.state.as_str() {
                    heydoc_store::media::STORED => {
                        @if m.message_type == "image" || m.message_type == "sticker" {
                            a.media href=(url) target="_blank" rel="noopener" {
                                img src=(url) alt=(format!("{} sent by the contact", m.message_type)) loading="lazy" width="240";
                            }
                        } @else {
                            p.media { a href=(url) download { "Download the " (m.message_type) @if let Some(f) = &file.filename { " (" (f) ")" } } }
                        }
                    }
                    heydoc_store::media::PENDING => {
                        p.media.pending { "Fetching the " (m.message_type) " from WhatsApp…" }
                    }
                    _ => {
                        p.media.reason { "The " (m.message_type) " could not be kept: " (file.error.as_deref().unwrap_or("unknown reason")) }
                    }
                }
            }
            @if !incoming && !matches!(m.message_type.as_str(), "text" | "template") {
                p.media.attached { "📎 " (m.message_type) " attached" }
            }
            p.text {
                span.sr-only { (if incoming { "They wrote: " } else { "You wrote: " }) }
                (m.message_text)
            }
            p.info {
                (time(m.timestamp))
                @if !incoming {
                    " " span class={ "tick tick-" (m.status) } title=(words) {
                        span aria-hidden="true" { (symbol) }
                        span.sr-only { (words) }
                    }
                }
            }
            @if let Some(reason) = &m.error_reason {
                @if matches!(m.status.as_str(), "failed" | "skipped" | "unknown" | "retrying") {
                    p.reason {
                        (words) ": " (reason)
                        @if let Some(code) = m.error_code { " (code " (code) ")" }
                    }
                }
            }
        }
    }
}

fn send_box(contact: &ContactOut, in_window: bool, catalog: &[TemplateOut]) -> Markup {
    html! {
        form.send data-api="/api/send_message" data-method="POST" data-then="refresh" data-reset
            data-upload-from=[contact.last_number.as_deref()] aria-label="Send a message" {
            input type="hidden" name="phone_number" value=(contact.phone);
            label for="message" { "Message" }
            textarea #message name="message" rows="3" maxlength="4096" {}
            label for="attach" { "Attach a file (optional)" }
            input #attach type="file" data-attach
                accept="image/jpeg,image/png,image/webp,video/mp4,video/3gpp,audio/aac,audio/amr,audio/mpeg,audio/mp4,audio/ogg,application/pdf,text/plain,.doc,.docx,.xls,.xlsx,.ppt,.pptx";
            (crate::ui::templates::picker(catalog, "Template for outside the 24-hour window", !in_window))
            (form_error())
            button type="submit" { "Send" }
        }
    }
}
