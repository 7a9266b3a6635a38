//! Every kind of inbound message as the patient sent it, read from Meta's per-type shapes
//! (Meta's OpenAPI file, and its webhook references for edits and revokes): what the chat line
//! says, what a message does to an earlier one (a reaction, an edit, a deletion), and the
//! details a kind carries (a location, shared contacts, an order, a flow's answers). The raw
//! message is stored as it came; these read it.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// What an inbound entry does to an earlier message instead of being a chat line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    /// A reaction to `target` (a wamid); `None` removes the sender's reaction.
    Reaction {
        target: String,
        emoji: Option<String>,
    },
    /// `target`'s text (or caption) is now `text`.
    Edit { target: String, text: String },
    /// The sender deleted `target`.
    Revoke { target: String },
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// A number Meta may write as a number or as a string.
fn number_at(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What a message does to an earlier one, when it is a reaction, an edit or a revoke.
pub fn change_of(msg: &Value) -> Option<MessageChange> {
    match str_at(msg, &["type"])? {
        "reaction" => Some(MessageChange::Reaction {
            target: str_at(msg, &["reaction", "message_id"])?.to_string(),
            emoji: str_at(msg, &["reaction", "emoji"])
                .filter(|e| !e.is_empty())
                .map(str::to_string),
        }),
        "edit" => {
            let edited = msg.get("edit")?;
            let target = str_at(edited, &["original_message_id"])?.to_string();
            let message = edited.get("message").unwrap_or(&Value::Null);
            let text = text_of(message).unwrap_or_default();
            Some(MessageChange::Edit { target, text })
        }
        "revoke" => Some(MessageChange::Revoke {
            target: str_at(msg, &["revoke", "original_message_id"])?.to_string(),
        }),
        _ => None,
    }
}

/// What the chat line says for a message, in the words the patient sent where there are any;
/// `None` for a kind HeyDoc cannot put in words (the caller shows `[kind]`).
pub fn text_of(msg: &Value) -> Option<String> {
    let kind = str_at(msg, &["type"]).unwrap_or("text");
    let text = match kind {
        "text" => str_at(msg, &["text", "body"]).map(str::to_string),
        "button" => str_at(msg, &["button", "text"]).map(str::to_string),
        "interactive" => str_at(msg, &["interactive", "button_reply", "title"])
            .or_else(|| str_at(msg, &["interactive", "list_reply", "title"]))
            .map(str::to_string)
            .or_else(|| flow_reply(msg).map(|f| f.summary())),
        "image" | "video" | "document" | "sticker" | "audio" => {
            str_at(msg, &[kind, "caption"]).map(str::to_string)
        }
        "system" => str_at(msg, &["system", "body"]).map(str::to_string),
        "location" => location(msg).map(|l| l.summary()),
        "contacts" => {
            let shared = shared_contacts(msg);
            (!shared.is_empty()).then(|| {
                let names: Vec<String> = shared.iter().map(SharedContact::summary).collect();
                format!("Contact: {}", names.join("; "))
            })
        }
        "order" => order(msg).map(|o| o.summary()),
        "reaction" => str_at(msg, &["reaction", "emoji"]).map(str::to_string),
        "unsupported" => Some("A message WhatsApp does not pass on (an unsupported kind)".into()),
        _ => None,
    };
    text.filter(|t| !t.trim().is_empty())
}

/// A location the patient shared.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
    /// A map of the place (OpenStreetMap).
    pub map_url: String,
}

