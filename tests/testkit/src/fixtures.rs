//! WhatsApp webhook payloads in the shape Meta sends them, built with `heydoc-whatsapp`'s
//! webhook types (Meta's `whatsapp_business_account` envelope, `entry[].changes[].value`).

use heydoc_whatsapp::webhook::{ChangeValue, Envelope, ErrorData, Metadata, WaError, WaStatus};
use serde_json::{json, Value};

pub const WABA_ID: &str = "102290129340398";
pub const DISPLAY_NUMBER: &str = "15550783881";
pub const PHONE_NUMBER_ID: &str = "106540352242922";

fn envelope(value: ChangeValue) -> Value {
    serde_json::to_value(Envelope::of(WABA_ID, value)).unwrap_or_default()
}

fn metadata() -> Metadata {
    Metadata::new(DISPLAY_NUMBER, PHONE_NUMBER_ID)
}

/// An inbound text message from `from` (digits) with profile name `name`.
pub fn inbound_text(from: &str, name: &str, wamid: &str, body: &str, unix_ts: i64) -> Value {
    envelope(ChangeValue::inbound_text(
        metadata(),
        from,
        name,
        wamid,
        body,
        unix_ts,
    ))
}

/// A status webhook for an outgoing message (`sent`, `delivered`, `read` or `failed`).
pub fn status(
    wamid: &str,
    status: &str,
    recipient: &str,
    delivery_id: Option<i64>,
    unix_ts: i64,
) -> Value {
    let mut st = WaStatus::new(
        wamid,
        status,
        recipient,
        unix_ts,
        delivery_id.map(|id| id.to_string()),
    );
    st.conversation = Some(json!({ "id": "CONVERSATION_ID", "origin": { "type": "service" } }));
    if status == "failed" {
        st.errors = vec![WaError {
            code: 131026,
            title: Some("Message undeliverable".into()),
            message: Some("Message undeliverable".into()),
            error_data: Some(ErrorData {
                details: Some("Message Undeliverable.".into()),
            }),
            href: Some(
                "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
                    .into(),
            ),
        }];
    }
    envelope(ChangeValue::status(metadata(), st))
}

/// A `messages` webhook carrying `message` (one entry of Meta's `messages` array, written as
/// Meta documents it) from `from`, in Meta's envelope written out by hand (not with HeyDoc's
/// own types), so that a test checks HeyDoc against Meta's format rather than against itself.
pub fn inbound_raw(from: &str, name: &str, message: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
                    "contacts": [{"profile": {"name": name}, "wa_id": from}],
                    "messages": [message]
                },
                "field": "messages"
            }]
        }]
    })
}
