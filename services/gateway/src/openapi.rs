//! The OpenAPI document, generated from the handlers' annotations, served at `/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    api_keys, auth, contacts, conversations, event_endpoints, health, imports, media, messages,
    numbers, scheduled, send, tags, templates, uploads, webhooks,
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
        templates::list, templates::sync, media::get, uploads::upload,
        event_endpoints::create, event_endpoints::list, event_endpoints::update, event_endpoints::delete, event_endpoints::deliveries,
        contacts::list, contacts::get, contacts::create, contacts::update, contacts::delete,
        contacts::set_tags, contacts::add_tag, contacts::remove_tag,
        conversations::list, conversations::counts, conversations::assignees, conversations::change,
        conversations::notes, conversations::add_note,
        conversations::canned_replies, conversations::add_canned_reply, conversations::delete_canned_reply,
        imports::upload, imports::preview, imports::get, imports::export,
        tags::list, tags::create, tags::update, tags::delete,
        messages::list, messages::mark_read, messages::typing, send::send_message,
        scheduled::list, scheduled::pending, scheduled::get, scheduled::create, scheduled::preview, scheduled::estimate, scheduled::delete, scheduled::update_status, scheduled::deliveries_of, scheduled::deliveries_csv,
        crate::ui::live::events,
        webhooks::verify, webhooks::receive,
        health::healthz, health::readyz,
        crate::ui::auth_pages::login, crate::ui::auth_pages::register,
    ),
    components(schemas(
        crate::routes::imports::CsvFile, crate::routes::uploads::FileBody,
        crate::core::conversations::ConversationView, crate::core::contacts::ConversationStatus,
        crate::core::schedules::CampaignState,
    )),
    modifiers(&Security, &Responses, &NoNul, &ErrorCodes)
)]
pub struct ApiDoc;

/// The rules' codes (`heydoc_domain::codes`) in the description of `error.code`, so the document
/// lists every code a 4xx body may carry from the same constants the rules use.
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(error))) = components.schemas.get_mut("ErrorCode") else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(code))) = error.properties.get_mut("code") {
            let listed: Vec<String> = heydoc_domain::codes::ALL
                .iter()
                .map(|c| format!("`{c}`"))
                .collect();
            code.description = Some(format!(
                "{} The rules' codes: {}.",
                code.description.clone().unwrap_or_default(),
                listed.join(", ")
            ));
        }
    }
}

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

/// Completes every operation's responses from what the middleware around the handlers can
/// answer, so that no status or content type a client meets is missing from the document:
/// `400` (a path or query that does not parse) wherever there are parameters or a body,
/// `401` and `403` (a role that does not cover the route, a read-only key, another site)
/// on every authenticated route, `415` wherever a body is read; and a description for every
/// response that has none.
struct Responses;

impl Modify for Responses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        let error = || -> RefOr<utoipa::openapi::Response> {
            utoipa::openapi::ResponseBuilder::new()
                .content(
                    "application/json",
                    utoipa::openapi::Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .into()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api");
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                // The query string obeys the body's rule: no NUL characters.
                for param in op.parameters.iter_mut().flatten() {
                    if api && param.parameter_in == utoipa::openapi::path::ParameterIn::Query {
                        if let Some(RefOr::T(schema)) = param.schema.as_mut() {
                            restrict(schema, &mut Vec::new());
                        }
                    }
                }
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let responses = &mut op.responses.responses;
                let mut add = |code: &str| {
                    responses.entry(code.to_string()).or_insert_with(error);
                };
                if has_input {
                    add("400");
                }
                if op.request_body.is_some() {
                    add("415");
                }
                if secured {
                    add("401");
                    add("403");
                }
                for (code, response) in responses.iter_mut() {
                    if let RefOr::T(r) = response {
                        if r.description.is_empty() {
                            r.description = describe(code).into();
                        }
                    }
                }
            }
        }
    }
}

/// What a status means on this API, for responses whose handler did not say more.
fn describe(code: &str) -> &'static str {
    match code {
        "200" => "Done; the body holds the result",
        "201" => "Created; the body holds it",
        "202" => "Accepted; it goes on in the background (see Location)",
        "400" => "The request does not parse: its JSON, a path segment or a query parameter",
        "401" => "Not signed in: no session cookie, bearer token or API key, or one that ended",
        "403" => "Not allowed: your role does not cover this, a read-only API key asked to change something, or the request came from another site",
        "404" => "Nothing by that id, phone or name",
        "409" => "It conflicts with what exists (a name taken, a state that does not allow it)",
        "413" => "The body is too large",
        "415" => "The body is not in a content type this route reads",
        "422" => "A field is invalid; the message says which and why",
        "429" => "Too many requests; see Retry-After",
        "503" => "Not ready, or too busy for now; try again",
        _ => "See the message",
    }
}

/// The one rule every JSON body's text obeys (`extract`: no NUL characters, which neither
/// PostgreSQL text nor JSON columns can store), written into every string of every request
/// schema that has no pattern, format or enum of its own.
pub const NO_NUL: &str = "^[^\\u0000]*$";

struct NoNul;

impl Modify for NoNul {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        // The schemas request bodies name, and those they name in turn.
        let mut wanted: Vec<String> = openapi
            .paths
            .paths
            .values()
            .flat_map(|item| {
                [&item.get, &item.post, &item.put, &item.delete, &item.patch]
                    .into_iter()
                    .flatten()
                    .filter_map(|op| op.request_body.as_ref())
                    .flat_map(|body| body.content.values())
                    .filter_map(|c| match &c.schema {
                        Some(RefOr::Ref(r)) => Some(schema_name(&r.ref_location)),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut done = std::collections::HashSet::new();
        while let Some(name) = wanted.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            if let Some(RefOr::T(schema)) = components.schemas.get_mut(&name) {
                restrict(schema, &mut wanted);
            }
        }
    }
}

fn schema_name(location: &str) -> String {
    location.rsplit('/').next().unwrap_or_default().to_string()
}

/// Adds `NO_NUL` to the plain strings in `schema`; collects the schemas it refers to.
fn restrict(schema: &mut utoipa::openapi::schema::Schema, refs: &mut Vec<String>) {
    use utoipa::openapi::schema::{ArrayItems, Schema, SchemaType, Type};
    use utoipa::openapi::RefOr;
    let visit = |child: &mut RefOr<Schema>, refs: &mut Vec<String>| match child {
        RefOr::Ref(r) => refs.push(schema_name(&r.ref_location)),
        RefOr::T(s) => restrict(s, refs),
    };
    match schema {
        Schema::Object(o) => {
            let is_string = match &o.schema_type {
                SchemaType::Type(t) => *t == Type::String,
                SchemaType::Array(types) => types.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            if is_string && o.pattern.is_none() && o.format.is_none() && o.enum_values.is_none() {
                o.pattern = Some(NO_NUL.into());
            }
            for property in o.properties.values_mut() {
                visit(property, refs);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                visit(items, refs);
            }
        }
        Schema::OneOf(one) => {
            for item in &mut one.items {
                visit(item, refs);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_rule_code() {
        let doc = ApiDoc::openapi().to_json().unwrap();
        for code in heydoc_domain::codes::ALL {
            assert!(
                doc.contains(&format!("`{code}`")),
                "{code} is not in the document"
            );
        }
    }
}
