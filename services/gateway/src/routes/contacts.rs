//! Contacts: the inbox list with its counters and tags, and contact CRUD and tagging.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};

use crate::auth::AuthUser;
use crate::core::audit;
use crate::core::contacts::{self, ContactChanges, ContactOut, ListParams, NewContact, TagIds};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query as QueryParams};
use crate::routes::{Ack, Envelope};
use crate::state::AppState;
use axum::Extension;

/// Contacts with their last message, counters and tags, newest activity first. The next
/// page's cursor comes in the `X-Next-Cursor` header (absent on the last page).
#[utoipa::path(
    get, path = "/api/contacts", operation_id = "listContacts", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(ListParams),
    responses(
        (status = 200, body = Vec<ContactOut>, headers(("X-Next-Cursor" = String, description = "cursor of the next page"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<(HeaderMap, axum::Json<Vec<ContactOut>>)> {
    let (out, next) = contacts::list(&state, params).await?;
    let mut headers = HeaderMap::new();
    if let Some(v) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        headers.insert("x-next-cursor", v);
    }
    Ok((headers, axum::Json(out)))
}

/// One contact.
#[utoipa::path(
    get, path = "/api/contacts/{phone}", operation_id = "getContact", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number, country code first", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    responses((status = 200, body = ContactOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<ContactOut>> {
    Ok(axum::Json(contacts::get(&state, &phone).await?))
}

/// Adds a contact.
#[utoipa::path(
    post, path = "/api/contacts", operation_id = "createContact", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    request_body = NewContact,
    responses(
        (status = 201, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "A tag id in tag_ids does not exist", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewContact>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<ContactOut>>)> {
    let out = contacts::create(&state, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(out, "Contact created")),
    ))
}

/// Changes a contact's name, attributes, tags or opt-out.
#[utoipa::path(
    put, path = "/api/contacts/{phone}", operation_id = "updateContact", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    request_body = ContactChanges,
    responses(
        (status = 200, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(phone): Path<String>,
    Json(body): Json<ContactChanges>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    let out = contacts::update(&state, &me, &phone, body).await?;
    Ok(axum::Json(Envelope::ok(out, "Contact updated")))
}

/// Deletes a contact with its chat history.
#[utoipa::path(
    delete, path = "/api/contacts/{phone}", operation_id = "deleteContact", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    responses((status = 200, body = Ack), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<Ack>> {
    contacts::delete(&state, &phone).await?;
    audit::record(&state, &me, audit::action::CONTACT_DELETE, phone, None).await;
    Ok(axum::Json(Ack::new("Contact deleted")))
}

/// Replaces a contact's tags.
#[utoipa::path(
    put, path = "/api/contacts/{phone}/tags", operation_id = "setContactTags", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$")),
    request_body = TagIds,
    responses(
        (status = 200, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn set_tags(
    State(state): State<AppState>,
    Path(phone): Path<String>,
    Json(body): Json<TagIds>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    let out = contacts::set_tags(&state, &phone, body.tag_ids).await?;
    Ok(axum::Json(Envelope::ok(out, "Tags updated")))
}

/// Puts one tag on a contact.
#[utoipa::path(
    post, path = "/api/contacts/{phone}/tags/{tag_id}", operation_id = "addContactTag", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$"), ("tag_id" = i32, Path, description = "tag id")),
    responses(
        (status = 200, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn add_tag(
    State(state): State<AppState>,
    Path((phone, tag_id)): Path<(String, i32)>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    let out = contacts::add_tag(&state, &phone, tag_id).await?;
    Ok(axum::Json(Envelope::ok(out, "Tag added")))
}

/// Takes one tag off a contact.
#[utoipa::path(
    delete, path = "/api/contacts/{phone}/tags/{tag_id}", operation_id = "removeContactTag", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number", pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$"), ("tag_id" = i32, Path, description = "tag id")),
    responses(
        (status = 200, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn remove_tag(
    State(state): State<AppState>,
    Path((phone, tag_id)): Path<(String, i32)>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    let out = contacts::remove_tag(&state, &phone, tag_id).await?;
    Ok(axum::Json(Envelope::ok(out, "Tag removed")))
}
