//! WhatsApp's customer-service window: free text reaches a contact only within 24 hours of
//! their last message; outside it only a template does.

use chrono::{DateTime, Duration, Utc};

/// How long the window stays open after the contact's last message.
pub const WINDOW: Duration = Duration::hours(24);

/// Until when the window is open, or `None` when it is closed (or never opened).
pub fn open_until(
    last_inbound: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    last_inbound
        .map(|at| at + WINDOW)
        .filter(|until| *until > now)
}

/// Whether free text reaches the contact now.
pub fn is_open(last_inbound: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    open_until(last_inbound, now).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_open_for_24_hours_after_the_last_inbound_message() {
        let now = Utc::now();
        assert_eq!(open_until(None, now), None);
        let recent = now - Duration::hours(23);
        assert_eq!(
            open_until(Some(recent), now),
            Some(recent + Duration::hours(24))
        );
        assert_eq!(open_until(Some(now - Duration::hours(25)), now), None);
    }
}
