//! One conversation beside the list (`ui::inbox`) and the contact's panel: messages oldest to
//! newest with their ticks and failure reasons in plain words, private notes among them, who
//! has the conversation and its status, and the message box (Enter sends; `/shortcut` offers
//! a canned reply; outside WhatsApp's 24-hour window only a template can go). The page's script
//! marks the chat read (a POST) while someone looks at it.

mod bubble;

use std::collections::HashMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::core::contacts::{self, ContactOut};
use crate::core::conversations::{self, Assignee, CannedReplyOut, NoteOut};
use crate::core::messages::{self, ChatParams, MessageOut};
use crate::core::tags::{self, TagWithCount};
use crate::core::templates::TemplateOut;
use crate::extract::{Path, Query};
use crate::state::AppState;
use crate::ui::format::{phone_shown, query, time};
use crate::ui::inbox::{list_pane, tag_toggles, InboxParams};
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};
use bubble::{bubble, note};
use heydoc_store::media::MediaFile;

/// Messages per page.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ChatPageParams {
    pub before: Option<i64>,
    pub view: Option<String>,
    pub q: Option<String>,
    pub tag: Option<String>,
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
    // The notes written in the stretch of time these messages cover.
    let since = if older.is_some() {
        chat.first().map(|m| m.timestamp)
    } else {
        None
    };
    let mut notes = conversations::notes(&state, &contact.phone, since).await?;
    if params.before.is_some() {
        let until = chat.last().map(|m| m.timestamp);
        notes.retain(|n| until.is_none_or(|u| n.created_at <= u));
    }
    let list_params = InboxParams {
        view: params.view.clone(),
        q: params.q.clone(),
        tag: params.tag.clone(),
        cursor: None,
    };
    let list = list_pane(&state, &user, &list_params, Some(&contact.phone)).await?;
    let all_tags = tags::list(&state).await?;
    let team = conversations::assignees(&state).await?;
    let canned = conversations::canned_replies(&state).await?;
    let ids: Vec<i64> = chat
        .iter()
        .filter(|m| m.media_url.is_some())
        .map(|m| m.id)
        .collect();
    let media: HashMap<i64, MediaFile> = heydoc_store::media::of_messages(&state.db, &ids)
        .await?
        .into_iter()
        .map(|f| (f.message_id, f))
        .collect();
    let number = match &contact.last_number {
        Some(id) => heydoc_store::numbers::find(&state.db, id).await?,
        None => None,
    };
    let catalog = crate::ui::templates::approved(&state, contact.last_number.clone())
        .await
        .unwrap_or_default();
    let title = if contact.name.is_empty() {
        phone_shown(&contact.phone)
    } else {
        contact.name.clone()
    };
    let window = heydoc_domain::window::open_until(contact.last_inbound_at, Utc::now());
    let keep = list_params.keep();
    let main = html! {
        div.workspace.has-chat {
            (list.markup)
            section.pane-chat aria-label={ "Conversation with " (title) } {
                (chat_head(&contact, &title, &team, &user, &keep))
                section #chat data-live="chat" data-contact-id=(contact.id) data-phone=(contact.phone) data-unread=(contact.unread_count) data-me=(user.user_id) aria-label="Messages" {
                    @if let Some(before) = older {
                        p.pager { a href={ "/chat/" (contact.phone) (query(&[("before", Some(before.to_string())), ("view", params.view.clone()), ("q", params.q.clone()), ("tag", params.tag.clone())])) } { "Older messages" } }
                    }
                    @if params.before.is_some() {
                        p.pager { a href={ "/chat/" (contact.phone) (keep) } { "Newest messages" } }
                    }
                    @if chat.is_empty() && notes.is_empty() {
                        p.empty { "No messages yet." }
                    }
                    ol.messages {
                        @for item in interleave(&chat, &notes) {
                            @match item {
                                Item::Message(m) => (bubble(m, media.get(&m.id), &contact.phone, window.is_some())),
                                Item::Note(n) => (note(n)),
                            }
                        }
                    }
                    (window_note(window))
                }
                (composer(&contact, window.is_some(), &catalog, &canned))
            }
            (contact_panel(&contact, &all_tags, number.as_ref()))
        }
    };
    Ok(shell(&list.title(&title), &user, Nav::Inbox, main))
}

