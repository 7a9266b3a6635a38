//! HeyDoc's domain vocabulary: phone numbers, message and schedule states, recurrence rules and
//! the validation rules every service applies the same way. Pure code: no I/O.

pub mod consent;
pub mod phone;
pub mod public_address;
pub mod recurrence;
pub mod schedule;
pub mod status;
pub mod template;
pub mod validate;
pub mod window;

pub use phone::Phone;
pub use recurrence::Recurrence;
pub use status::{
    Direction, EventDeliveryState, ImportState, MessageStatus, NumberState, OccurrenceState,
    Permission, Role, ScheduleStatus,
};

/// A domain rule was broken; the message says which, in words an API client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
