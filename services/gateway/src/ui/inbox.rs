//! The team inbox: a conversation list (views "needs reply", "mine", "unassigned", all,
//! resolved, and every contact), searchable by name, phone or message text and filtered by tag,
//! beside the open chat (`ui::chat`). Unread conversations come first, then the newest; our
//! own last reply reads "You: ...". The list is a live region: assignment and status changes
//! from any colleague, on any replica, show at once.

use axum::extract::State;
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::core::contacts::{self, ContactOut, ListParams};
use crate::core::conversations::{self, Assignee, ConversationCounts, ConversationParams};
use crate::core::tags::{self, TagWithCount};
use crate::extract::Query;
use crate::state::AppState;
use crate::ui::format::{clip, phone_shown, query, tag_chip, time_compact};
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

/// Conversations per page.
const PAGE: i64 = 50;

/// The list's state, carried in its links so that opening a chat keeps the list as it was.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct InboxParams {
    pub view: Option<String>,
    pub q: Option<String>,
    pub tag: Option<String>,
    pub cursor: Option<String>,
}

impl InboxParams {
    fn view(&self) -> &str {
        const VIEWS: [&str; 6] = [
            "needs_reply",
            "mine",
            "unassigned",
            "all",
            "resolved",
            "contacts",
        ];
        let asked = self.view.as_deref().unwrap_or_default();
        if VIEWS.contains(&asked) {
            asked
        } else {
            "needs_reply"
        }
    }

    fn tag_id(&self) -> Option<i32> {
        // The tag filter's "any tag" option submits an empty value.
        self.tag.as_deref().and_then(|t| t.parse::<i32>().ok())
    }

    /// The query string that keeps the list as it is (without the page cursor).
    pub fn keep(&self) -> String {
        query(&[
            ("view", Some(self.view().to_string())),
            ("q", self.q.clone()),
            ("tag", self.tag.clone()),
        ])
    }
}

pub async fn page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Query(params): Query<InboxParams>,
) -> PageResult {
    let list = list_pane(&state, &user, &params, None).await?;
    let main = html! {
        div.workspace {
            (list.markup)
            section.pane-chat.empty-pane aria-label="Conversation" {
                p.empty { "Pick a conversation on the left. New messages move it to the top." }
            }
        }
    };
    Ok(shell(&list.title("Inbox"), &user, Nav::Inbox, main))
}

/// The conversation list as a page shows it, with the unread count for the tab's title.
pub struct ListPane {
    pub markup: Markup,
    pub unread: u64,
}

impl ListPane {
    /// `(3) Inbox` while three conversations have unread messages.
    pub fn title(&self, base: &str) -> String {
        if self.unread > 0 {
            format!("({}) {base}", self.unread)
        } else {
            base.to_string()
        }
    }
}

