//! The gateway's API through real HTTP, against the app on port 0, on PostgreSQL and SQLite.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod api_keys;
mod auth;
mod bad_input;
mod consent;
mod contacts;
mod conversations;
mod dashboard;
mod imports;
mod message_kinds;
mod scheduled;
mod security;
mod seed_shapes;
mod staff;
mod webhooks;
