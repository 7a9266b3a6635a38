//! Contact import from CSV: the upload is spooled to a temporary file (memory stays flat
//! whatever its size), its header is checked at once, and a background job reads it in batches
//! of 1,000 rows, upserting each batch in one transaction and recording its progress and the
//! rejected rows in the database, where `GET /api/imports/{id}` reads them.

pub mod columns;
pub mod export;
pub mod job;
pub mod preview;
pub mod spool;
pub mod tag_room;

pub use columns::Columns;