/// The list pane: views with their counts, search, tag filter, rows. `open` is the phone of
/// the chat shown beside it.
pub async fn list_pane(
    state: &AppState,
    user: &AuthUser,
    params: &InboxParams,
    open: Option<&str>,
) -> Result<ListPane, crate::ui::page::PageError> {
    let view = params.view();
    let tag = params.tag_id();
    let (mut rows, next) = if view == "contacts" {
        contacts::list(
            state,
            ListParams {
                limit: Some(PAGE),
                cursor: params.cursor.clone(),
                q: params.q.clone(),
                tag,
            },
        )
        .await?
    } else {
        conversations::list(
            state,
            user,
            ConversationParams {
                view: Some(view.to_string()),
                q: params.q.clone(),
                tag,
                limit: Some(PAGE),
                cursor: params.cursor.clone(),
                ..Default::default()
            },
        )
        .await?
    };
    // The conversation open beside the list stays in it (highlighted) while it is open, even
    // when it has left the view (answered, in "Needs reply").
    if let Some(phone) = open {
        if !rows.iter().any(|c| c.phone == phone) && params.cursor.is_none() {
            if let Ok(c) = contacts::get(state, phone).await {
                rows.insert(0, c);
            }
        }
    }
    let counts = conversations::counts(state, user).await?;
    let all_tags = tags::list(state).await?;
    let team = conversations::assignees(state).await?;
    let search = params.q.clone().unwrap_or_default();
    let keep = params.keep();
    let markup = html! {
        aside #conversations.pane-list data-live="conversations" data-unread-total=(counts.unread) aria-label="Conversations" {
            div.list-head {
                h1 { "Inbox" }
                (new_chat())
            }
            (views(view, &counts, params))
            form.filters method="get" action="/inbox" role="search" {
                input type="hidden" name="view" value=(view);
                label for="q" { (if view == "contacts" { "Search name or phone" } else { "Search name, phone or message" }) }
                div.search-row {
                    input #q name="q" type="search" value=(search) placeholder="Ana, +91 98000 00002, appointment";
                    button type="submit" { "Search" }
                }
                label for="tag" { "Tag" }
                select #tag name="tag" data-autosubmit {
                    option value="" { "Any tag" }
                    @for t in &all_tags {
                        option value=(t.id) selected[tag == Some(t.id)] { (t.name) " (" (t.contact_count) ")" }
                    }
                }
            }
            @if rows.is_empty() {
                p.empty { (empty_text(view, params)) }
            }
            ul.conversations aria-label="Conversations, unread first" {
                @for c in &rows { (row(c, &team, open, &keep, view)) }
            }
            @if rows.iter().any(|c| c.conversation.needs_reply) {
                p.legend { span.needs-dot aria-hidden="true" { "●" } " waiting for your reply" }
            }
            nav.pager aria-label="Pages" {
                @if params.cursor.is_some() {
                    a href={ "/inbox" (keep) } { "← First page" }
                }
                @if let Some(cursor) = next {
                    a href={ "/inbox" (query(&[("view", Some(view.to_string())), ("q", params.q.clone()), ("tag", params.tag.clone()), ("cursor", Some(cursor))])) } rel="next" { "More →" }
                }
            }
            ul.links {
                @if user.role.can(heydoc_domain::Permission::Audience) {
                    li { a href="/contacts/import" { "Import / export contacts" } }
                }
                li { a href="/replies" { "Canned replies" } }
                li data-notify hidden { button.link type="button" data-action="notify" { "Notify me of new messages" } }
            }
        }
    };
    Ok(ListPane {
        markup,
        unread: counts.unread,
    })
}

fn empty_text(view: &str, params: &InboxParams) -> &'static str {
    if params.q.as_deref().is_some_and(|q| !q.trim().is_empty()) || params.tag_id().is_some() {
        return "Nothing matches. Try fewer words, or another view.";
    }
    match view {
        "needs_reply" => "Nobody is waiting for a reply.",
        "mine" => "No conversation is assigned to you.",
        "unassigned" => "Every conversation has someone.",
        "resolved" => "No resolved conversations.",
        "contacts" => "No contacts yet. Import a list or start a chat.",
        _ => "No conversations yet. Messages sent to your WhatsApp number appear here as they arrive.",
    }
}

/// The views as tabs with their counts.
fn views(current: &str, counts: &ConversationCounts, params: &InboxParams) -> Markup {
    let tabs: [(&str, &str, Option<u64>); 6] = [
        ("needs_reply", "Needs reply", Some(counts.needs_reply)),
        ("mine", "Mine", Some(counts.mine)),
        ("unassigned", "Unassigned", Some(counts.unassigned)),
        ("all", "All open", None),
        ("resolved", "Resolved", None),
        ("contacts", "All contacts", None),
    ];
    html! {
        nav.views aria-label="Views" {
            @for (key, label, count) in tabs {
                @let href = format!("/inbox{}", query(&[("view", Some(key.to_string())), ("q", params.q.clone()), ("tag", params.tag.clone())]));
                a href=(href) aria-current=[(key == current).then_some("page")] data-view=(key) {
                    (label)
                    @if let Some(n) = count { " " span.count { (n) } }
                }
            }
        }
    }
}

