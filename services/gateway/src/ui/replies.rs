//! Canned replies: the team's reusable answers, offered in a chat when someone types
//! `/shortcut`.

use axum::extract::State;
use maud::html;

use crate::core::conversations;
use crate::state::AppState;
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

pub async fn page(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult {
    let all = conversations::canned_replies(&state).await?;
    let main = html! {
        h1 { "Canned replies" }
        p.hint { "In a chat, type / and the start of a shortcut, then pick the reply (or press Enter on it). Managers can delete them." }
        form.card data-api="/api/canned-replies" data-method="POST" data-then="reload" aria-label="New canned reply" {
            label for="shortcut" { "Shortcut (letters, digits, - or _)" }
            input #shortcut name="shortcut" required maxlength="41" placeholder="hours" autocomplete="off";
            label for="reply-body" { "Reply" }
            textarea #reply-body name="body" required rows="3" maxlength="4096" placeholder="We are open 9:00-18:00, Monday to Saturday." {}
            (form_error())
            button type="submit" { "Add canned reply" }
        }
        @if all.is_empty() {
            p.empty { "No canned replies yet." }
        }
        ul.replies {
            @for r in &all {
                li.reply data-shortcut=(r.shortcut) {
                    p { strong { "/" (r.shortcut) } }
                    p.text { (r.body) }
                    @if user.role.can(heydoc_domain::Permission::Audience) {
                    form.inline data-api={ "/api/canned-replies/" (r.id) } data-method="DELETE" data-then="reload"
                        data-confirm={ "Delete the canned reply /" (r.shortcut) "?" } {
                        button.small.danger type="submit" { "Delete" span.sr-only { " /" (r.shortcut) } }
                    }
                    }
                }
            }
        }
    };
    Ok(shell("Canned replies", &user, Nav::Inbox, main))
}
