//! Flow control at Meta's pace: the bus is a window, the database the backlog.
//! - `idx_messages_on_bus`: the rows published and not yet claimed (a few seconds of a number's
//!   rate), counted before each refill of the window.
//! - `idx_messages_unrelayed_by_run`: the backlog of each campaign run, so the relay can take
//!   from every running campaign in turn (round-robin) instead of the oldest first.
//! - `idx_messages_unrelayed_conversation`: the conversational lane (API sends, replies,
//!   confirmations), found without walking past a campaign's backlog.
//! - `scheduled_messages.status_reason`: why a campaign was paused by HeyDoc itself (a template
//!   Meta paused or refused), shown with its status.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledMessages {
    Table,
    StatusReason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared(
            "CREATE INDEX idx_messages_on_bus ON messages (sender_phone) \
             WHERE enqueued_at IS NOT NULL AND status IN ('queued', 'retrying')",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_messages_unrelayed_by_run ON messages (occurrence_id, id) \
             WHERE enqueued_at IS NULL AND status IN ('queued', 'retrying')",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_messages_unrelayed_conversation ON messages (sender_phone, id) \
             WHERE occurrence_id IS NULL AND enqueued_at IS NULL AND status IN ('queued', 'retrying')",
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .add_column(
                    ColumnDef::new(ScheduledMessages::StatusReason)
                        .string_len(512)
                        .null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_on_bus")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_unrelayed_by_run")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_unrelayed_conversation")
            .await?;
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .drop_column(ScheduledMessages::StatusReason)
                .to_owned(),
        )
        .await
    }
}
