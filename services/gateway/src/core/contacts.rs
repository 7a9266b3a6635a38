//! Contacts: the inbox list with its counters and tags, contact CRUD and tagging.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use heydoc_domain::{validate, Phone};
use heydoc_store::contacts::{self as store, Contact, Filter};
use heydoc_store::Conn;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::core::tags::{ensure_exist, TagOut};
use crate::error::{ApiError, ApiResult};
use crate::routes::page_size;
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
    /// WhatsApp's business-scoped user id, when WhatsApp gave one. A user known only by it (a
    /// username, no phone) has it as `phone` too, and it works wherever a phone does.
    pub user_id: Option<String>,
    /// The WhatsApp username the user chose, as last seen.
    pub username: Option<String>,
    /// The conversation as the team works it.
    pub conversation: ConversationState,
}

/// A contact's conversation: its status, who has it, and whether it waits for a reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationState {
    /// `open`, `pending` (waiting on the contact or on something else) or `resolved`. An
    /// inbound message reopens a conversation.
    #[schema(value_type = ConversationStatus)]
    pub status: String,
    /// The colleague it is assigned to (see `GET /api/conversations/assignees`).
    pub assignee_id: Option<i32>,
    /// The last conversation message is the contact's and nobody has answered it (campaign
    /// sends and imports do not count).
    pub needs_reply: bool,
    /// The last inbound message or reply; null while the contact only received campaigns or
    /// was imported.
    pub last_at: Option<DateTime<Utc>>,
}

/// A conversation's status.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the document's enum; handlers read the strings and say what is wrong
pub enum ConversationStatus {
    Open,
    Pending,
    Resolved,
}

