//! What a failed send means, decided on Meta's `error.code` (not the HTTP status alone).

use std::time::Duration;

/// What the sender should do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A transient failure (Meta's 5xx, a connection refused before sending): retry soon.
    RetrySoon,
    /// The business number is over a limit (throughput, app or account rate): slow the whole
    /// number down, then retry.
    BackOffNumber,
    /// Too many messages to this one recipient (pair rate, marketing limit): retry this message
    /// later, leave the rest alone.
    BackOffRecipient,
    /// Retrying cannot help. With `suppress`, stop messaging the contact at all (opted out of
    /// marketing, undeliverable).
    NeverRetry { suppress: bool },
    /// The number cannot send at all (token invalid or expired, policy block): stop the number
    /// and alert; the message is retried once someone fixes it.
    StopNumber,
    /// The template is paused, disabled, missing or its parameters do not match: every
    /// recipient of it would fail the same way. The campaign using it pauses, with the reason.
    TemplateProblem,
    /// The request left but no answer came back: it may or may not have been accepted. Never
    /// resent blindly (Meta has no idempotency key).
    OutcomeUnknown,
}

impl ErrorClass {
    /// Meta's error codes, as listed in the Cloud API's error reference.
    pub fn from_code(code: i64) -> Self {
        match code {
            130429 | 131057 | 4 | 80007 | 131048 => ErrorClass::BackOffNumber,
            131056 | 131049 => ErrorClass::BackOffRecipient,
            131050 | 131026 => ErrorClass::NeverRetry { suppress: true },
            190 | 368 | 131031 | 131042 | 131045 | 133010 => ErrorClass::StopNumber,
            132000 | 132001 | 132005 | 132007 | 132012 | 132015 | 132016 => {
                ErrorClass::TemplateProblem
            }
            1 | 2 | 131000 | 131016 => ErrorClass::RetrySoon,
            // The media could not be fetched or uploaded: the message's own problem (a link
            // Meta cannot reach, a file it refuses); sending it again the same way fails again.
            131053 => ErrorClass::NeverRetry { suppress: false },
            _ => ErrorClass::NeverRetry { suppress: false },
        }
    }

    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RetrySoon
                | ErrorClass::BackOffNumber
                | ErrorClass::BackOffRecipient
                | ErrorClass::StopNumber
        )
    }
}

/// A send that did not get a wamid back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub class: ErrorClass,
    /// Meta's error code, when Meta answered with one.
    pub code: Option<i64>,
    pub message: String,
    /// From a `Retry-After` header, when Meta sent one.
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(class: ErrorClass, code: Option<i64>, message: impl Into<String>) -> Self {
        Self {
            class,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_codes_the_facts_list() {
        assert_eq!(ErrorClass::from_code(130429), ErrorClass::BackOffNumber);
        assert_eq!(ErrorClass::from_code(80007), ErrorClass::BackOffNumber);
        assert_eq!(ErrorClass::from_code(131056), ErrorClass::BackOffRecipient);
        assert_eq!(
            ErrorClass::from_code(131047),
            ErrorClass::NeverRetry { suppress: false }
        );
        assert_eq!(
            ErrorClass::from_code(131050),
            ErrorClass::NeverRetry { suppress: true }
        );
        assert_eq!(
            ErrorClass::from_code(131026),
            ErrorClass::NeverRetry { suppress: true }
        );
        assert_eq!(ErrorClass::from_code(190), ErrorClass::StopNumber);
        assert_eq!(ErrorClass::from_code(131042), ErrorClass::StopNumber);
        assert_eq!(ErrorClass::from_code(132015), ErrorClass::TemplateProblem);
        assert_eq!(ErrorClass::from_code(132000), ErrorClass::TemplateProblem);
        assert_eq!(ErrorClass::from_code(131000), ErrorClass::RetrySoon);
        assert_eq!(
            ErrorClass::from_code(131053),
            ErrorClass::NeverRetry { suppress: false }
        );
        assert!(!ErrorClass::from_code(100).is_retryable());
    }
}
