//! The sender's results, written back in batches.

use chrono::{DateTime, SecondsFormat, Utc};
use heydoc_domain::MessageStatus;
use heydoc_entity::message;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter,
    Statement, TransactionTrait, Value,
};

use crate::vocabulary;
use crate::Result;

/// What became of one claimed send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        wamid: String,
    },
    Retry {
        at: DateTime<Utc>,
        code: Option<i32>,
        reason: String,
    },
    Failed {
        code: Option<i32>,
        reason: String,
    },
    Skipped {
        reason: String,
    },
    Unknown {
        reason: String,
    },
    /// Not about this message (the number's token, the account, a template): it waits, as a
    /// retry at `at`, without spending an attempt.
    Held {
        at: DateTime<Utc>,
        code: Option<i32>,
        reason: String,
    },
}

impl Outcome {
    fn status(&self) -> MessageStatus {
        match self {
            Outcome::Sent { .. } => MessageStatus::Sent,
            Outcome::Retry { .. } | Outcome::Held { .. } => MessageStatus::Retrying,
            Outcome::Failed { .. } => MessageStatus::Failed,
            Outcome::Skipped { .. } => MessageStatus::Skipped,
            Outcome::Unknown { .. } => MessageStatus::Unknown,
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        self.status().as_str()
    }
}

/// One result to write back.
#[derive(Debug, Clone)]
pub struct SendResult {
    pub id: i64,
    pub contact_id: i32,
    pub outcome: Outcome,
    /// Stop messaging this contact, and why (131050, 131026).
    pub suppress: Option<String>,
    /// Pause this delivery's campaign, and why (a template Meta paused or refused).
    pub pause_campaign: Option<(i64, String)>,
}

/// Writes a batch of results in one transaction. On PostgreSQL the messages are updated with
/// one statement (`json_to_recordset`); only rows still `sending` change, so a status webhook
/// that already moved a row to delivered is not undone. The `message.status` events of the
/// rows that did change are recorded in the same transaction.
pub async fn record(
    db: &DatabaseConnection,
    results: &[SendResult],
    now: DateTime<Utc>,
) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await?;
    let mut changed: Vec<i64> = Vec::with_capacity(results.len());
    match txn.get_database_backend() {
        DatabaseBackend::Postgres => {
            let rows: Vec<serde_json::Value> = results.iter().map(row_json).collect();
            let (retrying, result_over) = (
                vocabulary::message(MessageStatus::Retrying),
                &*vocabulary::RESULT_OVER,
            );
            let updated = txn.query_all(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                format!(
                    "UPDATE messages AS m SET
                    status = v.status,
                    message_id = COALESCE(v.wamid, m.message_id),
                    last_error_code = v.code,
                    last_error_reason = v.reason,
                    next_attempt_at = v.next_at,
                    attempts = m.attempts - v.refund,
                    enqueued_at = CASE WHEN v.status = {retrying} THEN NULL ELSE m.enqueued_at END,
                    updated_at = $2
                 FROM json_to_recordset($1::json)
                    AS v(id bigint, status text, wamid text, code int, reason text, next_at timestamptz, refund int)
                 WHERE m.id = v.id AND m.status IN ({result_over})
                 RETURNING m.id"
                ),
                [Value::Json(Some(Box::new(serde_json::Value::Array(rows)))), now.into()],
            ))
            .await?;
            changed.extend(
                updated
                    .iter()
                    .filter_map(|r| r.try_get_by_index::<i64>(0).ok()),
            );
        }
        _ => {
            for r in results {
                let (wamid, code, reason, next_at) = parts(&r.outcome);
                let mut update = message::Entity::update_many()
                    .col_expr(
                        message::Column::Status,
                        Expr::value(r.outcome.status().as_str()),
                    )
                    .col_expr(message::Column::LastErrorCode, Expr::value(code))
                    .col_expr(message::Column::LastErrorReason, Expr::value(reason))
                    .col_expr(message::Column::NextAttemptAt, Expr::value(next_at))
                    .col_expr(message::Column::UpdatedAt, Expr::value(now))
                    .filter(message::Column::Id.eq(r.id))
                    .filter(message::Column::Status.is_in([
                        MessageStatus::Sending.as_str(),
                        MessageStatus::Unknown.as_str(),
                    ]));
                if let Some(w) = wamid {
                    update = update.col_expr(message::Column::MessageId, Expr::value(w));
                }
                if matches!(r.outcome, Outcome::Retry { .. } | Outcome::Held { .. }) {
                    update = update.col_expr(
                        message::Column::EnqueuedAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    );
                }
                if matches!(r.outcome, Outcome::Held { .. }) {
                    update = update.col_expr(
                        message::Column::Attempts,
                        Expr::col(message::Column::Attempts).sub(1),
                    );
                }
                if update.exec(&txn).await?.rows_affected > 0 {
                    changed.push(r.id);
                }
            }
        }
    }
    let changed: std::collections::HashSet<i64> = changed.into_iter().collect();
    crate::events::emit_send_results(&txn, results, &changed, now).await?;
    let failed: Vec<i64> = results
        .iter()
        .filter(|r| changed.contains(&r.id) && matches!(r.outcome, Outcome::Failed { .. }))
        .map(|r| r.id)
        .collect();
    crate::conversations::replies_failed(&txn, &failed).await?;
    for r in results {
        if let Some(reason) = &r.suppress {
            crate::failures::suppress_contact(&txn, r.contact_id, reason, now).await?;
        }
        if let Some((occurrence, reason)) = &r.pause_campaign {
            if crate::failures::pause_campaign_of(&txn, *occurrence, reason, now).await? {
                tracing::warn!(occurrence_id = occurrence, %reason, "campaign paused");
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

fn parts(
    o: &Outcome,
) -> (
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<DateTime<Utc>>,
) {
    match o {
        Outcome::Sent { wamid } => (Some(wamid.clone()), None, None, None),
        Outcome::Retry { at, code, reason } | Outcome::Held { at, code, reason } => {
            (None, *code, Some(storable(reason)), Some(*at))
        }
        Outcome::Failed { code, reason } => (None, *code, Some(storable(reason)), None),
        Outcome::Skipped { reason } | Outcome::Unknown { reason } => {
            (None, None, Some(storable(reason)), None)
        }
    }
}

/// A reason as a text column can hold it: no NUL (PostgreSQL's text refuses it, and Meta's
/// error texts are not ours to trust), at most 1,000 characters.
fn storable(reason: &str) -> String {
    reason.chars().filter(|c| *c != '\0').take(1000).collect()
}

/// Writes `results` one at a time, for when a batch could not be written although the
/// database answers (a row it can never take: an over-long message id, say). A result that
/// still cannot be written is set aside: it is written again with only the reason, in plain
/// words, in place of what the database refused (a send whose message id cannot be kept
/// becomes `unknown`); if even that fails, the row is left for the reconciler. Returns the
/// results set aside with the database's error; an error when the database stops answering
/// meanwhile (then nothing is set aside, and the caller keeps the batch).
pub async fn record_apart(
    db: &DatabaseConnection,
    results: &[SendResult],
    now: DateTime<Utc>,
) -> Result<Vec<(i64, String)>> {
    let mut aside = Vec::new();
    for r in results {
        let Err(e) = record(db, std::slice::from_ref(r), now).await else {
            continue;
        };
        crate::ping(db).await?;
        let why = storable(&format!(
            "the send's result ({}) could not be recorded: {e}",
            r.outcome.label()
        ));
        let outcome = match &r.outcome {
            Outcome::Sent { .. } | Outcome::Unknown { .. } => Outcome::Unknown {
                reason: why.clone(),
            },
            Outcome::Retry { at, .. } => Outcome::Retry {
                at: *at,
                code: None,
                reason: why.clone(),
            },
            Outcome::Held { at, .. } => Outcome::Held {
                at: *at,
                code: None,
                reason: why.clone(),
            },
            Outcome::Failed { .. } => Outcome::Failed {
                code: None,
                reason: why.clone(),
            },
            Outcome::Skipped { .. } => Outcome::Skipped {
                reason: why.clone(),
            },
        };
        let plain = SendResult {
            outcome,
            ..r.clone()
        };
        if let Err(again) = record(db, std::slice::from_ref(&plain), now).await {
            tracing::error!(id = r.id, error = %again, "cannot set a result aside either; the reconciler marks the row unknown");
        }
        aside.push((r.id, why));
    }
    Ok(aside)
}

fn row_json(r: &SendResult) -> serde_json::Value {
    let (wamid, code, reason, next_at) = parts(&r.outcome);
    serde_json::json!({
        "id": r.id,
        "status": r.outcome.status().as_str(),
        "wamid": wamid,
        "code": code,
        "reason": reason,
        "next_at": next_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        "refund": i32::from(matches!(r.outcome, Outcome::Held { .. })),
    })
}
