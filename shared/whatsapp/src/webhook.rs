//! Meta's webhooks, both ways: the `whatsapp_business_account` envelope
//! (`entry[].changes[].value`) as Meta sends it, parsed by the gateway and built by the sandbox
//! and the tests; and its `X-Hub-Signature-256`, signed and checked here.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// The header Meta signs every webhook POST with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// `sha256=<hex HMAC-SHA256>` of `body`: the `X-Hub-Signature-256` header Meta sends.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes any key length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Reads a field Meta sends as a string; anything else (null, a number) reads as empty rather
/// than refusing the whole webhook (fields HeyDoc only passes along must not make Meta retry).
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn lenient_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(lenient(d)?).filter(|s| !s.is_empty()))
}

/// Checks `sha256=<hex>` against the HMAC of the raw body, in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(default, deserialize_with = "lenient")]
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

impl Envelope {
    /// One change for the WhatsApp Business Account `waba_id`.
    pub fn of(waba_id: &str, value: ChangeValue) -> Self {
        Self {
            object: "whatsapp_business_account".into(),
            entry: vec![Entry {
                id: waba_id.into(),
                changes: vec![Change {
                    field: "messages".into(),
                    value,
                }],
            }],
        }
    }

    /// One change of another field (`message_template_status_update`, ...) for `waba_id`.
    pub fn of_field(waba_id: &str, field: &str, value: ChangeValue) -> Self {
        let mut envelope = Self::of(waba_id, value);
        envelope.entry[0].changes[0].field = field.into();
        envelope
    }

    /// Every change's value, in order.
    pub fn values(&self) -> impl Iterator<Item = &ChangeValue> {
        self.changes().map(|c| &c.value)
    }