impl ContactOut {
    pub fn new(c: Contact, tags: Vec<TagOut>) -> Self {
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
            user_id: c.user_id,
            username: c.username,
            conversation: ConversationState {
                status: c.conversation_status,
                assignee_id: c.assignee_id,
                needs_reply: c.awaiting_reply,
                last_at: c.conversation_at,
            },
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` header of the previous page.
    pub cursor: Option<String>,
    /// Only contacts whose phone or name contains this text.
    pub q: Option<String>,
    /// Only contacts carrying this tag id.
    pub tag: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewContact {
    #[schema(
        example = "14155550123",
        pattern = r"^(?:\s*\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){5,19}[ .()-]*\s*|[A-Z]{2}\.[A-Za-z0-9]{1,128})$"
    )]
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

/// One page of the inbox and the cursor of the next (none on the last page).
pub async fn list(
    state: &AppState,
    params: ListParams,
) -> ApiResult<(Vec<ContactOut>, Option<String>)> {
    let limit = page_size(params.limit, 50, 200);
    // An empty cursor is the first page, as no cursor is.
    let after = params
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()?;
    let filter = Filter {
        q: params.q,
        tag: params.tag,
        said_by: None,
    };
    let mut rows = store::inbox_page(&state.db, &filter, after, limit + 1).await?;
    let mut next = None;
    if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        next = rows
            .last()
            .map(|last| encode_cursor(last.last_activity_at, last.id));
    }
    let mut tags = tags_of(&state.db, &rows.iter().map(|c| c.id).collect::<Vec<_>>()).await?;
    let out = rows
        .into_iter()
        .map(|c| {
            let t = tags.remove(&c.id).unwrap_or_default();
            ContactOut::new(c, t)
        })
        .collect();
    Ok((out, next))
}

pub async fn get(state: &AppState, phone: &str) -> ApiResult<ContactOut> {
    let contact = find(&state.db, phone).await?;
    with_tags(&state.db, contact).await
}

pub async fn create(state: &AppState, body: NewContact) -> ApiResult<ContactOut> {
    let phone = Phone::parse(&body.phone)?;
    let name = body.name.unwrap_or_default();
    validate::contact_name(&name)?;
    let attributes = check_attributes(body.attributes)?;
    let tag_ids = dedup(body.tag_ids.unwrap_or_default());
    let txn = heydoc_store::begin(&state.db).await?;
    ensure_exist(&txn, &tag_ids).await?;
    if store::find_by_phone(&txn, phone.as_str()).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "contact {phone} exists; use PUT /api/contacts/{phone}"
        )));
    }
    let created = store::insert(
        &txn,
        &phone,
        &name,
        body.is_group.unwrap_or(false),
        attributes,
        Utc::now(),
    )
    .await?;
    heydoc_store::tags::replace_on_contact(&txn, created.id, &tag_ids).await?;
    let out = with_tags(&txn, created).await?;
    heydoc_store::commit(txn).await?;
    Ok(out)
}

pub async fn update(
    state: &AppState,
    me: &AuthUser,
    phone: &str,
    body: ContactChanges,
) -> ApiResult<ContactOut> {
    if let Some(name) = &body.name {
        validate::contact_name(name)?;
    }
    let attributes = check_attributes(body.attributes)?;
    let tag_ids = body.tag_ids.map(dedup);
    let txn = heydoc_store::begin(&state.db).await?;
    let existing = find(&txn, phone).await?;
    if let Some(ids) = &tag_ids {
        ensure_exist(&txn, ids).await?;
    }
    let now = Utc::now();
    let id = existing.id;
    let opts_out = body.opted_out == Some(true) && existing.opted_out_at.is_none();
    // A contact who wrote STOP is messaged again only on a manager's word, and that is recorded.
    let opts_in = body.opted_out == Some(false) && existing.opted_out_at.is_some();
    if opts_in {
        me.require(heydoc_domain::Permission::Audience)?;
    }
    let changes = store::Changes {
        name: body.name,
        is_group: body.is_group,
        attributes,
        opted_out: body.opted_out,
    };
    let updated = store::update(&txn, existing, changes, now).await?;
    if let Some(ids) = &tag_ids {
        heydoc_store::tags::replace_on_contact(&txn, id, ids).await?;
    }
    if opts_out {
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
    heydoc_store::commit(txn).await?;
    if opts_in {
        crate::core::audit::record(
            state,
            me,
            crate::core::audit::action::CONTACT_OPT_IN,
            out.phone.clone(),
            None,
        )
        .await;
    }
    Ok(out)
}

/// Deletes a contact, its chat and, at the next media sweep, its stored files.
pub async fn delete(state: &AppState, phone: &str) -> ApiResult<()> {
    let txn = heydoc_store::begin(&state.db).await?;
    let contact = find(&txn, phone).await?;
    store::delete(&txn, contact.id, Utc::now()).await?;
    heydoc_store::commit(txn).await?;
    Ok(())
}

pub async fn set_tags(state: &AppState, phone: &str, ids: Vec<i32>) -> ApiResult<ContactOut> {
    let ids = dedup(ids);
    let txn = heydoc_store::begin(&state.db).await?;
    let contact = find(&txn, phone).await?;
    ensure_exist(&txn, &ids).await?;
    heydoc_store::tags::replace_on_contact(&txn, contact.id, &ids).await?;
    let out = with_tags(&txn, contact).await?;
    heydoc_store::commit(txn).await?;
    Ok(out)
}

pub async fn add_tag(state: &AppState, phone: &str, tag_id: i32) -> ApiResult<ContactOut> {
    let contact = find(&state.db, phone).await?;
    heydoc_store::tags::find(&state.db, tag_id).await?;
    heydoc_store::tags::add_to_contact(&state.db, contact.id, tag_id).await?;
    with_tags(&state.db, contact).await
}

pub async fn remove_tag(state: &AppState, phone: &str, tag_id: i32) -> ApiResult<ContactOut> {
    let contact = find(&state.db, phone).await?;
    heydoc_store::tags::remove_from_contact(&state.db, contact.id, tag_id).await?;
    with_tags(&state.db, contact).await
}

/// The contact with this phone (as typed), or 422 for a malformed number and 404 for an unknown one.
pub async fn find(db: &impl Conn, phone: &str) -> ApiResult<Contact> {
    let phone = Phone::parse(phone)?;
    Ok(store::get(db, &phone).await?)
}

pub(crate) async fn with_tags(db: &impl Conn, c: Contact) -> ApiResult<ContactOut> {
    let tags = tags_of(db, &[c.id])
        .await?
        .remove(&c.id)
        .unwrap_or_default();
    Ok(ContactOut::new(c, tags))
}

/// The tags of each of these contacts, in one query.
pub async fn tags_of(db: &impl Conn, contact_ids: &[i32]) -> ApiResult<HashMap<i32, Vec<TagOut>>> {
    Ok(heydoc_store::tags::of_contacts(db, contact_ids)
        .await?
        .into_iter()
        .map(|(id, tags)| (id, tags.into_iter().map(TagOut::from).collect()))
        .collect())
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

pub(crate) fn encode_cursor(at: DateTime<Utc>, id: i32) -> String {
    let raw = format!("{}|{id}", at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_cursor(cursor: &str) -> ApiResult<(DateTime<Utc>, i32)> {
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
}
