//! The team inbox: each contact's conversation has a status (open, pending, resolved), an
//! assignee, whether its last message is an unanswered inbound one, and the time of its last
//! conversation (an inbound message or a person's reply; campaign sends and imports are not
//! one). Private notes sit in the chat; canned replies are shared by the team; campaigns get a
//! name, and a rejected import row keeps what it said. On PostgreSQL message text gets a trigram index for the inbox search (as contact
//! search does, when pg_trgm may be used).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{DatabaseBackend, Statement};

use crate::m20261124_000001_initial::big_pk_auto;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Contacts {
    Table,
    Id,
    ConversationStatus,
    AwaitingReply,
    ConversationAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum ConversationNotes {
    Table,
    Id,
    ContactId,
    AuthorId,
    Author,
    Body,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum CannedReplies {
    Table,
    Id,
    Shortcut,
    Body,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ImportRejects {
    Table,
    Content,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledMessages {
    Table,
    Name,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Contacts::Table)
                .add_column(string_len(Contacts::ConversationStatus, 16).default("open"))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Contacts::Table)
                .add_column(boolean(Contacts::AwaitingReply).default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Contacts::Table)
                .add_column(timestamp_with_time_zone_null(Contacts::ConversationAt))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // A reference added to an existing table: the same statement on both databases.
        db.execute_unprepared(
            "ALTER TABLE contacts ADD COLUMN assignee_id INTEGER NULL \
             REFERENCES users (id) ON DELETE SET NULL",
        )
        .await?;
        // Existing chats: a contact who wrote has a conversation, waiting for a reply when
        // their message is the last one that was not a campaign's.
        db.execute_unprepared(
            "UPDATE contacts SET conversation_at = last_inbound_at, \
             awaiting_reply = COALESCE((SELECT m.direction = 'incoming' FROM messages m \
                 WHERE m.contact_id = contacts.id AND m.origin <> 'occurrence' \
                 ORDER BY m.id DESC LIMIT 1), false) \
             WHERE last_inbound_at IS NOT NULL",
        )
        .await?;
        // The inbox's order: unread first, then the newest conversation.
        db.execute_unprepared(
            "CREATE INDEX idx_contacts_conversation ON contacts \
             ((unread_count > 0), conversation_at, id) WHERE conversation_at IS NOT NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_contacts_assignee ON contacts (assignee_id) \
             WHERE assignee_id IS NOT NULL",
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ConversationNotes::Table)
                .col(big_pk_auto(ConversationNotes::Id))
                .col(integer(ConversationNotes::ContactId))
                .col(integer_null(ConversationNotes::AuthorId))
                .col(string_len(ConversationNotes::Author, 120))
                .col(text(ConversationNotes::Body))
                .col(timestamp_with_time_zone(ConversationNotes::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ConversationNotes::Table, ConversationNotes::ContactId)
                        .to(Contacts::Table, Contacts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ConversationNotes::Table, ConversationNotes::AuthorId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_conversation_notes_contact")
                .table(ConversationNotes::Table)
                .col(ConversationNotes::ContactId)
                .col(ConversationNotes::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CannedReplies::Table)
                .col(pk_auto(CannedReplies::Id))
                .col(string_len(CannedReplies::Shortcut, 40).unique_key())
                .col(text(CannedReplies::Body))
                .col(integer_null(CannedReplies::CreatedBy))
                .col(timestamp_with_time_zone(CannedReplies::CreatedAt))
                .col(timestamp_with_time_zone(CannedReplies::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .add_column(string_len_null(ScheduledMessages::Name, 120))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ImportRejects::Table)
                .add_column(text_null(ImportRejects::Content))
                .to_owned(),
        )
        .await?;
        message_text_index(m).await
    }

    /// On SQLite the contacts' `assignee_id` (a reference) cannot be dropped in place: this
    /// undoes the migration on PostgreSQL only, as the embedded database is never rolled back.
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(CannedReplies::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(ConversationNotes::Table).to_owned())
            .await?;
        let db = m.get_connection();
        for statement in [
            "DROP INDEX IF EXISTS idx_messages_text_trgm",
            "DROP INDEX IF EXISTS idx_contacts_assignee",
            "DROP INDEX IF EXISTS idx_contacts_conversation",
        ] {
            db.execute_unprepared(statement).await?;
        }
        for column in [
            "assignee_id",
            "conversation_at",
            "awaiting_reply",
            "conversation_status",
        ] {
            db.execute_unprepared(&format!("ALTER TABLE contacts DROP COLUMN {column}"))
                .await?;
        }
        db.execute_unprepared("ALTER TABLE scheduled_messages DROP COLUMN name")
            .await?;
        db.execute_unprepared("ALTER TABLE import_rejects DROP COLUMN content")
            .await?;
        Ok(())
    }
}

/// `LIKE '%text%'` on message text as a trigram index lookup on PostgreSQL, when pg_trgm is
/// there (migration 9 created it where it may); otherwise search scans.
async fn message_text_index(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    if m.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let db = m.get_connection();
    let present = db
        .query_one(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')",
        ))
        .await?
        .and_then(|row| row.try_get_by_index::<bool>(0).ok())
        .unwrap_or(false);
    if present {
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_messages_text_trgm ON messages \
             USING gin (lower(message_text) gin_trgm_ops)",
        )
        .await?;
    }
    Ok(())
}
