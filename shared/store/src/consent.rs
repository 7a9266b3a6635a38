//! A contact's STOP or START: the opt-out flag changes once, and the one-time confirmation is
//! queued in the same transaction (the outbox relay sends it if the caller's publish does not).

use chrono::{DateTime, Utc};
use heydoc_domain::consent::Consent;
use heydoc_entity::{contact, message};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use crate::{chat, Result};

/// What a keyword changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    pub consent: Consent,
    /// The queued confirmation, when one is configured.
    pub reply_id: Option<i64>,
}

/// Opts the contact out (or back in) unless it already is; only a change queues `reply`
/// (sent from `business_number`). Repeating STOP changes nothing and sends nothing.
pub async fn apply(
    db: &impl TransactionTrait,
    contact_id: i32,
    consent: Consent,
    reply: &str,
    business_number: &str,
    now: DateTime<Utc>,
) -> Result<Option<ConsentChange>> {
    let txn = db.begin().await?;
    let update = contact::Entity::update_many()
        .col_expr(contact::Column::UpdatedAt, Expr::value(now))
        .filter(contact::Column::Id.eq(contact_id));
    let changed = match consent {
        Consent::OptOut => update
            .col_expr(contact::Column::OptedOutAt, Expr::value(now))
            .filter(contact::Column::OptedOutAt.is_null()),
        Consent::OptIn => update
            .col_expr(
                contact::Column::OptedOutAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(contact::Column::OptedOutAt.is_not_null()),
    }
    .exec(&txn)
    .await?
    .rows_affected
        > 0;
    if !changed {
        txn.rollback().await?;
        return Ok(None);
    }
    if consent == Consent::OptOut {
        // Campaign messages already queued for the contact are not sent either.
        crate::failures::skip_queued_campaign_deliveries(
            &txn,
            contact_id,
            &format!(
                "opted out of campaigns on {}",
                now.format("%Y-%m-%d %H:%M UTC")
            ),
            now,
        )
        .await?;
    }
    let reply = reply.trim();
    let reply_id = if reply.is_empty() {
        None
    } else {
        let Some(to) = contact::Entity::find_by_id(contact_id).one(&txn).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        let row = chat::queued_text(
            contact_id,
            business_number,
            &to.phone,
            reply,
            consent.as_str(),
            now,
        );
        let inserted = message::Entity::insert(row).exec(&txn).await?;
        chat::bump_counters(&txn, contact_id, reply, now, false).await?;
        Some(inserted.last_insert_id)
    };
    txn.commit().await?;
    Ok(Some(ConsentChange { consent, reply_id }))
}
