//! Who a run reaches: the explicit recipients and the tagged contacts after the cursor, and
//! why an opted-out or suppressed one gets nothing.

use chrono::{DateTime, Utc};
use heydoc_entity::{contact, contact_tag};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::contacts::new_contact;
use crate::Result;

/// One member of the audience.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Recipient {
    pub(super) id: i32,
    pub(super) phone: String,
    /// Why this contact gets nothing: opted out, or suppressed by WhatsApp's answer.
    pub(super) skip: Option<String>,
    /// The fields placeholders name; read only when the message has placeholders.
    pub(super) name: String,
    pub(super) attributes: serde_json::Value,
}

/// The next `limit` contacts of the audience after `after`, in id order: explicit recipients
/// plus contacts carrying any of the tags. The two are read
/// separately, each with a plan that starts at the cursor, and merged (an OR of both makes
/// PostgreSQL hash the tag's remaining membership on every chunk). Fewer than `limit` rows
/// means the audience is exhausted: each part returned fewer than `limit` too.
pub(super) async fn next_audience(
    txn: &impl ConnectionTrait,
    recipients: &[String],
    tag_ids: &[i32],
    after: i32,
    limit: u64,
    personal: bool,
) -> Result<Vec<Recipient>> {
    let mut rows = Vec::new();
    if !recipients.is_empty() {
        let listed = Condition::all().add(contact::Column::Phone.is_in(recipients.iter().cloned()));
        rows.extend(audience_page(txn, listed, after, limit, personal).await?);
    }
    if !tag_ids.is_empty() {
        rows.extend(audience_page(txn, tagged(tag_ids, after), after, limit, personal).await?);
    }
    rows.sort_unstable_by_key(|r: &Recipient| r.id);
    rows.dedup_by_key(|r| r.id);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
}

async fn audience_page(
    txn: &impl ConnectionTrait,
    audience: Condition,
    after: i32,
    limit: u64,
    personal: bool,
) -> Result<Vec<Recipient>> {
    let query = contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .column(contact::Column::Phone)
        .column(contact::Column::OptedOutAt)
        .column(contact::Column::SuppressedReason)
        .filter(contact::Column::Id.gt(after))
        .filter(audience)
        .order_by_asc(contact::Column::Id)
        .limit(limit);
    if !personal {
        let rows: Vec<AudienceRow> = query.into_tuple().all(txn).await?;
        return Ok(rows
            .into_iter()
            .map(|(id, phone, opted_out_at, suppressed)| Recipient {
                id,
                phone,
                skip: skip_reason(opted_out_at, suppressed),
                name: String::new(),
                attributes: serde_json::Value::Null,
            })
            .collect());
    }
    let rows: Vec<PersonalRow> = query
        .column(contact::Column::Name)
        .column(contact::Column::Attributes)
        .into_tuple()
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, phone, opted_out_at, suppressed, name, attributes)| Recipient {
                id,
                phone,
                skip: skip_reason(opted_out_at, suppressed),
                name,
                attributes,
            },
        )
        .collect())
}

/// AudienceRow with the name and attributes placeholders may name.
type PersonalRow = (
    i32,
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    String,
    serde_json::Value,
);

/// id, phone, opted_out_at, suppressed_reason.
type AudienceRow = (i32, String, Option<DateTime<Utc>>, Option<String>);

/// Why a contact gets no campaign message, in words the campaign results show.
fn skip_reason(opted_out_at: Option<DateTime<Utc>>, suppressed: Option<String>) -> Option<String> {
    match (opted_out_at, suppressed) {
        (Some(at), _) => Some(format!(
            "opted out of campaigns on {}",
            at.format("%Y-%m-%d %H:%M UTC")
        )),
        (None, Some(reason)) => Some(format!("suppressed: {reason}")),
        (None, None) => None,
    }
}

/// Contacts carrying any of the tags. The cursor bounds the memberships too: without it
/// PostgreSQL merge-joins the tag's whole membership from its first contact on every chunk
/// (O(audience) per chunk, ~60 ms at a million); with it the join starts where the chunk does
/// (~0.4 ms).
fn tagged(tag_ids: &[i32], after: i32) -> Condition {
    Condition::all().add(Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(contact_tag::Entity)
            .and_where(
                Expr::col((contact_tag::Entity, contact_tag::Column::ContactId))
                    .equals((contact::Entity, contact::Column::Id)),
            )
            .and_where(contact_tag::Column::ContactId.gt(after))
            .and_where(contact_tag::Column::TagId.is_in(tag_ids.iter().copied()))
            .to_owned(),
    ))
}

/// Explicit recipients who are not contacts yet become contacts, so that every delivery has
/// its contact and the chat log shows it.
pub(super) async fn ensure_contacts(
    txn: &impl ConnectionTrait,
    phones: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    for batch in phones.chunks(1000) {
        let models = batch
            .iter()
            .filter_map(|p| heydoc_domain::Phone::parse(p).ok())
            .map(|p| new_contact(&p, "", false, now));
        contact::Entity::insert_many(models)
            .on_conflict(
                OnConflict::column(contact::Column::Phone)
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(txn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_contacts_say_why() {
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(
            skip_reason(at, Some("131050".into())).as_deref(),
            Some("opted out of campaigns on 2030-01-02 03:04 UTC"),
            "opting out says so even when also suppressed"
        );
        assert_eq!(
            skip_reason(None, Some("131026: message undeliverable".into())).as_deref(),
            Some("suppressed: 131026: message undeliverable")
        );
        assert_eq!(skip_reason(None, None), None);
    }
}
