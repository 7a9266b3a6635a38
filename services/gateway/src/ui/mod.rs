//! The dashboard: server-rendered pages (maud) on the API's own session, with a small
//! hand-written script for forms, live updates (server-sent events) and the campaign preview.
//! Pages read through the API's own handlers, so they show exactly what the API returns;
//! every change a page makes is a call to the JSON API. Assets are compiled into the binary.

pub mod assets;
pub mod auth_pages;
pub mod campaigns;
pub mod chat;
pub mod contacts_io;
pub mod contrast;
pub mod format;
pub mod inbox;
pub mod integrations;
pub mod layout;
pub mod live;
pub mod page;
pub mod replies;
pub mod tags;
pub mod team;
pub mod templates;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::{middleware, Router};

use crate::state::AppState;

/// Every page and asset except `/login` and `/register`, whose paths the API shares (the lib
/// puts their `GET` beside the API's `POST`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page::home))
        .route("/inbox", get(inbox::page))
        .route("/chat/{phone}", get(chat::page))
        .route("/replies", get(replies::page))
        .route("/contacts/import", get(contacts_io::page))
        .route("/campaigns", get(campaigns::list))
        .route("/campaigns/new", get(campaigns::new))
        .route("/campaigns/{id}", get(campaigns::detail))
        .route("/tags", get(tags::page))
        .route("/integrations", get(integrations::page))
        .route("/team", get(team::team))
        .route("/audit", get(team::audit_page))
        .route("/account", get(team::account))
        .route("/assets/{name}", get(assets::serve))
        .layer(middleware::map_response(page_headers))
}

/// Only our own script and stylesheet run (inline `style` attributes carry tag colors), no
/// framing, no sniffing, no referrer beyond this site.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The headers every page and asset gets.
pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
