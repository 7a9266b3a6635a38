//! What a failure means beyond its own message, wherever Meta reports it (the send call's
//! answer or a status webhook): a contact WhatsApp will not deliver to is suppressed for
//! campaigns, and a template Meta paused or refused pauses the campaign that uses it instead of
//! failing its recipients one by one.

use chrono::{DateTime, Utc};
use heydoc_domain::ScheduleStatus;
use heydoc_entity::{contact, message};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};

use crate::Result;

/// Suppresses the contact for campaigns (the first reason stays) and skips its campaign
/// deliveries not sent yet, with the reason.
pub async fn suppress_contact(
    db: &impl ConnectionTrait,
    contact_id: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    // The column holds 256 characters; Meta's texts can be longer.
    let reason: String = reason.chars().take(250).collect();
    let reason = reason.as_str();
    contact::Entity::update_many()
        .col_expr(contact::Column::SuppressedReason, Expr::value(reason))
        .col_expr(contact::Column::UpdatedAt, Expr::value(now))
        .filter(contact::Column::Id.eq(contact_id))
        .filter(contact::Column::SuppressedReason.is_null())
        .exec(db)
        .await?;
    skip_queued_campaign_deliveries(db, contact_id, &format!("suppressed: {reason}"), now).await
}

/// The contact's campaign deliveries not sent yet are skipped with `reason` (an opt-out, a
/// suppression). Messages a person sends from the chat are not campaign deliveries.
pub async fn skip_queued_campaign_deliveries(
    db: &impl ConnectionTrait,
    contact_id: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    crate::deliveries::skip_unsent(reason, now)
        .filter(message::Column::ContactId.eq(contact_id))
        .filter(message::Column::Origin.eq("occurrence"))
        .exec(db)
        .await?;
    Ok(())
}

/// Pauses the running campaign a delivery belongs to, saying why; its deliveries wait (the
/// claim holds a paused campaign's) until someone resumes it. Returns whether it paused now.
pub async fn pause_campaign_of(
    db: &impl ConnectionTrait,
    occurrence_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    // The column holds 512 characters; Meta's texts can be longer.
    let reason: String = reason.chars().take(500).collect();
    let result = db
        .execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "UPDATE scheduled_messages SET status = {}, status_reason = $1, updated_at = $2, paused_at = $2
             WHERE status = {}
               AND id = (SELECT schedule_id FROM occurrences WHERE id = $3)",
                crate::vocabulary::schedule(ScheduleStatus::Paused),
                crate::vocabulary::schedule(ScheduleStatus::Pending)
            ),
            [reason.as_str().into(), now.into(), occurrence_id.into()],
        ))
        .await?;
    if result.rows_affected() == 0 {
        return Ok(false);
    }
    // The template is the campaign's: its re-approval (Meta's webhook) resumes the campaign.
    let schedule = heydoc_entity::scheduled_message::Entity::find()
        .filter(
            heydoc_entity::scheduled_message::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(heydoc_entity::occurrence::Column::ScheduleId)
                    .from(heydoc_entity::occurrence::Entity)
                    .and_where(heydoc_entity::occurrence::Column::Id.eq(occurrence_id))
                    .to_owned(),
            ),
        )
        .one(db)
        .await?;
    if let Some(s) = schedule {
        if let Some((name, language)) = crate::templates::template_of(&s) {
            let waba_id = crate::templates::account_of(db, &s).await?;
            heydoc_entity::scheduled_message::Entity::update_many()
                .col_expr(
                    heydoc_entity::scheduled_message::Column::PausedTemplate,
                    Expr::value(crate::templates::key(&waba_id, &name, &language)),
                )
                .filter(heydoc_entity::scheduled_message::Column::Id.eq(s.id))
                .exec(db)
                .await?;
        }
    }
    Ok(true)
}
