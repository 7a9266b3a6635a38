//! Message bodies in the Cloud API's JSON format.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What an outgoing message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text {
        body: String,
    },
    /// An approved template: name, language code and the `components` array.
    Template {
        name: String,
        language: String,
        components: Value,
    },
    /// Media: `kind` is image, document, audio, video or sticker.
    Media {
        kind: String,
        source: MediaSource,
        caption: Option<String>,
        filename: Option<String>,
    },
}

/// Where Meta takes a media message's file from.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaSource {
    /// Uploaded to Meta before (`POST /{phone-number-id}/media`): sent by its id.
    Id(String),
    /// A public URL Meta fetches.
    Link(String),
}

pub use heydoc_domain::phone::is_user_id;

/// One message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The recipient's phone number, digits only.
    pub to: String,
    pub content: Content,
    /// Echoed back in this message's status webhooks: HeyDoc's delivery id.
    pub callback_data: String,
    /// The wamid this message replies to.
    pub reply_to: Option<String>,
}

impl Outgoing {
    /// The request body for `POST /{phone-number-id}/messages`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "biz_opaque_callback_data": self.callback_data,
        });
        // A user known by a business-scoped user id (no phone) is addressed by `recipient`.
        if is_user_id(&self.to) {
            body["recipient"] = json!(self.to);
        } else {
            body["to"] = json!(self.to);
        }
        match &self.content {
            Content::Text { body: text } => {
                body["type"] = json!("text");
                body["text"] = json!({ "body": text, "preview_url": false });
            }
            Content::Template {
                name,
                language,
                components,
            } => {
                body["type"] = json!("template");
                let mut template = json!({ "name": name, "language": { "code": language } });
                if components.as_array().is_some_and(|c| !c.is_empty()) {
                    template["components"] = components.clone();
                }
                body["template"] = template;
            }
            Content::Media {
                kind,
                source,
                caption,
                filename,
            } => {
                body["type"] = json!(kind);
                let mut media = match source {
                    MediaSource::Id(id) => json!({ "id": id }),
                    MediaSource::Link(link) => json!({ "link": link }),
                };
                if let Some(c) = caption {
                    media["caption"] = json!(c);
                }
                if let Some(f) = filename {
                    media["filename"] = json!(f);
                }
                body[kind.as_str()] = media;
            }
        }
        if let Some(wamid) = &self.reply_to {
            body["context"] = json!({ "message_id": wamid });
        }
        body
    }
}

/// Meta's success reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendResponse {
    #[serde(default)]
    pub messaging_product: String,
    #[serde(default)]
    pub contacts: Vec<ResponseContact>,
    #[serde(default)]
    pub messages: Vec<ResponseMessage>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResponseContact {
    pub input: String,
    /// The recipient's WhatsApp id, when the send named a phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// The business-scoped user id, when the send named one (`recipient`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<String>,
}

/// Meta's error reply: `{"error":{...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: GraphError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    #[serde(default)]
    pub fbtrace_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_answer_names_a_phone_by_wa_id_and_a_username_by_user_id() {
        // Meta's answer to a send `to` a phone, and to one naming a `recipient` user id.
        let phone: SendResponse = serde_json::from_str(
            r#"{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.A"}]}"#,
        )
        .expect("phone answer");
        assert_eq!(phone.contacts[0].wa_id.as_deref(), Some("16505551234"));
        let user: SendResponse = serde_json::from_str(
            r#"{"messaging_product":"whatsapp","contacts":[{"input":"US.13491208655302741918","user_id":"US.13491208655302741918"}],"messages":[{"id":"wamid.B","message_status":"accepted"}]}"#,
        )
        .expect("user id answer");
        assert_eq!(user.contacts[0].wa_id, None);
        assert_eq!(
            user.contacts[0].user_id.as_deref(),
            Some("US.13491208655302741918")
        );
    }

    #[test]
    fn text_and_template_bodies_match_meta_format() {
        let text = Outgoing {
            to: "14155550123".into(),
            content: Content::Text { body: "hi".into() },
            callback_data: "42".into(),
            reply_to: None,
        };
        let v = text.to_json();
        assert_eq!(v["type"], "text");
        assert_eq!(v["text"]["body"], "hi");
        assert_eq!(v["biz_opaque_callback_data"], "42");
        let template = Outgoing {
            content: Content::Template {
                name: "hello_world".into(),
                language: "en_US".into(),
                components: json!([{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]),
            },
            reply_to: Some("wamid.x".into()),
            ..text
        };
        let v = template.to_json();
        assert_eq!(v["template"]["language"]["code"], "en_US");
        assert_eq!(
            v["template"]["components"][0]["parameters"][0]["text"],
            "Ana"
        );
        assert_eq!(v["context"]["message_id"], "wamid.x");
    }
}