impl Location {
    fn summary(&self) -> String {
        let place: Vec<&str> = [self.name.as_deref(), self.address.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        if place.is_empty() {
            format!("Location: {:.5}, {:.5}", self.latitude, self.longitude)
        } else {
            format!("Location: {}", place.join(", "))
        }
    }
}

pub fn location(msg: &Value) -> Option<Location> {
    let l = msg.get("location")?;
    let (latitude, longitude) = (number_at(l, "latitude")?, number_at(l, "longitude")?);
    let text = |k: &str| {
        str_at(l, &[k])
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    Some(Location {
        latitude,
        longitude,
        name: text("name"),
        address: text("address"),
        map_url: format!(
            "https://www.openstreetmap.org/?mlat={latitude}&mlon={longitude}#map=17/{latitude}/{longitude}"
        ),
    })
}

/// A contact card the patient shared.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SharedContact {
    pub name: String,
    /// Its numbers as written, each with the WhatsApp id when Meta gave one.
    pub phones: Vec<SharedPhone>,
    pub emails: Vec<String>,
    pub company: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SharedPhone {
    pub phone: String,
    pub wa_id: Option<String>,
    /// `MOBILE`, `HOME`, `WORK`, ...
    pub kind: Option<String>,
}

impl SharedContact {
    fn summary(&self) -> String {
        match self.phones.first() {
            Some(p) => format!("{} ({})", self.name, p.phone),
            None => self.name.clone(),
        }
    }
}

pub fn shared_contacts(msg: &Value) -> Vec<SharedContact> {
    let Some(cards) = msg.get("contacts").and_then(Value::as_array) else {
        return Vec::new();
    };
    cards
        .iter()
        .map(|c| {
            let name = str_at(c, &["name", "formatted_name"])
                .map(str::to_string)
                .or_else(|| {
                    let parts: Vec<&str> = ["first_name", "last_name"]
                        .iter()
                        .filter_map(|k| str_at(c, &["name", k]))
                        .collect();
                    (!parts.is_empty()).then(|| parts.join(" "))
                })
                .unwrap_or_else(|| "Contact".into());
            let phones = c
                .get("phones")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| {
                            Some(SharedPhone {
                                phone: str_at(p, &["phone"])
                                    .or_else(|| str_at(p, &["wa_id"]))?
                                    .to_string(),
                                wa_id: str_at(p, &["wa_id"]).map(str::to_string),
                                kind: str_at(p, &["type"]).map(str::to_string),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let emails = c
                .get("emails")
                .and_then(Value::as_array)
                .map(|es| {
                    es.iter()
                        .filter_map(|e| str_at(e, &["email"]).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            SharedContact {
                name,
                phones,
                emails,
                company: str_at(c, &["org", "company"]).map(str::to_string),
            }
        })
        .collect()
}

/// An order placed from the business's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Order {
    pub catalog_id: Option<String>,
    /// What the patient wrote with it, if anything.
    pub text: Option<String>,
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrderItem {
    pub product_retailer_id: String,
    pub quantity: f64,
    pub item_price: f64,
    pub currency: String,
}

impl Order {
    fn summary(&self) -> String {
        let count: f64 = self.items.iter().map(|i| i.quantity).sum();
        let mut totals: Vec<(String, f64)> = Vec::new();
        for i in &self.items {
            match totals.iter_mut().find(|(c, _)| *c == i.currency) {
                Some((_, t)) => *t += i.item_price * i.quantity,
                None => totals.push((i.currency.clone(), i.item_price * i.quantity)),
            }
        }
        let totals: Vec<String> = totals.iter().map(|(c, t)| format!("{t:.2} {c}")).collect();
        let mut out = format!("Order: {count} item(s), {}", totals.join(" + "));
        if let Some(text) = &self.text {
            out.push_str(&format!(" — {text}"));
        }
        out
    }
}

pub fn order(msg: &Value) -> Option<Order> {
    let o = msg.get("order")?;
    let items = o
        .get("product_items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| OrderItem {
                    product_retailer_id: str_at(i, &["product_retailer_id"])
                        .unwrap_or_default()
                        .to_string(),
                    quantity: number_at(i, "quantity").unwrap_or(0.0),
                    item_price: number_at(i, "item_price").unwrap_or(0.0),
                    currency: str_at(i, &["currency"]).unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Order {
        catalog_id: str_at(o, &["catalog_id"]).map(str::to_string),
        text: str_at(o, &["text"])
            .filter(|t| !t.trim().is_empty())
            .map(str::to_string),
        items,
    })
}

/// A WhatsApp Flow's answers (`interactive.nfm_reply`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlowReply {
    /// The flow's name (`flow`, or the one Meta gives).
    pub name: Option<String>,
    /// What WhatsApp showed the patient (`Sent`).
    pub body: Option<String>,
    /// The answers, field by field (the flow token left out).
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, Value>,
}

impl FlowReply {
    fn summary(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect();
        if fields.is_empty() {
            self.body.clone().unwrap_or_else(|| "Form sent".into())
        } else {
            format!("Form: {}", fields.join(", "))
        }
    }
}

pub fn flow_reply(msg: &Value) -> Option<FlowReply> {
    let reply = msg.get("interactive")?.get("nfm_reply")?;
    let mut fields = match reply.get("response_json") {
        Some(Value::String(s)) => {
            serde_json::from_str::<serde_json::Map<String, Value>>(s).unwrap_or_default()
        }
        Some(Value::Object(o)) => o.clone(),
        _ => serde_json::Map::new(),
    };
    fields.remove("flow_token");
    Some(FlowReply {
        name: str_at(reply, &["name"]).map(str::to_string),
        body: str_at(reply, &["body"]).map(str::to_string),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Payloads as Meta's OpenAPI file and webhook references show them.
    #[test]
    fn each_kind_reads_as_the_patient_sent_it() {
        let system = json!({"from": "16505551234", "id": "wamid.S", "timestamp": "1750269342", "type": "system",
            "system": {"body": "User Sheena Nelson changed from 16505551234 to 12195555358", "wa_id": "12195555358", "type": "user_changed_number"}});
        assert_eq!(
            text_of(&system).as_deref(),
            Some("User Sheena Nelson changed from 16505551234 to 12195555358")
        );
        let place = json!({"type": "location", "location": {"latitude": "37.4847", "longitude": -122.1486,
            "name": "Meta HQ", "address": "1 Hacker Way, Menlo Park, CA 94025"}});
        let l = location(&place).unwrap();
        assert_eq!(l.latitude, 37.4847);
        assert!(l.map_url.contains("mlat=37.4847"));
        assert_eq!(
            text_of(&place).as_deref(),
            Some("Location: Meta HQ, 1 Hacker Way, Menlo Park, CA 94025")
        );
        let cards = json!({"type": "contacts", "contacts": [{"name": {"first_name": "Lucía", "last_name": "Gómez",
            "formatted_name": "Lucía Gómez"}, "org": {"company": "Google"},
            "phones": [{"phone": "+1 (983) 555-2319", "wa_id": "19835552319", "type": "MOBILE"}]}]});
        assert_eq!(
            text_of(&cards).as_deref(),
            Some("Contact: Lucía Gómez (+1 (983) 555-2319)")
        );
        assert_eq!(
            shared_contacts(&cards)[0].phones[0].wa_id.as_deref(),
            Some("19835552319")
        );
        let order_msg = json!({"type": "order", "order": {"catalog_id": "194836987003835", "text": "",
            "product_items": [{"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30, "currency": "USD"},
                              {"product_retailer_id": "nqryix03ez", "quantity": 1, "item_price": 25, "currency": "USD"}]}});
        assert_eq!(
            text_of(&order_msg).as_deref(),
            Some("Order: 3 item(s), 85.00 USD")
        );
        let flow = json!({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow",
            "body": "Sent", "response_json": "{\"flow_token\":\"t\",\"date\":\"2026-12-08\",\"doctor\":\"Dr. Rao\"}"}}});
        assert_eq!(
            text_of(&flow).as_deref(),
            Some("Form: date: 2026-12-08, doctor: Dr. Rao")
        );
    }

    #[test]
    fn reactions_edits_and_revokes_change_an_earlier_message() {
        let react =
            json!({"type": "reaction", "reaction": {"message_id": "wamid.T", "emoji": "👍"}});
        assert_eq!(
            change_of(&react),
            Some(MessageChange::Reaction {
                target: "wamid.T".into(),
                emoji: Some("👍".into())
            })
        );
        let unreact =
            json!({"type": "reaction", "reaction": {"message_id": "wamid.T", "emoji": ""}});
        assert_eq!(
            change_of(&unreact),
            Some(MessageChange::Reaction {
                target: "wamid.T".into(),
                emoji: None
            })
        );
        let edit = json!({"type": "edit", "edit": {"original_message_id": "wamid.T",
            "message": {"context": {"id": "wamid.T"}, "type": "text", "text": {"body": "See you at 5, not 4"}}}});
        assert_eq!(
            change_of(&edit),
            Some(MessageChange::Edit {
                target: "wamid.T".into(),
                text: "See you at 5, not 4".into()
            })
        );
        let revoke = json!({"type": "revoke", "revoke": {"original_message_id": "wamid.T"}});
        assert_eq!(
            change_of(&revoke),
            Some(MessageChange::Revoke {
                target: "wamid.T".into()
            })
        );
        assert_eq!(
            change_of(&json!({"type": "text", "text": {"body": "hi"}})),
            None
        );
    }
}
