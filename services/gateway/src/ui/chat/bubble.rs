//! One chat line as it was sent: a message with its tick, failure in plain words, reactions
//! and edits, and every kind a patient can send (location, shared contacts, an order, a
//! flow's answers) as a card; and a private note among them.

use maud::{html, Markup};

use crate::core::conversations::NoteOut;
use crate::core::messages::MessageOut;
use crate::ui::format::{phone_shown, plain_error, tick, time};
use heydoc_store::media::MediaFile;

pub(super) fn note(n: &NoteOut) -> Markup {
    html! {
        li.note data-note=(n.id) {
            p.note-by { "Private note by " strong { (n.author) } " · " (time(n.created_at)) }
            p.text { (n.body) }
        }
    }
}

pub(super) fn bubble(
    m: &MessageOut,
    media: Option<&MediaFile>,
    phone: &str,
    in_window: bool,
) -> Markup {
    let incoming = m.direction == "incoming";
    let (symbol, words) = tick(&m.status);
    let template_name = (m.message_type == "template")
        .then(|| {
            m.template
                .as_ref()
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
        })
        .flatten();
    html! {
        li class={ "msg " (if m.message_type == "system" { "system" } else if incoming { "in" } else { "out" }) } data-id=(m.id) data-status=(m.status) data-type=(m.message_type) {
            @if let Some(name) = template_name {
                p.template-label { "Template " strong { (name) } }
            }
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
            @if m.deleted_at.is_some() {
                p.text.deleted { (if incoming { "They deleted this message." } else { "This message was deleted." }) }
            } @else if m.message_type == "system" {
                p.text.system { span.sr-only { "WhatsApp says: " } (m.message_text) }
            } @else if let Some(place) = &m.location {
                (location_card(place))
            } @else if !m.shared_contacts.is_empty() {
                (contact_cards(&m.shared_contacts))
            } @else if let Some(order) = &m.order {
                (order_card(order))
            } @else if let Some(flow) = &m.flow_reply {
                (flow_card(flow))
            } @else {
                p.text {
                    span.sr-only { (if incoming { "They wrote: " } else { "You wrote: " }) }
                    (m.message_text)
                }
            }
            @if !m.reactions.is_empty() {
                p.reactions {
                    @for r in &m.reactions {
                        span.reaction title={ "Reaction from " (phone_shown(&r.from)) } {
                            span aria-hidden="true" { (r.emoji) }
                            span.sr-only { "Reacted " (r.emoji) }
                        }
                    }
                }
            }
            @if m.edited_at.is_some() && m.deleted_at.is_none() {
                details.edited {
                    summary { "Edited" }
                    ol {
                        @for e in &m.edits {
                            li { (e.text) @if let Some(at) = e.replaced_at { " " span.when { "(until " (time(at)) ")" } } }
                        }
                    }
                }
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
            @if matches!(m.status.as_str(), "failed" | "skipped" | "unknown" | "retrying") {
                @if let Some(reason) = &m.error_reason {
                    p.reason {
                        @match plain_error(m.error_code) {
                            Some(plain) => { (plain) }
                            None => { (words) ": " (reason) }
                        }
                    }
                }
                @if m.status == "failed" && !incoming {
                    div.retry {
                        @if in_window && m.message_type == "text" {
                            form.inline data-api="/api/send_message" data-method="POST" data-then="refresh" {
                                input type="hidden" name="phone_number" value=(phone);
                                input type="hidden" name="message" value=(m.message_text);
                                button.small type="submit" { "Resend" }
                            }
                        }
                        button.small.secondary type="button" data-action="use-template" { "Send as template" }
                    }
                }
            }
        }
    }
}

/// A shared place: its name and address, and a map link.
fn location_card(place: &heydoc_whatsapp::message_kinds::Location) -> Markup {
    html! {
        div.card-msg.location {
            p.text {
                "📍 "
                strong { (place.name.clone().unwrap_or_else(|| "A location".into())) }
                @if let Some(address) = &place.address { br; (address) }
            }
            p { a href=(place.map_url) target="_blank" rel="noopener noreferrer" { "Open the map" } }
        }
    }
}

/// Shared contact cards: names and numbers, each number one click from a chat of its own.
fn contact_cards(cards: &[heydoc_whatsapp::message_kinds::SharedContact]) -> Markup {
    html! {
        ul.card-msg.contacts aria-label="Shared contacts" {
            @for c in cards {
                li {
                    p.text { "👤 " strong { (c.name) } @if let Some(company) = &c.company { " · " (company) } }
                    @for p in &c.phones {
                        @let digits: String = p.wa_id.clone().unwrap_or_else(|| p.phone.chars().filter(char::is_ascii_digit).collect());
                        p.shared-phone {
                            (p.phone)
                            @if digits.len() >= 6 {
                                " "
                                form.inline data-api="/api/contacts" data-method="POST" data-then="/chat/{phone}" data-if-exists="/chat/{phone}" {
                                    input type="hidden" name="phone" value=(digits);
                                    input type="hidden" name="name" value=(c.name);
                                    button.small.secondary type="submit" { "Add and chat" }
                                }
                            }
                        }
                    }
                    @for e in &c.emails { p.shared-email { (e) } }
                }
            }
        }
    }
}

/// An order from the catalog, item by item.
fn order_card(order: &heydoc_whatsapp::message_kinds::Order) -> Markup {
    html! {
        div.card-msg.order {
            p.text { "🛒 " strong { "Order" } @if let Some(t) = &order.text { ": " (t) } }
            table.order-items {
                thead { tr { th scope="col" { "Item" } th scope="col" { "Qty" } th scope="col" { "Price" } } }
                tbody {
                    @for i in &order.items {
                        tr { td { (i.product_retailer_id) } td { (i.quantity) } td { (format!("{:.2} {}", i.item_price, i.currency)) } }
                    }
                }
            }
        }
    }
}

/// A WhatsApp Flow's answers, field by field.
fn flow_card(flow: &heydoc_whatsapp::message_kinds::FlowReply) -> Markup {
    html! {
        div.card-msg.flow {
            p.text { "📝 " strong { (flow.body.clone().unwrap_or_else(|| "Form sent".into())) } }
            @if !flow.fields.is_empty() {
                dl {
                    @for (k, v) in &flow.fields {
                        dt { (k) }
                        dd { (match v { serde_json::Value::String(s) => s.clone(), other => other.to_string() }) }
                    }
                }
            }
        }
    }
}
