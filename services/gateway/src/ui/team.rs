//! People (admins): the team with their roles, and in one click each, disable (their sessions
//! and keys stop at once), enable, delete, reset a password or sign out everywhere; the audit
//! log of who did what; and everyone's own account page (password, sessions).

use axum::extract::{Query, State};
use maud::{html, Markup};

use crate::core::audit::{self, AuditOut, AuditParams};
use crate::core::users::{self, SessionOut, UserOut};
use crate::state::AppState;
use crate::ui::format::{status_badge, time};
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

const ROLES: [(&str, &str); 3] = [
    ("agent", "Agent: inbox and chats"),
    ("manager", "Manager: also campaigns, imports, exports, tags"),
    ("admin", "Admin: also people, keys, endpoints, numbers"),
];

pub async fn team(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult {
    let people = users::list(&state, &user).await?;
    let main = html! {
        h1 { "Team" }
        section.card aria-labelledby="new-user-title" {
            h2 #new-user-title { "Add someone" }
            form data-api="/api/users" data-method="POST" data-then="refresh" data-reset aria-label="New account" {
                label for="new-username" { "Username" }
                input #new-username name="username" required minlength="3" maxlength="64" autocomplete="off";
                label for="new-password" { "First password (give it to them; they change it under their name)" }
                input #new-password name="password" type="password" required minlength="8" maxlength="128" autocomplete="new-password";
                label for="new-role" { "Role" }
                select #new-role name="role" {
                    @for (value, label) in ROLES { option value=(value) { (label) } }
                }
                (form_error())
                button type="submit" { "Add" }
            }
        }
        section #team.card data-live="team" aria-labelledby="team-title" {
            h2 #team-title { "People" }
            div.scroll {
                table.team {
                    caption.sr-only { "People" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Since" } th scope="col" { "State" } th scope="col" { "Actions" } } }
                    tbody { @for p in &people { (person(p, user.user_id)) } }
                }
            }
        }
    };
    Ok(shell("Team", &user, Nav::Team, main))
}

fn person(p: &UserOut, me: i32) -> Markup {
    let gone = p.deleted_at.is_some();
    html! {
        tr data-user=(p.id) data-state=(if gone { "deleted" } else if p.disabled { "disabled" } else { "active" }) {
            td { (p.username) @if p.id == me { " " span.chip { "you" } } }
            td {
                @if gone || p.id == me {
                    (p.role)
                } @else {
                    form.inline data-api={ "/api/users/" (p.id) } data-method="PATCH" data-then="refresh" aria-label={ "Role of " (p.username) } {
                        select name="role" aria-label={ "Role of " (p.username) } {
                            @for (value, label) in ROLES {
                                option value=(value) selected[p.role == value] { (label) }
                            }
                        }
                        button type="submit" { "Save" span.sr-only { " role of " (p.username) } }
                        (form_error())
                    }
                }
            }
            td { (time(p.created_at)) }
            td {
                @if gone { (status_badge("deleted")) }
                @else if p.disabled { (status_badge("disabled")) }
                @else { (status_badge("active")) }
            }
            td.actions {
                @if !gone && p.id != me {
                    @if p.disabled {
                        form.inline data-api={ "/api/users/" (p.id) } data-method="PATCH" data-then="refresh" {
                            input type="hidden" name="disabled" value="false" data-type="bool";
                            button type="submit" { "Enable" span.sr-only { " " (p.username) } }
                        }
                    } @else {
                        form.inline data-api={ "/api/users/" (p.id) } data-method="PATCH" data-then="refresh"
                            data-confirm={ "Disable " (p.username) "? They are signed out everywhere at once and their API keys stop working." } {
                            input type="hidden" name="disabled" value="true" data-type="bool";
                            button.danger type="submit" { "Disable" span.sr-only { " " (p.username) } }
                        }
                    }
                    form.inline data-api={ "/api/users/" (p.id) "/sessions" } data-method="DELETE" data-then="refresh" {
                        button type="submit" { "Sign out everywhere" span.sr-only { " (" (p.username) ")" } }
                    }
                    details.inline {
                        summary { "Reset password" span.sr-only { " of " (p.username) } }
                        form data-api={ "/api/users/" (p.id) "/password" } data-method="POST" data-then="refresh" {
                            label for={ "reset-" (p.id) } { "New password for " (p.username) }
                            input id={ "reset-" (p.id) } name="password" type="password" required minlength="8" maxlength="128" autocomplete="new-password";
                            (form_error())
                            button type="submit" { "Set password" }
                        }
                    }
                    form.inline data-api={ "/api/users/" (p.id) } data-method="DELETE" data-then="refresh"
                        data-confirm={ "Delete " (p.username) "? They can never sign in again; what they did stays in the log under their name." } {
                        button.danger type="submit" { "Delete" span.sr-only { " " (p.username) } }
                    }
                    a href={ "/audit?user_id=" (p.id) } { "What they did" }
                }
            }
        }
    }
}