    /// Every change (its field and value), in order.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.entry.iter().flat_map(|e| &e.changes)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default, deserialize_with = "lenient")]
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Change {
    #[serde(default, deserialize_with = "lenient")]
    pub field: String,
    #[serde(default)]
    pub value: ChangeValue,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChangeValue {
    #[serde(default, deserialize_with = "lenient")]
    pub messaging_product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<WaContact>,
    /// Each message as Meta sent it (its shape depends on its `type`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<WaStatus>,
    /// The fields of the other kinds of change (template and quality updates), as sent.
    #[serde(flatten, default)]
    pub rest: serde_json::Map<String, Value>,
}

impl ChangeValue {
    /// A text a user wrote to the number in `metadata`.
    pub fn inbound_text(
        metadata: Metadata,
        from: &str,
        name: &str,
        wamid: &str,
        body: &str,
        at: i64,
    ) -> Self {
        Self {
            messaging_product: "whatsapp".into(),
            metadata: Some(metadata),
            contacts: vec![WaContact::of(from, name)],
            messages: vec![serde_json::json!({
                "from": from,
                "id": wamid,
                "timestamp": at.to_string(),
                "type": "text",
                "text": { "body": body }
            })],
            ..Self::default()
        }
    }

    /// A media message (`kind` image, document, audio, video or sticker) a user sent: Meta
    /// gives the media id, its type and sha256, never the file.
    #[allow(clippy::too_many_arguments)]
    pub fn inbound_media(
        metadata: Metadata,
        from: &str,
        name: &str,
        wamid: &str,
        kind: &str,
        media: Value,
        at: i64,
    ) -> Self {
        let mut message = serde_json::json!({
            "from": from,
            "id": wamid,
            "timestamp": at.to_string(),
            "type": kind,
        });
        message[kind] = media;
        Self {
            messaging_product: "whatsapp".into(),
            metadata: Some(metadata),
            contacts: vec![WaContact::of(from, name)],
            messages: vec![message],
            ..Self::default()
        }
    }

    /// The value of a change that is not about messages, from its fields.
    pub fn fields(fields: Value) -> Self {
        Self {
            rest: match fields {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            ..Self::default()
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.rest.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// One delivery status of a message the number sent.
    pub fn status(metadata: Metadata, status: WaStatus) -> Self {
        Self {
            messaging_product: "whatsapp".into(),
            metadata: Some(metadata),
            statuses: vec![status],
            ..Self::default()
        }
    }

    /// The profile name of the contact who sent `from` (a phone or a user id), or of the
    /// first one listed.
    pub fn profile_name(&self, from: &str) -> Option<String> {
        self.sender(from)
            .and_then(|c| c.profile.as_ref())
            .map(|p| p.name.clone())
    }

    /// The username of the contact who sent `from`, when they have one.
    pub fn username(&self, from: &str) -> Option<String> {
        self.sender(from)
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.username.clone())
            .filter(|u| !u.is_empty())
    }

    fn sender(&self, from: &str) -> Option<&WaContact> {
        self.contacts
            .iter()
            .find(|c| c.wa_id == from || c.user_id.as_deref() == Some(from))
            .or(self.contacts.first())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
}

impl Metadata {
    pub fn new(display_phone_number: &str, phone_number_id: &str) -> Self {
        Self {
            display_phone_number: display_phone_number.into(),
            phone_number_id: Some(phone_number_id.into()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaContact {
    /// The user's phone; absent for a user known only by a username.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wa_id: String,
    /// The business-scoped user id (since 2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

impl WaContact {
    /// The sender of an inbound message, by phone, with their profile name.
    pub fn of(wa_id: &str, name: &str) -> Self {
        Self {
            wa_id: wa_id.into(),
            user_id: None,
            profile: Some(Profile {
                name: name.into(),
                username: None,
            }),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaStatus {
    pub id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    #[serde(default, deserialize_with = "lenient")]
    pub timestamp: String,
    #[serde(default, deserialize_with = "lenient")]
    pub recipient_id: String,
    /// What the send put in `biz_opaque_callback_data`: HeyDoc's delivery id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<WaError>,
}

impl WaStatus {
    /// A status as Meta reports it for a service conversation, billed per message.
    pub fn new(
        wamid: &str,
        status: &str,
        recipient: &str,
        at: i64,
        callback: Option<String>,
    ) -> Self {
        Self {
            id: wamid.into(),
            status: status.into(),
            timestamp: at.to_string(),
            recipient_id: recipient.into(),
            biz_opaque_callback_data: callback,
            conversation: None,
            pricing: Some(serde_json::json!({
                "billable": true, "pricing_model": "PMP", "category": "service", "type": "regular"
            })),
            errors: Vec::new(),
        }
    }

    /// The delivery id the send echoed back, when it is one of ours.
    pub fn delivery_id(&self) -> Option<i64> {
        self.biz_opaque_callback_data
            .as_deref()
            .and_then(|d| d.parse().ok())
    }

    /// The first error's code and the most specific words Meta gave for it.
    pub fn error(&self) -> Option<(i32, String)> {
        let e = self.errors.first()?;
        let reason = e
            .error_data
            .as_ref()
            .and_then(|d| d.details.clone())
            .or_else(|| e.message.clone())
            .or_else(|| e.title.clone())
            .unwrap_or_else(|| format!("error {}", e.code));
        Some((e.code, reason))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaError {
    pub code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt"
    )]
    pub href: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// `message_template_status_update`: Meta approved, paused, disabled or rejected a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateStatusUpdate {
    /// `APPROVED`, `PAUSED`, `DISABLED`, `REJECTED`, `FLAGGED`, `PENDING_DELETION`, ...
    pub event: String,
    pub name: String,
    pub language: String,
    pub reason: Option<String>,
}

impl TemplateStatusUpdate {
    pub const FIELD: &'static str = "message_template_status_update";

    pub fn read(value: &ChangeValue) -> Option<Self> {
        let reason = value
            .rest
            .get("other_info")
            .and_then(|o| o.get("description"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| value.text("reason"))
            .filter(|r| r != "NONE");
        Some(Self {
            event: value.text("event")?.to_ascii_uppercase(),
            name: value.text("message_template_name")?,
            language: value.text("message_template_language")?,
            reason,
        })
    }
}

/// `message_template_quality_update`: a template's quality moved (GREEN, YELLOW, RED, UNKNOWN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateQualityUpdate {
    pub name: String,
    pub language: String,
    pub quality: String,
}

impl TemplateQualityUpdate {
    pub const FIELD: &'static str = "message_template_quality_update";

    pub fn read(value: &ChangeValue) -> Option<Self> {
        Some(Self {
            name: value.text("message_template_name")?,
            language: value.text("message_template_language")?,
            quality: value.text("new_quality_score")?.to_ascii_uppercase(),
        })
    }
}

/// `phone_number_quality_update` / `business_capability_update`: a number's quality or its
/// portfolio's messaging limit changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberQualityUpdate {
    /// Which number (display form), when the change names one.
    pub display_phone_number: Option<String>,
    /// `FLAGGED`, `UNFLAGGED`, `UPGRADE`, `DOWNGRADE`, ...
    pub event: Option<String>,
    /// `TIER_250`, `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`.
    pub messaging_limit: Option<String>,
}

impl NumberQualityUpdate {
    pub const FIELDS: [&'static str; 2] =
        ["phone_number_quality_update", "business_capability_update"];

    pub fn read(value: &ChangeValue) -> Option<Self> {
        let limit = value
            .text("whatsapp_business_manager_messaging_limit")
            .or_else(|| value.text("current_limit"))
            .or_else(|| {
                value
                    .text("max_daily_conversations_per_business")
                    .map(|n| format!("TIER_{n}"))
            });
        let update = Self {
            display_phone_number: value.text("display_phone_number"),
            event: value.text("event").map(|e| e.to_ascii_uppercase()),
            messaging_limit: limit.map(|l| l.to_ascii_uppercase()),
        };
        (update.event.is_some() || update.messaging_limit.is_some()).then_some(update)
    }

    /// The number's quality as the event implies it: flagged is yellow, unflagged green.
    pub fn quality(&self) -> Option<&'static str> {
        match self.event.as_deref()? {
            "FLAGGED" => Some("YELLOW"),
            "UNFLAGGED" | "UPGRADE" => Some("GREEN"),
            "DOWNGRADE" => Some("RED"),
            _ => None,
        }
    }
}

/// What Meta says a message costs: a status webhook's `pricing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    /// `marketing`, `utility`, `authentication`, `authentication_international`, `service`,
    /// `marketing_lite`.
    pub category: String,
    /// `regular` (charged), `free_customer_service`, `free_entry_point`.
    pub kind: String,
    pub billable: bool,
}

impl WaStatus {
    pub fn pricing(&self) -> Option<Pricing> {
        let p = self.pricing.as_ref()?;
        let text = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        };
        let category = text("category")?;
        let kind = text("type").unwrap_or_else(|| "regular".into());
        let billable = p
            .get("billable")
            .and_then(Value::as_bool)
            .unwrap_or(kind == "regular");
        Some(Pricing {
            category,
            kind,
            billable,
        })
    }
}

/// An inbound message's media, as Meta announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMedia {
    pub id: String,
    pub mime_type: String,
    pub sha256: Option<String>,
    pub filename: Option<String>,
}

/// The message kinds whose file HeyDoc downloads.
pub const MEDIA_KINDS: [&str; 5] = ["image", "document", "audio", "video", "sticker"];

/// The media of an inbound message of a media kind.
pub fn read_media(msg: &Value) -> Option<InboundMedia> {
    let kind = msg.get("type")?.as_str()?;
    if !MEDIA_KINDS.contains(&kind) {
        return None;
    }
    let media = msg.get(kind)?;
    let text = |k: &str| media.get(k).and_then(Value::as_str).map(str::to_string);
    Some(InboundMedia {
        id: text("id")?,
        mime_type: text("mime_type").unwrap_or_else(|| "application/octet-stream".into()),
        sha256: text("sha256"),
        filename: text("filename"),
    })
}

/// An inbound message, read from Meta's per-type shape.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub wamid: String,
    /// The sender's WhatsApp id (digits) as Meta wrote it, or their business-scoped user id
    /// when Meta gave no phone.
    pub from: String,
    /// The business-scoped user id (`from_user_id`), when Meta gave one.
    pub user_id: Option<String>,
    /// `text`, `image`, `button`, ...
    pub kind: String,
    /// What the chat shows: the text, a caption, a button's title, a place, a contact card,
    /// an order, a flow's answers, an emoji, or `[kind]`.
    pub text: String,
    pub timestamp: DateTime<Utc>,
    /// A reaction, an edit or a revoke: not a chat line of its own, but a change to the
    /// message it names.
    pub change: Option<crate::message_kinds::MessageChange>,
}

/// Reads one entry of `messages`; `None` when it has no id or sender.
pub fn read_message(msg: &Value) -> Option<InboundMessage> {
    let text_of = |path: &[&str]| {
        path.iter()
            .try_fold(msg, |v, key| v.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let wamid = text_of(&["id"])?;
    let user_id = text_of(&["from_user_id"]).filter(|u| !u.is_empty());
    let from = text_of(&["from"])
        .filter(|f| !f.is_empty())
        .or_else(|| user_id.clone())?;
    let kind = text_of(&["type"]).unwrap_or_else(|| "unknown".into());
    let timestamp = text_of(&["timestamp"])
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(Utc::now);
    let text = crate::message_kinds::text_of(msg).unwrap_or_else(|| format!("[{kind}]"));
    Some(InboundMessage {
        change: crate::message_kinds::change_of(msg),
        wamid,
        from,
        user_id,
        kind,
        text,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_body() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let good = sign(b"secret", body);
        assert!(signature_valid(b"secret", body, &good));
        assert!(!signature_valid(b"other", body, &good));
        assert!(!signature_valid(b"secret", b"{}", &good));
        assert!(!signature_valid(b"secret", body, ""));
        assert!(!signature_valid(b"secret", body, "sha256=zz"));
    }

    #[test]
    fn fields_only_passed_along_never_refuse_a_webhook() {
        let env: Envelope = serde_json::from_value(serde_json::json!({
            "object": null, "entry": [{"id": 7, "changes": [{"field": null, "value": {
                "messaging_product": 1,
                "statuses": [{"id": "wamid.1", "status": "read", "timestamp": 1700000000,
                              "recipient_id": null, "errors": [{"code": 1, "href": 5}]}]
            }}]}]
        }))
        .unwrap();
        let status = &env.values().next().unwrap().statuses[0];
        assert_eq!(
            (status.status.as_str(), status.timestamp.as_str()),
            ("read", "1700000000")
        );
    }

    #[test]
    fn what_is_built_reads_back() {
        let meta = Metadata::new("15550783881", "106540352242922");
        let env = Envelope::of(
            "1",
            ChangeValue::inbound_text(meta, "14155550123", "Ana", "wamid.1", "hi", 1_700_000_000),
        );
        let parsed: Envelope = serde_json::from_value(serde_json::to_value(&env).unwrap()).unwrap();
        let value = parsed.values().next().unwrap();
        let msg = read_message(&value.messages[0]).unwrap();
        assert_eq!(
            (msg.from.as_str(), msg.text.as_str()),
            ("14155550123", "hi")
        );
        assert_eq!(value.profile_name("14155550123").as_deref(), Some("Ana"));
    }
}