fn new_chat() -> Markup {
    html! {
        details.new-chat {
            summary { "New chat" }
            form data-api="/api/contacts" data-method="POST" data-then="/chat/{phone}" data-if-exists="/chat/{phone}" {
                label for="new-phone" { "Phone number, country code first" }
                input #new-phone name="phone" inputmode="tel" required placeholder="+91 98000 00002";
                label for="new-name" { "Name (optional)" }
                input #new-name name="name";
                (form_error())
                button type="submit" { "Start chat" }
            }
        }
    }
}

fn row(c: &ContactOut, team: &[Assignee], open: Option<&str>, keep: &str, view: &str) -> Markup {
    let title = if c.name.is_empty() {
        phone_shown(&c.phone)
    } else {
        c.name.clone()
    };
    let chat = format!("/chat/{}{keep}", c.phone);
    let assignee = c
        .conversation
        .assignee_id
        .and_then(|id| team.iter().find(|a| a.id == id))
        .map(|a| a.username.as_str());
    // Our own reply was the last conversation message: the preview says so.
    let ours = !c.conversation.needs_reply && c.conversation.last_at.is_some();
    let when = if view == "contacts" {
        c.last_message_at
    } else {
        c.conversation.last_at.or(c.last_message_at)
    };
    html! {
        li.conv data-phone=(c.phone) data-unread=(c.unread_count) data-needs-reply=(c.conversation.needs_reply)
            data-status=(c.conversation.status) aria-current=[(open == Some(c.phone.as_str())).then_some("true")] {
            a.open href=(chat) {
                span.name {
                    (title)
                    @if c.conversation.needs_reply {
                        " " span.needs-dot title="Waiting for your reply" { span aria-hidden="true" { "●" } span.sr-only { "waiting for a reply" } }
                    }
                    // The phone after the name, cut first when the row is narrow.
                    @if !c.name.is_empty() { " " span.phone { (phone_shown(&c.phone)) } }
                }
                @if let Some(at) = when { span.when { (time_compact(at)) } }
                span.preview {
                    @if ours { span.you { "You: " } }
                    (clip(&c.last_message, 90))
                }
                span.side {
                    @if c.unread_count > 0 {
                        span.badge {
                            span aria-hidden="true" { (c.unread_count) }
                            span.sr-only { (c.unread_count) " unread" }
                        }
                    }
                }
                // Who has it, its state, tags: a third line only when there is any.
                @if assignee.is_some() || c.conversation.status != "open" || !c.tags.is_empty() || c.opted_out {
                    span.sub {
                        @if let Some(who) = assignee { span.assignee title="Assigned to" { "● " (who) } }
                        @if c.conversation.status == "pending" { span.chip.pending { "pending" } }
                        @if c.conversation.status == "resolved" { span.chip.resolved { "resolved" } }
                        @for t in c.tags.iter().take(3) { (tag_chip(&t.name, &t.color)) }
                        @if c.opted_out { span.flag { "opted out" } }
                    }
                }
            }
        }
    }
}

/// Every tag as a one-click toggle for this contact (pressed: the contact has it).
pub fn tag_toggles(phone: &str, current: &[i32], all_tags: &[TagWithCount]) -> Markup {
    html! {
        @if all_tags.is_empty() {
            p.hint { "No tags yet. " a href="/tags" { "Create one" } }
        } @else {
            ul.tag-toggles aria-label="Tags" {
                @for t in all_tags {
                    @let on = current.contains(&t.id);
                    li {
                        form.inline data-api={ "/api/contacts/" (phone) "/tags/" (t.id) } data-method=(if on { "DELETE" } else { "POST" }) data-then="refresh" {
                            button.tag-toggle type="submit" aria-pressed=(if on { "true" } else { "false" })
                                title=(if on { format!("Remove the tag {}", t.name) } else { format!("Add the tag {}", t.name) }) {
                                (if on { "✓ " } else { "+ " }) (t.name)
                            }
                        }
                    }
                }
            }
        }
    }
}