enum Item<'a> {
    Message(&'a MessageOut),
    Note(&'a NoteOut),
}

/// Messages and notes in time order (a note after the messages of its moment).
fn interleave<'a>(messages: &'a [MessageOut], notes: &'a [NoteOut]) -> Vec<Item<'a>> {
    let mut out = Vec::with_capacity(messages.len() + notes.len());
    let mut notes = notes.iter().peekable();
    for m in messages {
        while let Some(n) = notes.next_if(|n| n.created_at < m.timestamp) {
            out.push(Item::Note(n));
        }
        out.push(Item::Message(m));
    }
    out.extend(notes.map(Item::Note));
    out
}

/// Who the contact is, who has the conversation, and its status; live, so a colleague taking
/// it shows at once.
fn chat_head(
    contact: &ContactOut,
    title: &str,
    team: &[Assignee],
    me: &AuthUser,
    keep: &str,
) -> Markup {
    let api = format!("/api/conversations/{}", contact.phone);
    let status = contact.conversation.status.as_str();
    let assignee = contact.conversation.assignee_id;
    html! {
        header #chat-head.chat-head data-live="chat-head" data-status=(status) data-assignee=(assignee.map(|a| a.to_string()).unwrap_or_default()) {
            a.back href={ "/inbox" (keep) } { "← Conversations" }
            div.chat-title {
                h1 { (title) }
                p.phone {
                    @if contact.phone.bytes().all(|b| b.is_ascii_digit()) {
                        a href={ "tel:+" (contact.phone) } { (phone_shown(&contact.phone)) }
                    } @else {
                        (contact.phone)
                    }
                    @if let Some(u) = &contact.username { " · @" (u) }
                }
            }
            div.controls {
                form.assign data-api=(api) data-method="PATCH" data-then="refresh" {
                    label for="assignee" { "Assigned to" }
                    select #assignee name="assignee_id" data-type="nullable-int" {
                        option value="" selected[assignee.is_none()] { "Nobody" }
                        @for a in team {
                            option value=(a.id) selected[assignee == Some(a.id)] {
                                (a.username) @if a.id == me.user_id { " (me)" }
                            }
                        }
                    }
                    button.small type="submit" data-conversation="assign" { "Assign" }
                    (form_error())
                }
                @if assignee != Some(me.user_id) {
                    (status_form(&api, "assignee_id", &me.user_id.to_string(), "Assign to me", "take"))
                }
                @match status {
                    "resolved" => { (status_form(&api, "status", "open", "Reopen", "reopen")) }
                    "pending" => {
                        (status_form(&api, "status", "open", "Open", "reopen"))
                        (status_form(&api, "status", "resolved", "Resolve", "resolve"))
                    }
                    _ => {
                        (status_form(&api, "status", "pending", "Pending", "pending"))
                        (status_form(&api, "status", "resolved", "Resolve", "resolve"))
                    }
                }
                span.state-line { "Status: " strong { (status) } }
            }
        }
    }
}

fn status_form(api: &str, field: &str, value: &str, label: &str, kind: &str) -> Markup {
    html! {
        form.inline data-api=(api) data-method="PATCH" data-then="refresh" {
            input type="hidden" name=(field) value=(value) data-type=(if field == "assignee_id" { "int" } else { "" });
            button.small type="submit" data-conversation=(kind) { (label) }
        }
    }
}

/// When the contact's 24-hour window closes, if it is open now.
fn window_note(until: Option<DateTime<Utc>>) -> Markup {
    html! {
        @match until {
            Some(until) => p.window.open #window data-window="open" {
                "You can reply freely until " (time(until)) " (24 hours after their last message)."
            },
            None => p.window.closed #window data-window="closed" {
                "More than 24 hours have passed since this person last wrote: WhatsApp only accepts an approved template until they write again."
            },
        }
    }
}

