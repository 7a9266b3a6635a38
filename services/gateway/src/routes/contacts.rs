//! Contacts: the inbox list with its counters and tags, and contact CRUD and tagging.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use heydoc_domain::{validate, Phone};
use heydoc_entity::{contact, contact_tag, tag};
use heydoc_store::contacts::{find_by_phone, new_contact};
use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query as QueryParams};
use crate::routes::tags::{ensure_exist, TagOut};
use crate::routes::{page_size, Ack, Envelope};
use crate::state::AppState;

/// A contact as the seed shows it, plus HeyDoc's additions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactOut {
    pub phone: String,
    pub name: String,
    /// The newest message's text; empty when there is none.
    pub last_message: String,
    pub message_count: i32,
    pub unread_count: i32,
    pub is_group: bool,
    pub tags: Vec<TagOut>,
    pub id: i32,
    pub last_message_at: Option<DateTime<Utc>>,
    /// The last inbound message: WhatsApp's 24-hour window runs from here.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Opted out of campaigns.
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    /// Why WhatsApp refused to deliver to this contact, when it did.
    pub suppressed_reason: Option<String>,
    /// Custom attributes: a JSON object.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// The business number (phone number id) the contact last wrote to: replies go from it.
    pub last_number: Option<String>,
}

impl ContactOut {
    pub fn new(c: contact::Model, tags: Vec<TagOut>) -> Self {
        Self {
            phone: c.phone,
            name: c.name,
            last_message: c.last_message.unwrap_or_default(),
            message_count: c.message_count,
            unread_count: c.unread_count,
            is_group: c.is_group,
            tags,
            id: c.id,
            last_message_at: c.last_message_at,
            last_inbound_at: c.last_inbound_at,
            opted_out: c.opted_out_at.is_some(),
            opted_out_at: c.opted_out_at,
            suppressed_reason: c.suppressed_reason,
            attributes: c.attributes,
            created_at: c.created_at,
            last_number: c.last_number,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// The `X-Next-Cursor` header of the previous page.
    pub cursor: Option<String>,
    /// Only contacts whose phone or name contains this text.
    pub q: Option<String>,
    /// Only contacts carrying this tag id.
    pub tag: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewContact {
    #[schema(example = "14155550123", pattern = r"^\+?[1-9][0-9 ().-]{5,30}$")]
    pub phone: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_group: Option<bool>,
    /// Custom attributes: a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    #[serde(default)]
    pub tag_ids: Option<Vec<i32>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactChanges {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_group: Option<bool>,
    /// Replaces the custom attributes: a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    /// Replaces the contact's tags.
    #[serde(default)]
    pub tag_ids: Option<Vec<i32>>,
    /// Opt the contact out of (or back into) campaigns.
    #[serde(default)]
    pub opted_out: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TagIds {
    pub tag_ids: Vec<i32>,
}

/// Contacts with their last message, counters and tags, newest activity first. The next
/// page's cursor comes in the `X-Next-Cursor` header (absent on the last page).
#[utoipa::path(
    get, path = "/api/contacts", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
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
    let limit = page_size(params.limit, 50, 200);
    let mut query = matching(params.q.as_deref(), params.tag);
    if let Some(cursor) = params.cursor.as_deref() {
        let (at, id) = decode_cursor(cursor)?;
        query = query.filter(
            Condition::any()
                .add(contact::Column::LastActivityAt.lt(at))
                .add(
                    contact::Column::LastActivityAt
                        .eq(at)
                        .and(contact::Column::Id.lt(id)),
                ),
        );
    }
    let mut rows = query
        .order_by_desc(contact::Column::LastActivityAt)
        .order_by_desc(contact::Column::Id)
        .limit(limit + 1)
        .all(&state.db)
        .await?;
    let mut headers = HeaderMap::new();
    if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        if let Some(last) = rows.last() {
            if let Ok(v) = HeaderValue::from_str(&encode_cursor(last.last_activity_at, last.id)) {
                headers.insert("x-next-cursor", v);
            }
        }
    }
    let mut tags = tags_of(&state.db, &rows.iter().map(|c| c.id).collect::<Vec<_>>()).await?;
    let out = rows
        .into_iter()
        .map(|c| {
            let t = tags.remove(&c.id).unwrap_or_default();
            ContactOut::new(c, t)
        })
        .collect();
    Ok((headers, axum::Json(out)))
}

/// Contacts whose phone or name contains `q` (case-insensitive) and that carry tag `tag`: the
/// inbox's filter, which the export uses too.
pub fn matching(q: Option<&str>, tag: Option<i32>) -> sea_orm::Select<contact::Entity> {
    let mut query = contact::Entity::find();
    if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
        query = query.filter(
            Condition::any()
                .add(
                    Expr::col(contact::Column::Phone)
                        .like(sea_orm::sea_query::LikeExpr::new(&pattern).escape('\\')),
                )
                .add(
                    Expr::expr(Func::lower(Expr::col(contact::Column::Name)))
                        .like(sea_orm::sea_query::LikeExpr::new(&pattern).escape('\\')),
                ),
        );
    }
    if let Some(tag_id) = tag {
        query = query.filter(
            contact::Column::Id.in_subquery(
                Query::select()
                    .column(contact_tag::Column::ContactId)
                    .from(contact_tag::Entity)
                    .and_where(contact_tag::Column::TagId.eq(tag_id))
                    .to_owned(),
            ),
        );
    }
    query
}

/// One contact.
#[utoipa::path(
    get, path = "/api/contacts/{phone}", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number, country code first")),
    responses((status = 200, body = ContactOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<ContactOut>> {
    let contact = find(&state.db, &phone).await?;
    Ok(axum::Json(with_tags(&state.db, contact).await?))
}

/// Adds a contact.
#[utoipa::path(
    post, path = "/api/contacts", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    request_body = NewContact,
    responses(
        (status = 201, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewContact>,
) -> ApiResult<(StatusCode, axum::Json<Envelope<ContactOut>>)> {
    let phone = Phone::parse(&body.phone)?;
    let name = body.name.unwrap_or_default();
    validate::contact_name(&name)?;
    let attributes = check_attributes(body.attributes)?;
    let tag_ids = dedup(body.tag_ids.unwrap_or_default());
    let txn = state.db.begin().await?;
    ensure_exist(&txn, &tag_ids).await?;
    if find_by_phone(&txn, phone.as_str()).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "contact {phone} exists; use PUT /api/contacts/{phone}"
        )));
    }
    let mut model = new_contact(&phone, &name, body.is_group.unwrap_or(false), Utc::now());
    if let Some(attrs) = attributes {
        model.attributes = Set(attrs);
    }
    let created = contact::Entity::insert(model)
        .exec_with_returning(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                ApiError::Conflict(format!("contact {phone} exists"))
            }
            _ => e.into(),
        })?;
    replace_tags(&txn, created.id, &tag_ids).await?;
    let out = with_tags(&txn, created).await?;
    txn.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Envelope::ok(out, "Contact created")),
    ))
}

