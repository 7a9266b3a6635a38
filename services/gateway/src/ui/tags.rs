//! Tags: create, rename, recolor, delete; each with the number of contacts carrying it.

use axum::extract::State;
use maud::html;

use crate::core::tags;
use crate::state::AppState;
use crate::ui::format::tag_chip;
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

pub async fn page(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult {
    let all = tags::list(&state).await?;
    let main = html! {
        h1 { "Tags" }
        form.card.row data-api="/api/tags" data-method="POST" data-then="reload" aria-label="New tag" {
            div {
                label for="new-tag" { "New tag" }
                input #new-tag name="name" required maxlength="64";
            }
            div {
                label for="new-color" { "Color" }
                input #new-color name="color" type="color" value="#128c7e";
            }
            button type="submit" { "Add tag" }
            (form_error())
        }
        @if all.is_empty() {
            p.empty { "No tags yet. Tags group contacts for filtering the inbox and for campaign audiences." }
        }
        ul.tags {
            @for t in &all {
                li.tag data-id=(t.id) {
                    (tag_chip(&t.name, &t.color))
                    a href={ "/inbox?tag=" (t.id) } { (t.contact_count) " contact" @if t.contact_count != 1 { "s" } }
                    details {
                        summary { "Edit" span.sr-only { " " (t.name) } }
                        form.row data-api={ "/api/tags/" (t.id) } data-method="PUT" data-then="reload" {
                            div {
                                label for={ "name-" (t.id) } { "Name" }
                                input id={ "name-" (t.id) } name="name" value=(t.name) required maxlength="64";
                            }
                            div {
                                label for={ "color-" (t.id) } { "Color" }
                                input id={ "color-" (t.id) } name="color" type="color" value=(t.color);
                            }
                            button type="submit" { "Save" }
                            (form_error())
                        }
                        form.inline data-api={ "/api/tags/" (t.id) } data-method="DELETE" data-then="reload"
                            data-confirm={ "Delete the tag " (t.name) "? Contacts keep their chats." } {
                            button.danger type="submit" { "Delete" }
                        }
                    }
                }
            }
        }
    };
    Ok(shell("Tags", &user, Nav::Tags, main))
}
