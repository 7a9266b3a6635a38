//! The first schema: users and sessions, contacts and tags, the message log (which doubles as
//! the delivery outbox), scheduled messages and their occurrences.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    Role,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Contacts {
    Table,
    Id,
    Phone,
    Name,
    IsGroup,
    Attributes,
    LastMessage,
    LastMessageAt,
    LastActivityAt,
    MessageCount,
    UnreadCount,
    LastInboundAt,
    OptedOutAt,
    SuppressedReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tags {
    Table,
    Id,
    Name,
    Color,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ContactTags {
    Table,
    ContactId,
    TagId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Messages {
    Table,
    Id,
    ContactId,
    MessageId,
    Direction,
    SenderPhone,
    ReceiverPhone,
    MessageType,
    MessageText,
    Payload,
    Timestamp,
    IsRead,
    Status,
    Attempts,
    NextAttemptAt,
    LastErrorCode,
    LastErrorReason,
    EnqueuedAt,
    Origin,
    OccurrenceId,
    IdempotencyKey,
    RequestHash,
    CreatedBy,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledMessages {
    Table,
    Id,
    Message,
    Template,
    Recipients,
    TagIds,
    ScheduledTime,
    Recurrence,
    Timezone,
    EndTime,
    MaxOccurrences,
    OccurrenceCount,
    Status,
    NextRunAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Occurrences {
    Table,
    Id,
    ScheduleId,
    FireAt,
    State,
    Cursor,
    Planned,
    CreatedAt,
    UpdatedAt,
}

/// A 64-bit auto-incrementing primary key (SQLite makes it its INTEGER rowid).
pub(crate) fn big_pk_auto(col: impl IntoIden) -> ColumnDef {
    big_integer(col).auto_increment().primary_key().take()
}

fn ts(col: impl IntoIden) -> ColumnDef {
    timestamp_with_time_zone(col)
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    timestamp_with_time_zone_null(col)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(pk_auto(Users::Id))
                .col(string_len_uniq(Users::Username, 64))
                .col(string(Users::PasswordHash))
                .col(string_len(Users::Role, 16))
                .col(ts(Users::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(string_len(Sessions::Id, 36).primary_key())
                .col(integer(Sessions::UserId))
                .col(ts(Sessions::CreatedAt))
                .col(ts(Sessions::ExpiresAt))
                .col(ts_null(Sessions::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(m, "idx_sessions_user", Sessions::Table, &[Sessions::UserId]).await?;

        m.create_table(
            Table::create()
                .table(Contacts::Table)
                .col(pk_auto(Contacts::Id))
                .col(string_len_uniq(Contacts::Phone, 20))
                .col(string_len(Contacts::Name, 256).default(""))
                .col(boolean(Contacts::IsGroup).default(false))
                .col(json(Contacts::Attributes))
                .col(text_null(Contacts::LastMessage))
                .col(ts_null(Contacts::LastMessageAt))
                .col(ts(Contacts::LastActivityAt))
                .col(integer(Contacts::MessageCount).default(0))
                .col(integer(Contacts::UnreadCount).default(0))
                .col(ts_null(Contacts::LastInboundAt))
                .col(ts_null(Contacts::OptedOutAt))
                .col(string_len_null(Contacts::SuppressedReason, 256))
                .col(ts(Contacts::CreatedAt))
                .col(ts(Contacts::UpdatedAt))
                .to_owned(),
        )
        .await?;
        // The inbox: newest activity first, paged by (last_activity_at, id).
        index(
            m,
            "idx_contacts_activity",
            Contacts::Table,
            &[Contacts::LastActivityAt, Contacts::Id],
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Tags::Table)
                .col(pk_auto(Tags::Id))
                .col(string_len_uniq(Tags::Name, 64))
                .col(string_len(Tags::Color, 7))
                .col(ts(Tags::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ContactTags::Table)
                .col(integer(ContactTags::ContactId))
                .col(integer(ContactTags::TagId))
                .primary_key(
                    Index::create()
                        .col(ContactTags::ContactId)
                        .col(ContactTags::TagId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ContactTags::Table, ContactTags::ContactId)
                        .to(Contacts::Table, Contacts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ContactTags::Table, ContactTags::TagId)
                        .to(Tags::Table, Tags::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Audiences by tag, and the inbox's tag filter.
        index(
            m,
            "idx_contact_tags_tag",
            ContactTags::Table,
            &[ContactTags::TagId, ContactTags::ContactId],
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ScheduledMessages::Table)
                .col(pk_auto(ScheduledMessages::Id))
                .col(text_null(ScheduledMessages::Message))
                .col(json_null(ScheduledMessages::Template))
                .col(json(ScheduledMessages::Recipients))
                .col(json(ScheduledMessages::TagIds))
                .col(ts(ScheduledMessages::ScheduledTime))
                .col(string_len_null(ScheduledMessages::Recurrence, 128))
                .col(string_len(ScheduledMessages::Timezone, 64))
                .col(ts_null(ScheduledMessages::EndTime))
                .col(integer_null(ScheduledMessages::MaxOccurrences))
                .col(integer(ScheduledMessages::OccurrenceCount).default(0))
                .col(string_len(ScheduledMessages::Status, 16))
                .col(ts_null(ScheduledMessages::NextRunAt))
                .col(string_len(ScheduledMessages::CreatedBy, 64))
                .col(ts(ScheduledMessages::CreatedAt))
                .col(ts(ScheduledMessages::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_scheduled_status",
            ScheduledMessages::Table,
            &[ScheduledMessages::Status, ScheduledMessages::Id],
        )
        .await?;
        // The scheduler's due scan.
        raw(m, "CREATE INDEX idx_scheduled_due ON scheduled_messages (next_run_at) WHERE status = 'pending'").await?;

        m.create_table(
            Table::create()
                .table(Occurrences::Table)
                .col(big_pk_auto(Occurrences::Id))
                .col(integer(Occurrences::ScheduleId))
                .col(ts(Occurrences::FireAt))
                .col(string_len(Occurrences::State, 16))
                .col(big_integer_null(Occurrences::Cursor))
                .col(integer(Occurrences::Planned).default(0))
                .col(ts(Occurrences::CreatedAt))
                .col(ts(Occurrences::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Occurrences::Table, Occurrences::ScheduleId)
                        .to(ScheduledMessages::Table, ScheduledMessages::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Invariant 3: one occurrence per schedule and fire time.
        unique(
            m,
            "uq_occurrences_schedule_fire",
            Occurrences::Table,
            &[Occurrences::ScheduleId, Occurrences::FireAt],
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Messages::Table)
                .col(big_pk_auto(Messages::Id))
                .col(integer(Messages::ContactId))
                .col(string_len_null(Messages::MessageId, 128))
                .col(string_len(Messages::Direction, 8))
                .col(string_len(Messages::SenderPhone, 32))
                .col(string_len(Messages::ReceiverPhone, 32))
                .col(string_len(Messages::MessageType, 32))
                .col(text(Messages::MessageText))
                .col(json_null(Messages::Payload))
                .col(ts(Messages::Timestamp))
                .col(boolean(Messages::IsRead).default(false))
                .col(string_len(Messages::Status, 16))
                .col(integer(Messages::Attempts).default(0))
                .col(ts_null(Messages::NextAttemptAt))
                .col(integer_null(Messages::LastErrorCode))
                .col(text_null(Messages::LastErrorReason))
                .col(ts_null(Messages::EnqueuedAt))
                .col(string_len(Messages::Origin, 16))
                .col(big_integer_null(Messages::OccurrenceId))
                .col(string_len_null(Messages::IdempotencyKey, 255))
                .col(string_len_null(Messages::RequestHash, 64))
                .col(integer_null(Messages::CreatedBy))
                .col(ts(Messages::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Messages::Table, Messages::ContactId)
                        .to(Contacts::Table, Contacts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Messages::Table, Messages::OccurrenceId)
                        .to(Occurrences::Table, Occurrences::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        // The chat, newest first.
        index(
            m,
            "idx_messages_contact",
            Messages::Table,
            &[Messages::ContactId, Messages::Id],
        )
        .await?;
        // Status webhooks find their message by wamid; replays of inbound messages hit it.
        unique(
            m,
            "uq_messages_wamid",
            Messages::Table,
            &[Messages::MessageId],
        )
        .await?;
        // Invariant 3: one delivery per occurrence and recipient, one per Idempotency-Key.
        unique(
            m,
            "uq_messages_occurrence_contact",
            Messages::Table,
            &[Messages::OccurrenceId, Messages::ContactId],
        )
        .await?;
        unique(
            m,
            "uq_messages_idempotency",
            Messages::Table,
            &[Messages::IdempotencyKey],
        )
        .await?;
        // The outbox relay: rows not yet confirmed on the bus, and retries coming due.
        raw(
            m,
            "CREATE INDEX idx_messages_unrelayed ON messages (id) \
             WHERE enqueued_at IS NULL AND status IN ('queued', 'retrying')",
        )
        .await?;
        raw(
            m,
            "CREATE INDEX idx_messages_retry_due ON messages (next_attempt_at) WHERE status = 'retrying'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Messages::Table.into_iden(),
            Occurrences::Table.into_iden(),
            ScheduledMessages::Table.into_iden(),
            ContactTags::Table.into_iden(),
            Tags::Table.into_iden(),
            Contacts::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

async fn index<T: IntoIden + Copy + 'static>(
    m: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[T],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(*col);
    }
    m.create_index(stmt.to_owned()).await
}

async fn unique<T: IntoIden + Copy + 'static>(
    m: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[T],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table).unique();
    for col in cols {
        stmt.col(*col);
    }
    m.create_index(stmt.to_owned()).await
}

async fn raw(m: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    m.get_connection().execute_unprepared(sql).await.map(|_| ())
}
