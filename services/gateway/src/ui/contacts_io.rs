//! Importing contacts from a spreadsheet (with a progress bar and the rejected rows) and
//! exporting them, on one page.

use axum::extract::State;
use maud::html;

use crate::core::tags;
use crate::state::AppState;
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

pub async fn page(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult {
    let all_tags = tags::list(&state).await?;
    let main = html! {
        h1 { "Import and export contacts" }
        section.card aria-labelledby="import-title" {
            h2 #import-title { "Import a CSV file" }
            p {
                "The first row names the columns: " code { "phone" } " (required, country code first), "
                code { "name" } ", " code { "tags" } " (separated by " code { ";" } "; new tags are created) "
                "and any other column, which becomes a custom attribute of that name. Contacts are "
                "matched by phone: names and attributes are updated, tags are added, nothing is removed. "
                "Importing the same file twice changes nothing. The file is checked first: you see "
                "what its first rows will do before anything changes."
            }
            form #import-form data-import {
                label for="import-file" { "CSV file" }
                input #import-file name="file" type="file" accept=".csv,text/csv" required;
                (form_error())
                section #import-preview hidden aria-labelledby="preview-title" {
                    h3 #preview-title { "Before importing" }
                    p #preview-summary role="status" {}
                    div.scroll {
                        table.preview {
                            caption.sr-only { "The file's first rows and what each will do" }
                            thead { tr { th scope="col" { "Line" } th scope="col" { "Contact" } th scope="col" { "Will" } th scope="col" { "Details" } } }
                            tbody {}
                        }
                    }
                }
                button type="submit" #import-button { "Check the file" }
                button.secondary type="button" #import-cancel hidden { "Choose another file" }
            }
            div #import-result hidden {
                label for="import-progress" { "Progress" }
                progress #import-progress max="1" value="0" {}
                p #import-status role="status" aria-live="polite" {}
                ul.counts {
                    li { "created " strong data-count="created" { "0" } }
                    li { "updated " strong data-count="updated" { "0" } }
                    li { "unchanged " strong data-count="unchanged" { "0" } }
                    li { "rejected " strong data-count="rejected" { "0" } }
                }
                div #import-rejects hidden {
                    h3 { "Rejected rows" }
                    div.scroll {
                        table {
                            caption.sr-only { "Rows the import refused, by line" }
                            thead { tr { th scope="col" { "Line" } th scope="col" { "Row" } th scope="col" { "Why" } } }
                            tbody {}
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="export-title" {
            h2 #export-title { "Export" }
            form.row method="get" action="/api/contacts/export" {
                div {
                    label for="export-tag" { "Contacts with the tag" }
                    select #export-tag name="tag" {
                        option value="" { "All contacts" }
                        @for t in &all_tags { option value=(t.id) { (t.name) " (" (t.contact_count) ")" } }
                    }
                }
                button type="submit" { "Download CSV" }
            }
            p.hint { "The export can be edited and imported again." }
        }
    };
    Ok(shell("Import and export", &user, Nav::Inbox, main))
}
