//! The dashboard: server-rendered pages (maud) on the API's own session, with a small
//! hand-written script for forms, live updates (server-sent events) and the campaign preview.
//! Pages read through the API's own handlers, so they show exactly what the API returns;
//! every change a page makes is a call to the JSON API. Assets are compiled into the binary.

pub mod assets;
pub mod auth_pages;
pub mod campaigns;
pub mod chat;
pub mod format;
pub mod inbox;
pub mod layout;
pub mod live;
pub mod page;
pub mod tags;

use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// Every page and asset except `/login` and `/register`, whose paths the API shares (the lib
/// puts their `GET` beside the API's `POST`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page::home))
        .route("/inbox", get(inbox::page))
        .route("/chat/{phone}", get(chat::page))
        .route("/campaigns", get(campaigns::list))
        .route("/campaigns/new", get(campaigns::new))
        .route("/campaigns/{id}", get(campaigns::detail))
        .route("/tags", get(tags::page))
        .route("/assets/{name}", get(assets::serve))
}