/// Changes a contact's name, attributes, tags or opt-out.
#[utoipa::path(
    put, path = "/api/contacts/{phone}", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number")),
    request_body = ContactChanges,
    responses(
        (status = 200, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(phone): Path<String>,
    Json(body): Json<ContactChanges>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    if let Some(name) = &body.name {
        validate::contact_name(name)?;
    }
    let attributes = check_attributes(body.attributes)?;
    let tag_ids = body.tag_ids.map(dedup);
    let txn = state.db.begin().await?;
    let existing = find(&txn, &phone).await?;
    if let Some(ids) = &tag_ids {
        ensure_exist(&txn, ids).await?;
    }
    let now = Utc::now();
    let id = existing.id;
    let was_opted_out = existing.opted_out_at.is_some();
    let mut model: contact::ActiveModel = existing.into();
    if let Some(name) = body.name {
        model.name = Set(name);
    }
    if let Some(is_group) = body.is_group {
        model.is_group = Set(is_group);
    }
    if let Some(attrs) = attributes {
        model.attributes = Set(attrs);
    }
    match body.opted_out {
        Some(true) if !was_opted_out => model.opted_out_at = Set(Some(now)),
        Some(false) => model.opted_out_at = Set(None),
        _ => {}
    }
    model.updated_at = Set(now);
    let updated = contact::Entity::update(model).exec(&txn).await?;
    if let Some(ids) = &tag_ids {
        replace_tags(&txn, id, ids).await?;
    }
    if body.opted_out == Some(true) && !was_opted_out {
        // Like a STOP: campaign messages already queued for the contact are not sent either
        // (and the sender checks consent again when it claims one).
        heydoc_store::failures::skip_queued_campaign_deliveries(
            &txn,
            id,
            &format!(
                "opted out of campaigns on {}",
                now.format("%Y-%m-%d %H:%M UTC")
            ),
            now,
        )
        .await?;
    }
    let out = with_tags(&txn, updated).await?;
    txn.commit().await?;
    Ok(axum::Json(Envelope::ok(out, "Contact updated")))
}

/// Deletes a contact with its chat history.
#[utoipa::path(
    delete, path = "/api/contacts/{phone}", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number")),
    responses((status = 200, body = Ack), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<Ack>> {
    let contact = find(&state.db, &phone).await?;
    contact::Entity::delete_by_id(contact.id)
        .exec(&state.db)
        .await?;
    Ok(axum::Json(Ack::new("Contact deleted")))
}

/// Replaces a contact's tags.
#[utoipa::path(
    put, path = "/api/contacts/{phone}/tags", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number")),
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
    let ids = dedup(body.tag_ids);
    let txn = state.db.begin().await?;
    let contact = find(&txn, &phone).await?;
    ensure_exist(&txn, &ids).await?;
    replace_tags(&txn, contact.id, &ids).await?;
    let out = with_tags(&txn, contact).await?;
    txn.commit().await?;
    Ok(axum::Json(Envelope::ok(out, "Tags updated")))
}

/// Puts one tag on a contact.
#[utoipa::path(
    post, path = "/api/contacts/{phone}/tags/{tag_id}", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number"), ("tag_id" = i32, Path, description = "tag id")),
    responses(
        (status = 200, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn add_tag(
    State(state): State<AppState>,
    Path((phone, tag_id)): Path<(String, i32)>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    let contact = find(&state.db, &phone).await?;
    crate::routes::tags::find(&state, tag_id).await?;
    contact_tag::Entity::insert(contact_tag::ActiveModel {
        contact_id: Set(contact.id),
        tag_id: Set(tag_id),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::columns([
            contact_tag::Column::ContactId,
            contact_tag::Column::TagId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .do_nothing()
    .exec(&state.db)
    .await?;
    Ok(axum::Json(Envelope::ok(
        with_tags(&state.db, contact).await?,
        "Tag added",
    )))
}

/// Takes one tag off a contact.
#[utoipa::path(
    delete, path = "/api/contacts/{phone}/tags/{tag_id}", tag = "contacts", security(("bearer" = []), ("cookie" = [])),
    params(("phone" = String, Path, description = "the contact's phone number"), ("tag_id" = i32, Path, description = "tag id")),
    responses(
        (status = 200, body = Envelope<ContactOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn remove_tag(
    State(state): State<AppState>,
    Path((phone, tag_id)): Path<(String, i32)>,
) -> ApiResult<axum::Json<Envelope<ContactOut>>> {
    let contact = find(&state.db, &phone).await?;
    contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::ContactId.eq(contact.id))
        .filter(contact_tag::Column::TagId.eq(tag_id))
        .exec(&state.db)
        .await?;
    Ok(axum::Json(Envelope::ok(
        with_tags(&state.db, contact).await?,
        "Tag removed",
    )))
}

/// The contact with this phone (as typed), or 422 for a malformed number and 404 for an unknown one.
pub async fn find(db: &impl ConnectionTrait, phone: &str) -> ApiResult<contact::Model> {
    let phone = Phone::parse(phone)?;
    find_by_phone(db, phone.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("contact {phone} not found")))
}

async fn with_tags(db: &impl ConnectionTrait, c: contact::Model) -> ApiResult<ContactOut> {
    let tags = tags_of(db, &[c.id])
        .await?
        .remove(&c.id)
        .unwrap_or_default();
    Ok(ContactOut::new(c, tags))
}

/// The tags of each of these contacts, in one query.
pub async fn tags_of(
    db: &impl ConnectionTrait,
    contact_ids: &[i32],
) -> ApiResult<HashMap<i32, Vec<TagOut>>> {
    let mut by_contact: HashMap<i32, Vec<TagOut>> = HashMap::new();
    if contact_ids.is_empty() {
        return Ok(by_contact);
    }
    let rows: Vec<(i32, i32, String, String)> = contact_tag::Entity::find()
        .select_only()
        .column(contact_tag::Column::ContactId)
        .column_as(tag::Column::Id, "tag_id_out")
        .column(tag::Column::Name)
        .column(tag::Column::Color)
        .join(
            sea_orm::JoinType::InnerJoin,
            contact_tag::Entity::belongs_to(tag::Entity)
                .from(contact_tag::Column::TagId)
                .to(tag::Column::Id)
                .into(),
        )
        .filter(contact_tag::Column::ContactId.is_in(contact_ids.iter().copied()))
        .order_by_asc(tag::Column::Name)
        .into_tuple()
        .all(db)
        .await?;
    for (contact_id, id, name, color) in rows {
        by_contact
            .entry(contact_id)
            .or_default()
            .push(TagOut { id, name, color });
    }
    Ok(by_contact)
}

async fn replace_tags(
    txn: &impl ConnectionTrait,
    contact_id: i32,
    tag_ids: &[i32],
) -> ApiResult<()> {
    contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::ContactId.eq(contact_id))
        .exec(txn)
        .await?;
    if !tag_ids.is_empty() {
        contact_tag::Entity::insert_many(tag_ids.iter().map(|&tag_id| contact_tag::ActiveModel {
            contact_id: Set(contact_id),
            tag_id: Set(tag_id),
        }))
        .exec(txn)
        .await?;
    }
    Ok(())
}

fn check_attributes(value: Option<serde_json::Value>) -> ApiResult<Option<serde_json::Value>> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => {
            if v.to_string().len() > 16 * 1024 {
                return Err(ApiError::validation(
                    "attributes must be at most 16 KiB of JSON",
                ));
            }
            Ok(Some(v))
        }
        Some(_) => Err(ApiError::validation("attributes must be a JSON object")),
    }
}

fn dedup(mut ids: Vec<i32>) -> Vec<i32> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn encode_cursor(at: DateTime<Utc>, id: i32) -> String {
    let raw = format!("{}|{id}", at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> ApiResult<(DateTime<Utc>, i32)> {
    let bad = || ApiError::BadRequest("cursor is not one this API returned".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    Ok((at, id.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let at = Utc::now();
        assert_eq!(decode_cursor(&encode_cursor(at, 42)).unwrap(), (at, 42));
        assert!(decode_cursor("not-a-cursor").is_err());
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_a\\"), "50\\%\\_a\\\\");
    }
}
