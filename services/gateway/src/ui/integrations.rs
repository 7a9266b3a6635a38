//! Integrations (admins): the business numbers HeyDoc sends from (with their state: a number
//! that cannot send says why), API keys for machine clients and endpoints for outbound events.
//! Keys and signing secrets are shown once, right after they are made.

use axum::extract::State;
use maud::{html, Markup};

use crate::core::api_keys::{self, KeyOut};
use crate::core::event_endpoints::{self, EndpointOut};
use crate::core::numbers::{self, NumberOut};
use crate::state::AppState;
use crate::ui::format::{status_badge, time};
use crate::ui::layout::{form_error, shell, Nav};
use crate::ui::page::{PageResult, PageUser};

pub async fn page(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult {
    // The API's own checks: admins, from a session.
    let keys = api_keys::list(&state, &user).await?;
    let endpoints = event_endpoints::list(&state, &user).await?;
    let numbers = numbers::list(&state, &user).await?;
    let main = html! {
        h1 { "Integrations" }
        div #secret-box.card hidden role="status" {
            p { strong { "Copy these now: they are not shown again." } }
            ul #secret-list.secrets {}
        }
        section #integrations data-live="integrations" {
            (numbers_section(&numbers))
            (keys_section(&keys))
            (endpoints_section(&endpoints))
        }
    };
    Ok(shell("Integrations", &user, Nav::Integrations, main))
}

/// Meta's messaging limit in words: how many people a day outside a conversation.
fn limit_words(tier: Option<&str>) -> String {
    match tier {
        None => "not reported".into(),
        Some("TIER_UNLIMITED") => "unlimited".into(),
        Some(t) => match t.strip_prefix("TIER_") {
            Some(n) => format!("{} people", n.replace('K', ",000")),
            None => t.to_string(),
        },
    }
}

fn numbers_section(numbers: &[NumberOut]) -> Markup {
    html! {
        section.card aria-labelledby="numbers-title" {
            h2 #numbers-title { "Business numbers" }
            p.hint { "The numbers HeyDoc sends from. Add one with " code { "POST /api/numbers" } "; a number that cannot send (an expired token, a blocked account) pauses here with WhatsApp's reason, and its messages wait." }
            div.scroll {
                table.numbers {
                    caption.sr-only { "Business numbers" }
                    thead { tr { th scope="col" { "Number" } th scope="col" { "Phone number id" } th scope="col" { "Rate" } th scope="col" { "Daily limit" } th scope="col" { "Quality" } th scope="col" { "State" } } }
                    tbody {
                        @for n in numbers {
                            tr data-number=(n.phone_number_id) data-state=(n.state) {
                                td { (n.display_number) @if n.is_default { " " span.chip { "default" } } }
                                td { code { (n.phone_number_id) } }
                                td { (n.mps) "/s" }
                                td.limit { (limit_words(n.messaging_limit.as_deref())) }
                                td.quality { (n.quality.as_deref().map(str::to_lowercase).unwrap_or_else(|| "not reported".into())) }
                                td {
                                    (status_badge(&n.state))
                                    @if let Some(why) = &n.state_reason { " " span.reason { (why) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn keys_section(keys: &[KeyOut]) -> Markup {
    html! {
        section.card aria-labelledby="keys-title" {
            h2 #keys-title { "API keys" }
            p.hint { "Machine clients send " code { "Authorization: Bearer <key>" } ". A read key can only read." }
            form.row data-api="/api/api-keys" data-method="POST" data-then="secret:key" data-secret-label="API key {name} ({scope})" aria-label="New API key" {
                div {
                    label for="key-name" { "Name" }
                    input #key-name name="name" required maxlength="100" placeholder="CRM sync";
                }
                div {
                    label for="key-scope" { "Scope" }
                    select #key-scope name="scope" {
                        option value="read" { "read" }
                        option value="write" { "write" }
                    }
                }
                button type="submit" { "Create key" }
                (form_error())
            }
            @if keys.is_empty() {
                p.empty { "No keys yet." }
            } @else {
                div.scroll {
                    table.keys {
                        caption.sr-only { "API keys" }
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Scope" } th scope="col" { "Last used" } th scope="col" { "State" } } }
                        tbody {
                            @for k in keys {
                                tr data-key=(k.id) {
                                    td { (k.name) }
                                    td { code { (k.prefix) "…" } }
                                    td { (k.scope) }
                                    td { @if let Some(at) = k.last_used_at { (time(at)) } @else { "never" } }
                                    td {
                                        @if k.revoked_at.is_some() {
                                            (status_badge("revoked"))
                                        } @else {
                                            form.inline data-api={ "/api/api-keys/" (k.id) } data-method="DELETE" data-then="refresh"
                                                data-confirm={ "Revoke the key " (k.name) "? Clients using it stop at once." } {
                                                button.danger type="submit" { "Revoke" span.sr-only { " " (k.name) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn endpoints_section(endpoints: &[EndpointOut]) -> Markup {
    html! {
        section.card aria-labelledby="events-title" {
            h2 #events-title { "Outbound events" }
            p.hint {
                "Each event is POSTed as JSON with " code { "X-HeyDoc-Signature: t=…,v1=…" }
                " (HMAC-SHA256 of " code { "t.body" } " with the endpoint's secret), retried until it is accepted."
            }
            form data-api="/api/event-endpoints" data-method="POST" data-then="secret:secret" data-secret-label="Signing secret for {url}" aria-label="New endpoint" {
                label for="endpoint-url" { "URL" }
                input #endpoint-url name="url" type="url" required placeholder="https://crm.example.com/heydoc";
                fieldset {
                    legend { "Events (none ticked: all)" }
                    @for kind in heydoc_store::events::EVENT_TYPES {
                        label.check { input type="checkbox" name="events[]" value=(kind); " " (kind) }
                    }
                }
                (form_error())
                button type="submit" { "Add endpoint" }
            }
            @if endpoints.is_empty() {
                p.empty { "No endpoints yet." }
            } @else {
                ul.endpoints {
                    @for e in endpoints {
                        li.card data-endpoint=(e.id) data-enabled=(e.enabled) {
                            p { code { (e.url) } }
                            p {
                                @if e.enabled { (status_badge("enabled")) } @else { (status_badge("disabled")) }
                                " " (e.pending) " waiting · "
                                @if e.events.is_empty() { "all events" } @else { (e.events.join(", ")) }
                            }
                            @if let Some(reason) = &e.disabled_reason { p.reason role="note" { (reason) } }
                            @if let Some(since) = e.failing_since { p.reason { "Failing since " (time(since)) } }
                            form.inline data-api={ "/api/event-endpoints/" (e.id) } data-method="PUT" data-then="refresh" {
                                input type="hidden" name="enabled" data-type="bool" value=(if e.enabled { "false" } else { "true" });
                                button type="submit" { @if e.enabled { "Disable" } @else { "Enable" } }
                            }
                            " "
                            form.inline data-api={ "/api/event-endpoints/" (e.id) } data-method="DELETE" data-then="refresh"
                                data-confirm="Delete this endpoint and its delivery log?" {
                                button.danger type="submit" { "Delete" }
                            }
                        }
                    }
                }
            }
        }
    }
}
