//! The states rows move through, with their wire names.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// Which way a message went.
    Direction { Incoming => "incoming", Outgoing => "outgoing" }
);

wire_enum!(
    /// A staff member's role: `agent` answers chats, `manager` also runs campaigns, imports
    /// and exports, `admin` also manages people, keys, endpoints and numbers. The first user
    /// is an admin.
    Role { Admin => "admin", Manager => "manager", Agent => "agent" }
);

impl Role {
    /// A role as stored or asked for: `user`, the one non-admin role before there were three,
    /// is a manager (it could do everything a manager can).
    pub fn parse_lenient(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::Manager),
            other => Role::parse(other),
        }
    }

    /// Whether this role may do what `permission` covers.
    pub const fn can(self, permission: Permission) -> bool {
        match permission {
            Permission::Inbox => true,
            Permission::Campaigns | Permission::Audience => {
                matches!(self, Role::Admin | Role::Manager)
            }
            Permission::Admin => matches!(self, Role::Admin),
        }
    }
}

wire_enum!(
    /// What a route or page needs: `inbox` (contacts, chats, sending, tagging a contact),
    /// `campaigns` (schedules and their results), `audience` (imports, exports, deleting a
    /// contact, undoing an opt-out, managing tags), `admin` (people, keys, endpoints, numbers,
    /// the audit log).
    Permission { Inbox => "inbox", Campaigns => "campaigns", Audience => "audience", Admin => "admin" }
);

wire_enum!(
    /// The life of a message. Incoming messages are `received`. An outgoing message *is* the
    /// delivery: `queued` until the sender claims it (`sending`), then `sent`/`delivered`/`read`
    /// from Meta, or `retrying`, `failed`, `skipped`, or `unknown` (the request left but no
    /// answer came back, so it is not resent blindly).
    MessageStatus {
        Received => "received",
        Queued => "queued",
        Sending => "sending",
        Retrying => "retrying",
        Unknown => "unknown",
        Sent => "sent",
        Delivered => "delivered",
        Read => "read",
        Failed => "failed",
        Skipped => "skipped",
    }
);

impl MessageStatus {
    /// Position on the forward-only path of Meta's statuses. A webhook may only move a message
    /// to a higher rank; replays and late arrivals of lower ranks change nothing.
    pub fn rank(self) -> u8 {
        match self {
            MessageStatus::Received => 0,
            MessageStatus::Queued
            | MessageStatus::Sending
            | MessageStatus::Retrying
            | MessageStatus::Unknown => 1,
            MessageStatus::Sent => 2,
            MessageStatus::Failed => 3,
            MessageStatus::Delivered => 4,
            MessageStatus::Read => 5,
            MessageStatus::Skipped => 6,
        }
    }

    /// The statuses a WhatsApp status webhook may carry.
    pub fn from_webhook(s: &str) -> Option<Self> {
        match s {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

wire_enum!(
    /// A scheduled message's status as the API shows and accepts it.
    ScheduleStatus {
        Pending => "pending",
        Paused => "paused",
        Cancelled => "cancelled",
        Sent => "sent",
    }
);

impl ScheduleStatus {
    /// `cancelled` and `sent` are final: nothing moves a schedule out of them.
    pub fn is_final(self) -> bool {
        matches!(self, ScheduleStatus::Cancelled | ScheduleStatus::Sent)
    }
}

wire_enum!(
    /// A schedule's run (occurrence): `fanning_out` while its deliveries are being written,
    /// then `done`; `skipped` when it was missed (the scheduler was down longer than the
    /// catch-up window); `cancelled` when its schedule was cancelled or deleted mid-way.
    OccurrenceState {
        FanningOut => "fanning_out",
        Done => "done",
        Skipped => "skipped",
        Cancelled => "cancelled",
    }
);

wire_enum!(
    /// A contact import: `running`, then `done` or `failed`. The API shows a running import
    /// whose progress stopped as `interrupted` (its gateway stopped); that is never stored.
    ImportState {
        Running => "running",
        Done => "done",
        Failed => "failed",
        Interrupted => "interrupted",
    }
);

wire_enum!(
    /// One outbound event for one endpoint: `pending` until the endpoint accepts it
    /// (`delivered`) or refuses it for good (`failed`).
    EventDeliveryState {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

wire_enum!(
    /// A business number: `active`; `paused` while it cannot send (the reason says why: a bad
    /// token, an unpaid account ...), set and cleared by the sender; `disabled` by an admin.
    NumberState {
        Active => "active",
        Paused => "paused",
        Disabled => "disabled",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(*s));
        }
        for s in ScheduleStatus::ALL {
            assert_eq!(ScheduleStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(ScheduleStatus::parse("done"), None);
    }

    #[test]
    fn webhook_statuses_only_move_forward() {
        let sent = MessageStatus::Sent.rank();
        let delivered = MessageStatus::Delivered.rank();
        let read = MessageStatus::Read.rank();
        assert!(MessageStatus::Queued.rank() < sent && sent < delivered && delivered < read);
        // A failure reported after delivery is not believed; before it, it is.
        assert!(MessageStatus::Failed.rank() > sent);
        assert!(MessageStatus::Failed.rank() < delivered);
    }
}
