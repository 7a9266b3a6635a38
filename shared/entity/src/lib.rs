//! SeaORM entities, one module per table. The schema itself lives in `heydoc-migration`.

pub mod api_key;
pub mod audit_entry;
pub mod business_number;
pub mod canned_reply;
pub mod contact;
pub mod contact_tag;
pub mod conversation_note;
pub mod event_delivery;
pub mod event_endpoint;
pub mod import;
pub mod import_reject;
pub mod install_secret;
pub mod media_file;
pub mod media_removal;
pub mod message;
pub mod occurrence;
pub mod scheduled_message;
pub mod session;
pub mod tag;
pub mod template;
pub mod template_catalog;
pub mod upload;
pub mod user;
