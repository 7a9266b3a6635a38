//! The outbound events HeyDoc sends to integrators' endpoints: one enum, serialised here and
//! nowhere else (`data` of the signed JSON each endpoint receives).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One thing that happened, as endpoints receive it.
#[derive(Debug, Clone)]
pub enum OutboundEvent {
    /// `message.received`: a contact wrote.
    MessageReceived(MessageReceived),
    /// `message.status`: a send's result or a status WhatsApp reported.
    MessageStatus(MessageStatusChanged),
    /// `campaign.occurrence.completed`: a run's fan-out is complete.
    OccurrenceCompleted(OccurrenceCompleted),
    /// `conversation.updated`: a colleague changed a conversation's status or assignee.
    ConversationUpdated(ConversationUpdated),
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageReceived {
    pub message_id: i64,
    pub wamid: Option<String>,
    pub contact_id: i32,
    pub phone: String,
    pub profile_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageStatusChanged {
    pub message_id: i64,
    pub wamid: Option<String>,
    pub contact_id: i32,
    pub phone: Option<String>,
    /// `sent`, `delivered`, `read`, `failed`, `skipped` or `unknown`.
    pub status: &'static str,
    pub error_code: Option<i32>,
    pub error_reason: Option<String>,
    /// The campaign run it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrence_id: Option<i64>,
    /// What Meta says it charges for the message (from a status webhook), with the estimate
    /// at the configured rates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<EventPricing>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventPricing {
    /// `marketing`, `utility`, `authentication`, `service`, ...
    pub category: String,
    /// `regular` (charged) or a free kind.
    #[serde(rename = "type")]
    pub kind: String,
    pub billable: bool,
    pub estimated_cost: f64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OccurrenceCompleted {
    pub schedule_id: i32,
    pub occurrence_id: i64,
    pub fire_at: DateTime<Utc>,
    pub deliveries: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationUpdated {
    pub contact_id: i32,
    pub phone: String,
    /// `open`, `pending` or `resolved`.
    pub status: String,
    pub assignee_id: Option<i32>,
    /// The assignee's username.
    pub assignee: Option<String>,
    pub needs_reply: bool,
    /// Who made the change.
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

pub const MESSAGE_RECEIVED: &str = "message.received";
pub const MESSAGE_STATUS: &str = "message.status";
pub const OCCURRENCE_COMPLETED: &str = "campaign.occurrence.completed";
pub const CONVERSATION_UPDATED: &str = "conversation.updated";

/// Every event type an endpoint may ask for.
pub const EVENT_TYPES: [&str; 4] = [
    MESSAGE_RECEIVED,
    MESSAGE_STATUS,
    OCCURRENCE_COMPLETED,
    CONVERSATION_UPDATED,
];

impl OutboundEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            OutboundEvent::MessageReceived(_) => MESSAGE_RECEIVED,
            OutboundEvent::MessageStatus(_) => MESSAGE_STATUS,
            OutboundEvent::OccurrenceCompleted(_) => OCCURRENCE_COMPLETED,
            OutboundEvent::ConversationUpdated(_) => CONVERSATION_UPDATED,
        }
    }

    /// Events with the same key reach an endpoint in order: a contact's, or a schedule's runs.
    pub fn ordering_key(&self) -> String {
        match self {
            OutboundEvent::MessageReceived(e) => contact_key(e.contact_id),
            OutboundEvent::MessageStatus(e) => contact_key(e.contact_id),
            OutboundEvent::OccurrenceCompleted(e) => format!("schedule:{}", e.schedule_id),
            OutboundEvent::ConversationUpdated(e) => contact_key(e.contact_id),
        }
    }

    pub fn data(&self) -> Value {
        let data = match self {
            OutboundEvent::MessageReceived(e) => serde_json::to_value(e),
            OutboundEvent::MessageStatus(e) => serde_json::to_value(e),
            OutboundEvent::OccurrenceCompleted(e) => serde_json::to_value(e),
            OutboundEvent::ConversationUpdated(e) => serde_json::to_value(e),
        };
        // Plain structs of strings and numbers always serialise.
        data.unwrap_or_default()
    }
}

fn contact_key(contact_id: i32) -> String {
    format!("contact:{contact_id}")
}