/// The message box (and the private note box beside it). Outside the 24-hour window there is
/// no free text: a template is picked and sent as it is.
fn composer(
    contact: &ContactOut,
    in_window: bool,
    catalog: &[TemplateOut],
    canned: &[CannedReplyOut],
) -> Markup {
    html! {
        div #composer.composer data-live="composer" data-window=(if in_window { "open" } else { "closed" })
            data-live-key=(format!("{in_window}:{}:{}", catalog.len(), canned.iter().map(|r| r.id.to_string()).collect::<Vec<_>>().join(","))) {
            // Who else is writing a reply here right now (filled by the page's script from
            // `replying` events), so that two people do not answer the same patient.
            p #replying.replying role="status" hidden {}
            div.composer-tabs role="tablist" aria-label="Write" {
                button #tab-reply type="button" role="tab" aria-selected="true" aria-controls="reply-panel" data-tab="reply-panel" { "Reply" }
                button #tab-note type="button" role="tab" aria-selected="false" aria-controls="note-panel" data-tab="note-panel" { "Private note" }
            }
            // The tab panels wrap the forms (a form may not take the tabpanel role).
            div #reply-panel role="tabpanel" aria-labelledby="tab-reply" {
            form #reply-form.send data-api="/api/send_message" data-method="POST" data-then="refresh" data-reset
                data-upload-from=[contact.last_number.as_deref()] {
                input type="hidden" name="phone_number" value=(contact.phone);
                @if in_window {
                    label for="message" { "Message" }
                    textarea #message name="message" rows="2" maxlength="4096" data-enter-sends data-canned
                        aria-controls="canned-suggestions"
                        aria-describedby="message-keys" autofocus {}
                    p.hint #message-keys { "Enter sends, Shift+Enter starts a new line. Type / for a canned reply." }
                    ul #canned-suggestions.canned role="listbox" aria-label="Canned replies" aria-live="polite" hidden {}
                    details.attach {
                        summary { "Attach a file" }
                        label for="attach" { "File (the message is its caption)" }
                        input #attach type="file" data-attach
                            accept="image/jpeg,image/png,image/webp,video/mp4,video/3gpp,audio/aac,audio/amr,audio/mpeg,audio/mp4,audio/ogg,application/pdf,text/plain,.doc,.docx,.xls,.xlsx,.ppt,.pptx";
                    }
                    (crate::ui::templates::picker(catalog, "Send a template instead", false))
                } @else {
                    p.window-block role="note" {
                        "Free text cannot reach this person now: they last wrote more than 24 hours ago. "
                        "Pick an approved template; it is sent as it is, and the chat records it."
                    }
                    (crate::ui::templates::picker(catalog, "Template to send", true))
                }
                (form_error())
                button type="submit" { (if in_window { "Send" } else { "Send template" }) }
            }
            }
            div #note-panel role="tabpanel" aria-labelledby="tab-note" hidden {
            form #note-form.send.note-box
                data-api={ "/api/contacts/" (contact.phone) "/notes" } data-method="POST" data-then="refresh" data-reset {
                label for="note-body" { "Private note (only your team sees it)" }
                textarea #note-body name="body" rows="2" maxlength="4096" data-enter-sends {}
                (form_error())
                button type="submit" { "Add note" }
            }
            }
            ul #canned hidden {
                @for r in canned {
                    li data-shortcut=(r.shortcut) data-body=(r.body) {}
                }
            }
        }
    }
}

/// The contact's details, editable in place: name, phone, tags (one click each), attributes,
/// campaign consent.
fn contact_panel(
    contact: &ContactOut,
    all_tags: &[TagWithCount],
    number: Option<&heydoc_store::numbers::Number>,
) -> Markup {
    let api = format!("/api/contacts/{}", contact.phone);
    let attributes = contact
        .attributes
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    html! {
        aside #contact-panel.pane-contact data-live="contact" aria-label="Contact details" {
            h2 { "Contact" }
            form.contact-name data-api=(api) data-method="PUT" data-then="refresh" {
                label for="contact-name" { "Name" }
                div.search-row {
                    input #contact-name name="name" value=(contact.name) maxlength="200" autocomplete="off";
                    button.small type="submit" { "Save" }
                }
                (form_error())
            }
            dl.facts {
                dt { "Phone" }
                dd {
                    @if contact.phone.bytes().all(|b| b.is_ascii_digit()) {
                        a href={ "tel:+" (contact.phone) } { (phone_shown(&contact.phone)) }
                    } @else { (contact.phone) }
                }
                @if let Some(id) = &contact.last_number {
                    dt { "Writes to" }
                    dd {
                        // The number as people know it (Meta's verified name, its display
                        // number); its phone number id only when nothing else is known.
                        @match number {
                            Some(n) => {
                                @if let Some(name) = n.verified_name.as_deref().filter(|v| !v.is_empty()) { (name) " · " }
                                @if n.display_number != n.phone_number_id { (n.display_number) } @else { "number " (id) }
                            }
                            None => { "number " (id) }
                        }
                    }
                }
                dt { "Campaigns" }
                dd {
                    @if let Some(at) = contact.opted_out_at {
                        span.flag { "Opted out" } " since " (time(at))
                    } @else {
                        "Receives campaigns"
                    }
                    @if let Some(reason) = &contact.suppressed_reason {
                        br; span.flag { "WhatsApp refused delivery: " (reason) }
                    }
                }
            }
            @if contact.opted_out_at.is_none() {
                form.inline data-api=(api) data-method="PUT" data-then="refresh" {
                    input type="hidden" name="opted_out" value="true" data-type="bool";
                    button.small.secondary type="submit" { "Stop campaigns to this contact" }
                }
            }
            h3 { "Tags" }
            (tag_toggles(&contact.phone, &contact.tags.iter().map(|t| t.id).collect::<Vec<_>>(), all_tags))
            h3 { "Details" }
            form data-api=(api) data-method="PUT" data-then="refresh" {
                label for="contact-attributes" { "One per line, as name: value" }
                textarea #contact-attributes name="attributes" data-type="attributes" rows="3" placeholder="doctor: Dr. Rao" { (attributes) }
                (form_error())
                button.small type="submit" { "Save details" }
            }
        }
    }
}
