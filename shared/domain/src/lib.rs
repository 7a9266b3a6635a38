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

/// A domain rule was broken: the message says which, in words an API client can act on; the
/// code (a stable word such as `invalid_phone`) and the field it concerns (`recipients[3]`,
/// when one does) say it to a program, so a form finds its field without reading the words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

/// The codes of the rules one field can break (`Invalid::at`), as error bodies carry them in
/// `error.code`; the OpenAPI document lists them (a test keeps the two equal).
pub mod codes {
    /// Neither recipients nor tags: nobody to send to.
    pub const EMPTY_AUDIENCE: &str = "empty_audience";
    pub const TOO_MANY_RECIPIENTS: &str = "too_many_recipients";
    /// Not a phone number (country code first, 6 to 20 digits).
    pub const INVALID_PHONE: &str = "invalid_phone";
    /// A tag id that names no tag.
    pub const UNKNOWN_TAG: &str = "unknown_tag";
    /// A first run before now.
    pub const IN_THE_PAST: &str = "in_the_past";
    /// Not a date-time.
    pub const INVALID_TIME: &str = "invalid_time";
    /// Not an IANA time zone name.
    pub const UNKNOWN_TIME_ZONE: &str = "unknown_time_zone";
    /// Not none, daily, weekly, monthly or a 5-field cron expression, or one that never fires.
    pub const INVALID_RECURRENCE: &str = "invalid_recurrence";
    /// An end before the first run, or fewer than one run.
    pub const INVALID_END: &str = "invalid_end";
    /// A number outside what the field allows.
    pub const OUT_OF_RANGE: &str = "out_of_range";
    pub const TOO_LONG: &str = "too_long";
    /// Nothing to send: no message and no template.
    pub const EMPTY_MESSAGE: &str = "empty_message";
    /// A placeholder that is unknown or not closed.
    pub const INVALID_PLACEHOLDER: &str = "invalid_placeholder";
    /// A template the synced catalog does not have approved in that language with those
    /// parameters, or one written wrongly.
    pub const TEMPLATE_UNUSABLE: &str = "template_unusable";
    /// Not 3 to 64 letters, digits, '_', '-', '.' or '@'.
    pub const INVALID_USERNAME: &str = "invalid_username";
    /// Not 8 to 128 characters.
    pub const INVALID_PASSWORD: &str = "invalid_password";
    /// Not `#rrggbb`.
    pub const INVALID_COLOR: &str = "invalid_color";
    /// Not 1 to 64 characters, or with ';' or '|'.
    pub const INVALID_TAG_NAME: &str = "invalid_tag_name";

    /// Every code above.
    pub const ALL: &[&str] = &[
        EMPTY_AUDIENCE,
        TOO_MANY_RECIPIENTS,
        INVALID_PHONE,
        UNKNOWN_TAG,
        IN_THE_PAST,
        INVALID_TIME,
        UNKNOWN_TIME_ZONE,
        INVALID_RECURRENCE,
        INVALID_END,
        OUT_OF_RANGE,
        TOO_LONG,
        EMPTY_MESSAGE,
        INVALID_PLACEHOLDER,
        TEMPLATE_UNUSABLE,
        INVALID_USERNAME,
        INVALID_PASSWORD,
        INVALID_COLOR,
        INVALID_TAG_NAME,
    ];
}

impl Invalid {
    /// The code every rule without a code of its own gives.
    pub const GENERIC: &'static str = "validation_failed";

    pub fn new(message: impl Into<String>) -> Self {
        Self {
            code: Self::GENERIC,
            field: None,
            message: message.into(),
        }
    }

    /// A rule with a code of its own, before the caller says which field broke it.
    pub fn coded(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            field: None,
            message: message.into(),
        }
    }

    /// The same rule, broken by `field` of the request.
    pub fn in_field(self, field: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..self
        }
    }

    /// A rule one field of the request broke.
    pub fn at(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }
}