pub async fn audit_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Query(params): Query<AuditParams>,
) -> PageResult {
    let who = params.user_id;
    let entries = audit::list(&state, &user, params).await?;
    let next = entries.last().map(|e| e.id);
    let main = html! {
        h1 { "Audit log" }
        p.hint { "Sign-ins, account changes, keys, endpoints, exports, imports, deletions and campaign changes: who, what, when and from where." }
        @if let Some(id) = who { p { "Only user " (id) "'s actions. " a href="/audit" { "Everyone's" } } }
        section #audit.card data-live="audit" {
            @if entries.is_empty() {
                p.empty { "Nothing recorded yet." }
            } @else {
                div.scroll {
                    table.audit {
                        caption.sr-only { "Audit log" }
                        thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "On" } th scope="col" { "Details" } th scope="col" { "From" } } }
                        tbody { @for e in &entries { (entry(e)) } }
                    }
                }
            }
        }
        @if let Some(before) = next.filter(|_| entries.len() >= 100) {
            p { a href={ "/audit?before=" (before) @if let Some(id) = who { "&user_id=" (id) } } { "Older" } }
        }
    };
    Ok(shell("Audit log", &user, Nav::Audit, main))
}

fn entry(e: &AuditOut) -> Markup {
    html! {
        tr data-action=(e.action) {
            td { (time(e.at)) }
            td { (e.actor) }
            td { code { (e.action) } }
            td { (e.target.as_deref().unwrap_or("")) }
            td { @if let Some(d) = &e.detail { code { (d.to_string()) } } }
            td { (e.address.as_deref().unwrap_or("")) }
        }
    }
}

pub async fn account(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult {
    let sessions = users::sessions(&state, &user, user.user_id).await?;
    let main = html! {
        h1 { "Your account" }
        p { "Signed in as " strong { (user.username) } " (" (user.role) ")." }
        section.card aria-labelledby="password-title" {
            h2 #password-title { "Change your password" }
            form data-api="/api/me/password" data-method="PUT" data-then="refresh" data-reset {
                label for="current-password" { "Current password" }
                input #current-password name="current_password" type="password" required autocomplete="current-password";
                label for="new-password" { "New password (at least 8 characters)" }
                input #new-password name="new_password" type="password" required minlength="8" maxlength="128" autocomplete="new-password";
                (form_error())
                button type="submit" { "Change password" }
            }
            p.hint { "Your other sessions end; this one stays." }
        }
        section #sessions.card data-live="sessions" aria-labelledby="sessions-title" {
            h2 #sessions-title { "Where you are signed in" }
            ul.sessions { @for s in &sessions { (session(s)) } }
            form data-api={ "/api/users/" (user.user_id) "/sessions" } data-method="DELETE" data-then="/login"
                data-confirm="Sign out everywhere, this browser included?" {
                button.danger type="submit" { "Sign out everywhere" }
            }
        }
    };
    Ok(shell("Your account", &user, Nav::Account, main))
}

fn session(s: &SessionOut) -> Markup {
    html! {
        li {
            (time(s.created_at)) " · " (s.address.as_deref().unwrap_or("unknown address"))
            " · " (s.user_agent.as_deref().unwrap_or("unknown browser"))
            @if s.current { " " span.chip { "this browser" } }
        }
    }
}
