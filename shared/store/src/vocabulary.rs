//! The state enums as SQL: the one place raw statements get their states' wire names from, so
//! a state renamed in `heydoc_domain` cannot leave a literal behind. The names are fixed ASCII
//! words (`wire_enum!`), so quoting them needs no escaping.

use std::sync::LazyLock;

use heydoc_domain::{Direction, MessageStatus, ScheduleStatus};

/// `'a', 'b'` for an SQL `IN (...)`.
pub(crate) fn list<T: Copy>(items: &[T], name: fn(T) -> &'static str) -> String {
    items
        .iter()
        .map(|&i| format!("'{}'", name(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `'x'`: one state as an SQL string literal.
pub(crate) fn quoted(name: &'static str) -> String {
    format!("'{name}'")
}

/// Outgoing messages waiting for a send: queued, or a retry.
pub(crate) static WAITING: LazyLock<String> = LazyLock::new(|| {
    list(
        &[MessageStatus::Queued, MessageStatus::Retrying],
        MessageStatus::as_str,
    )
});

/// Outgoing messages not finished yet.
pub(crate) static IN_FLIGHT: LazyLock<String> = LazyLock::new(|| {
    list(
        &[
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Retrying,
        ],
        MessageStatus::as_str,
    )
});

/// Rows a sender's result may be written over: its own claim, or one the reconciler marked
/// unknown meanwhile.
pub(crate) static RESULT_OVER: LazyLock<String> = LazyLock::new(|| {
    list(
        &[MessageStatus::Sending, MessageStatus::Unknown],
        MessageStatus::as_str,
    )
});

/// Schedules that hold their deliveries back: paused, cancelled, or ended (marked sent).
pub(crate) static HOLDING: LazyLock<String> = LazyLock::new(|| {
    list(
        &[
            ScheduleStatus::Paused,
            ScheduleStatus::Cancelled,
            ScheduleStatus::Sent,
        ],
        ScheduleStatus::as_str,
    )
});

pub(crate) fn message(s: MessageStatus) -> String {
    quoted(s.as_str())
}

pub(crate) fn schedule(s: ScheduleStatus) -> String {
    quoted(s.as_str())
}

pub(crate) fn direction(d: Direction) -> String {
    quoted(d.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_the_literals_they_replace() {
        // Partial indexes match these texts: they must stay exactly what the migrations say.
        assert_eq!(*WAITING, "'queued', 'retrying'");
        assert_eq!(*IN_FLIGHT, "'queued', 'sending', 'retrying'");
        assert_eq!(*HOLDING, "'paused', 'cancelled', 'sent'");
        assert_eq!(message(MessageStatus::Skipped), "'skipped'");
    }
}
