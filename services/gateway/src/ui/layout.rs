//! The page shell: head, navigation, and the main landmark.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};

use crate::auth::AuthUser;
use crate::ui::assets::VERSION;

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Inbox,
    Campaigns,
    Tags,
    Integrations,
    Team,
    Audit,
    Account,
}

impl Nav {
    /// Every entry, shown to those whose role may open its page (`auth::policy::page`).
    const ALL: [(Nav, &'static str, &'static str); 6] = [
        (Nav::Inbox, "/inbox", "Inbox"),
        (Nav::Campaigns, "/campaigns", "Campaigns"),
        (Nav::Tags, "/tags", "Tags"),
        (Nav::Integrations, "/integrations", "Integrations"),
        (Nav::Team, "/team", "Team"),
        (Nav::Audit, "/audit", "Audit log"),
    ];
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · HeyDoc" }
            link rel="icon" href={ "/assets/icon.svg?v=" (*VERSION) };
            link rel="stylesheet" href={ "/assets/app.css?v=" (*VERSION) };
            script src={ "/assets/app.js?v=" (*VERSION) } defer {}
        }
    }
}

/// A signed-in page.
pub fn shell(title: &str, user: &AuthUser, current: Nav, main: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/inbox" { img src={ "/assets/icon.svg?v=" (*VERSION) } alt="" width="24" height="24"; " HeyDoc" }
                    nav aria-label="Main" {
                        ul {
                            @for (nav, href, label) in Nav::ALL {
                                @if user.role.can(crate::auth::policy::page(href)) {
                                    li {
                                        @if nav == current {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        @if current == Nav::Account {
                            a href="/account" aria-current="page" { (user.username) }
                        } @else {
                            a href="/account" title="Your account: password and sessions" { (user.username) }
                        }
                        button.link type="button" data-action="logout" { "Log out" }
                    }
                }
                main #main tabindex="-1" { (main) }
                div #toast role="status" aria-live="polite" {}
            }
        }
    };
    Html(markup.into_string())
}

/// A page without navigation: login, registration, errors.
pub fn bare(title: &str, main: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main { (main) }
            }
        }
    };
    Html(markup.into_string())
}

/// A form's error line, filled in by the script from the API's JSON error.
pub fn form_error() -> Markup {
    html! { p.form-error role="alert" hidden {} }
}
