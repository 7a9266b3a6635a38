//! WhatsApp webhook payloads in the shape Meta sends them (see Meta's webhook reference:
//! `whatsapp_business_account` envelope, `entry[].changes[].value`).

use serde_json::{json, Value};

pub const WABA_ID: &str = "102290129340398";
pub const DISPLAY_NUMBER: &str = "15550783881";
pub const PHONE_NUMBER_ID: &str = "106540352242922";

fn envelope(value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{ "field": "messages", "value": value }]
        }]
    })
}

fn metadata() -> Value {
    json!({ "display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID })
}

/// An inbound text message from `from` (digits) with profile name `name`.
pub fn inbound_text(from: &str, name: &str, wamid: &str, body: &str, unix_ts: i64) -> Value {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "contacts": [{ "profile": { "name": name }, "wa_id": from }],
        "messages": [{
            "from": from,
            "id": wamid,
            "timestamp": unix_ts.to_string(),
            "type": "text",
            "text": { "body": body }
        }]
    }))
}

/// A status webhook for an outgoing message (`sent`, `delivered`, `read` or `failed`).
pub fn status(
    wamid: &str,
    status: &str,
    recipient: &str,
    delivery_id: Option<i64>,
    unix_ts: i64,
) -> Value {
    let mut st = json!({
        "id": wamid,
        "status": status,
        "timestamp": unix_ts.to_string(),
        "recipient_id": recipient,
        "conversation": {
            "id": "CONVERSATION_ID",
            "origin": { "type": "service" }
        },
        "pricing": { "billable": true, "pricing_model": "PMP", "category": "service", "type": "regular" }
    });
    if let Some(id) = delivery_id {
        st["biz_opaque_callback_data"] = json!(id.to_string());
    }
    if status == "failed" {
        st["errors"] = json!([{
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": { "details": "Message Undeliverable." },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
        }]);
    }
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "statuses": [st]
    }))
}
