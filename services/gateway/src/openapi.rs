//! The OpenAPI document, generated from the handlers' annotations, served at `/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    api_keys, auth, contacts, event_endpoints, health, imports, messages, numbers, scheduled, send,
    tags, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HeyDoc",
        description = "WhatsApp Business messaging: contacts, chats, tags, sends and scheduled campaigns. \
                       Every /api route needs a session cookie from POST /login or `Authorization: Bearer <token>`."
    ),
    paths(
        auth::register, auth::login, auth::logout, auth::logout_get,
        auth::list_users, auth::create_user_as_admin, auth::update_user, auth::delete_user,
        auth::reset_password, auth::sessions, auth::revoke_sessions, auth::me, auth::change_password,
        auth::audit_log,
        api_keys::create, api_keys::list, api_keys::revoke,
        numbers::list, numbers::create, numbers::update,
        event_endpoints::create, event_endpoints::list, event_endpoints::update, event_endpoints::delete, event_endpoints::deliveries,
        contacts::list, contacts::get, contacts::create, contacts::update, contacts::delete,
        contacts::set_tags, contacts::add_tag, contacts::remove_tag,
        imports::upload, imports::get, imports::export,
        tags::list, tags::create, tags::update, tags::delete,
        messages::list, messages::mark_read, send::send_message,
        scheduled::list, scheduled::pending, scheduled::get, scheduled::create, scheduled::preview, scheduled::delete, scheduled::update_status, scheduled::deliveries_of,
        crate::ui::live::events,
        webhooks::verify, webhooks::receive,
        health::healthz, health::readyz,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}
