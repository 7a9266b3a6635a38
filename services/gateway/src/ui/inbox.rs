//! The inbox: contacts by newest activity, with their last message, unread count and tags;
//! search, tag filter and cursor paging; tagging in place.

use axum::extract::State;
use maud::{html, Markup};
use serde::Deserialize;

use crate::core::contacts::{self, ContactOut, ListParams};
use crate::core::tags::{self, TagWithCount};
use crate::extract::Query;
use crate::state::AppState;
use crate::ui::format::{clip, query, tag_chip, time};
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

/// Contacts per page.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct InboxParams {
    pub q: Option<String>,
    pub tag: Option<String>,
    pub cursor: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Query(params): Query<InboxParams>,
) -> PageResult {
    // The tag filter's "any tag" option submits an empty value.
    let tag = params.tag.as_deref().and_then(|t| t.parse::<i32>().ok());
    let (contacts, next) = contacts::list(
        &state,
        ListParams {
            limit: Some(PAGE),
            cursor: params.cursor.clone(),
            q: params.q.clone(),
            tag,
        },
    )
    .await?;
    let all_tags = tags::list(&state).await?;
    let search = params.q.clone().unwrap_or_default();
    let main = html! {
        div.heading {
            h1 { "Inbox" }
            a href="/contacts/import" { "Import / export" }
            details.new-chat {
                summary { "New chat" }
                form data-api="/api/contacts" data-method="POST" data-then="/chat/{phone}" data-if-exists="/chat/{phone}" {
                    label for="new-phone" { "Phone number, country code first" }
                    input #new-phone name="phone" inputmode="tel" required placeholder="14155550123";
                    label for="new-name" { "Name (optional)" }
                    input #new-name name="name";
                    (form_error())
                    button type="submit" { "Start chat" }
                }
            }
        }
        form.filters method="get" action="/inbox" role="search" {
            label for="q" { "Search by name or phone" }
            input #q name="q" type="search" value=(search);
            label for="tag" { "Tag" }
            select #tag name="tag" {
                option value="" { "Any tag" }
                @for t in &all_tags {
                    option value=(t.id) selected[tag == Some(t.id)] { (t.name) " (" (t.contact_count) ")" }
                }
            }
            button type="submit" { "Filter" }
        }
        section #inbox data-live="inbox" aria-label="Contacts" {
            @if contacts.is_empty() {
                p.empty {
                    @if params.cursor.is_some() || tag.is_some() || !search.is_empty() {
                        "No contacts match."
                    } @else {
                        "No chats yet. Messages sent to your WhatsApp number appear here as they arrive."
                    }
                }
            }
            ul.contacts {
                @for c in &contacts { (row(c, &all_tags)) }
            }
            nav.pager aria-label="Pages" {
                @if params.cursor.is_some() {
                    a href={ "/inbox" (query(&[("q", params.q.clone()), ("tag", params.tag.clone())])) } { "← Newest" }
                }
                @if let Some(cursor) = next {
                    a href={ "/inbox" (query(&[("q", params.q.clone()), ("tag", params.tag.clone()), ("cursor", Some(cursor))])) } rel="next" { "Older →" }
                }
            }
        }
    };
    Ok(shell("Inbox", &user, Nav::Inbox, main))
}

fn row(c: &ContactOut, all_tags: &[TagWithCount]) -> Markup {
    let title = if c.name.is_empty() { &c.phone } else { &c.name };
    let chat = format!("/chat/{}", c.phone);
    html! {
        li.contact data-phone=(c.phone) data-unread=(c.unread_count) {
            a.open href=(chat) {
                span.name { (title) }
                @if !c.name.is_empty() { span.phone { (c.phone) } }
                @if let Some(at) = c.last_message_at { span.when { (time(at)) } }
                span.preview { (clip(&c.last_message, 120)) }
                @if c.unread_count > 0 {
                    span.badge {
                        span aria-hidden="true" { (c.unread_count) }
                        span.sr-only { (c.unread_count) " unread" }
                    }
                }
            }
            div.meta {
                @for t in &c.tags { (tag_chip(&t.name, &t.color)) }
                @if c.opted_out { span.flag { "opted out" } }
                @if let Some(reason) = &c.suppressed_reason { span.flag title=(reason) { "suppressed" } }
                (tagger(&c.phone, &c.tags.iter().map(|t| t.id).collect::<Vec<_>>(), all_tags))
            }
        }
    }
}

/// A disclosure with every tag as a checkbox; saving replaces the contact's tags.
pub fn tagger(phone: &str, current: &[i32], all_tags: &[TagWithCount]) -> Markup {
    html! {
        details.tagger {
            summary { "Tags" span.sr-only { " of " (phone) } }
            @if all_tags.is_empty() {
                p { "No tags yet. " a href="/tags" { "Create one" } }
            } @else {
                form data-api={ "/api/contacts/" (phone) "/tags" } data-method="PUT" data-then="refresh" {
                    fieldset {
                        legend.sr-only { "Tags for " (phone) }
                        @for t in all_tags {
                            label.check {
                                input type="checkbox" name="tag_ids[]" data-type="int" value=(t.id) checked[current.contains(&t.id)];
                                " " (t.name)
                            }
                        }
                    }
                    (form_error())
                    button type="submit" { "Save tags" }
                }
            }
        }
    }
}
