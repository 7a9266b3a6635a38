//! The gateway's service layer: one module per resource, with its typed input and output and
//! its rules. Handlers (`routes`) and pages (`ui`) only extract, call these, and wrap the
//! result; the SQL behind them lives in `heydoc-store`.

pub mod api_keys;
pub mod audit;
pub mod contacts;
pub mod conversations;
pub mod event_endpoints;
pub mod imports;
pub mod messages;
pub mod numbers;
pub mod schedules;
pub mod send;
pub mod setup;
pub mod tags;
pub mod templates;
pub mod uploads;
pub mod users;
pub mod webhooks;
