//! The WhatsApp account as Meta runs it: a catalog of each business account's templates (what
//! a send or a campaign may name), the campaign a paused template paused, what Meta charges
//! for each message (from its status webhooks' `pricing`), each number's messaging limit and
//! quality, inbound media kept after Meta's short-lived link dies, and contacts known by a
//! business-scoped user id (a username, no phone number).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_initial::big_pk_auto;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Templates {
    Table,
    Id,
    WabaId,
    MetaId,
    Name,
    Language,
    Category,
    Status,
    Quality,
    Reason,
    Components,
    HeaderParams,
    BodyParams,
    SyncedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TemplateCatalogs {
    Table,
    WabaId,
    SyncedAt,
    TemplateCount,
    LastError,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledMessages {
    Table,
    PausedTemplate,
    DailyLimit,
    Media,
}

#[derive(DeriveIden, Clone, Copy)]
enum Messages {
    Table,
    PricingCategory,
    PricingType,
    Billable,
}

/// `messages.id`, for the media rows' foreign key.
#[derive(DeriveIden, Clone, Copy)]
enum MessagesId {
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum BusinessNumbers {
    Table,
    MessagingLimit,
    Quality,
}

#[derive(DeriveIden, Clone, Copy)]
enum Uploads {
    Table,
    Id,
    PhoneNumberId,
    MetaMediaId,
    Kind,
    MimeType,
    Filename,
    Size,
    Sha256,
    StorageKey,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Contacts {
    Table,
    UserId,
    Username,
}

#[derive(DeriveIden, Clone, Copy)]
enum MediaFiles {
    Table,
    Id,
    MessageId,
    MetaMediaId,
    MimeType,
    Sha256,
    Size,
    Filename,
    StorageKey,
    State,
    Error,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Templates::Table)
                .col(pk_auto(Templates::Id))
                .col(string_len(Templates::WabaId, 64))
                .col(string_len_null(Templates::MetaId, 64))
                .col(string_len(Templates::Name, 512))
                .col(string_len(Templates::Language, 16))
                .col(string_len(Templates::Category, 32))
                .col(string_len(Templates::Status, 32))
                .col(string_len_null(Templates::Quality, 16))
                .col(string_len_null(Templates::Reason, 512))
                .col(json(Templates::Components))
                .col(integer(Templates::HeaderParams))
                .col(integer(Templates::BodyParams))
                .col(timestamp_with_time_zone(Templates::SyncedAt))
                .col(timestamp_with_time_zone(Templates::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_templates_waba_name_language")
                .table(Templates::Table)
                .col(Templates::WabaId)
                .col(Templates::Name)
                .col(Templates::Language)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TemplateCatalogs::Table)
                .col(string_len(TemplateCatalogs::WabaId, 64).primary_key())
                .col(timestamp_with_time_zone_null(TemplateCatalogs::SyncedAt))
                .col(integer(TemplateCatalogs::TemplateCount))
                .col(string_len_null(TemplateCatalogs::LastError, 512))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .add_column(string_len_null(ScheduledMessages::PausedTemplate, 600))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .add_column(integer_null(ScheduledMessages::DailyLimit))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .add_column(json_null(ScheduledMessages::Media))
                .to_owned(),
        )
        .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [Messages::PricingCategory, Messages::PricingType] {
            m.alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(string_len_null(column, 40))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .add_column(boolean_null(Messages::Billable))
                .to_owned(),
        )
        .await?;
        for (column, len) in [
            (BusinessNumbers::MessagingLimit, 32),
            (BusinessNumbers::Quality, 16),
        ] {
            m.alter_table(
                Table::alter()
                    .table(BusinessNumbers::Table)
                    .add_column(string_len_null(column, len))
                    .to_owned(),
            )
            .await?;
        }
        // A contact known only by a business-scoped user id has it as its phone: the columns
        // that hold phones grow from 20/32 to 160 (SQLite does not enforce lengths).
        if m.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            m.get_connection()
                .execute_unprepared(
                    "ALTER TABLE contacts ALTER COLUMN phone TYPE varchar(160);
                     ALTER TABLE messages ALTER COLUMN sender_phone TYPE varchar(160);
                     ALTER TABLE messages ALTER COLUMN receiver_phone TYPE varchar(160);",
                )
                .await?;
        }
        for (column, len) in [(Contacts::UserId, 160), (Contacts::Username, 64)] {
            m.alter_table(
                Table::alter()
                    .table(Contacts::Table)
                    .add_column(string_len_null(column, len))
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("ux_contacts_user_id")
                .table(Contacts::Table)
                .col(Contacts::UserId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MediaFiles::Table)
                .col(big_pk_auto(MediaFiles::Id))
                .col(big_integer(MediaFiles::MessageId))
                .col(string_len(MediaFiles::MetaMediaId, 128))
                .col(string_len(MediaFiles::MimeType, 128))
                .col(string_len_null(MediaFiles::Sha256, 128))
                .col(big_integer_null(MediaFiles::Size))
                .col(string_len_null(MediaFiles::Filename, 256))
                .col(string_len_null(MediaFiles::StorageKey, 256))
                .col(string_len(MediaFiles::State, 16))
                .col(string_len_null(MediaFiles::Error, 512))
                .col(timestamp_with_time_zone(MediaFiles::CreatedAt))
                .col(timestamp_with_time_zone(MediaFiles::UpdatedAt))
                // A message's file row goes with it (a deleted contact takes its messages).
                .foreign_key(
                    ForeignKey::create()
                        .from(MediaFiles::Table, MediaFiles::MessageId)
                        .to(Messages::Table, MessagesId::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Uploads::Table)
                .col(big_pk_auto(Uploads::Id))
                .col(string_len(Uploads::PhoneNumberId, 64))
                .col(string_len(Uploads::MetaMediaId, 128))
                .col(string_len(Uploads::Kind, 16))
                .col(string_len(Uploads::MimeType, 128))
                .col(string_len_null(Uploads::Filename, 256))
                .col(big_integer(Uploads::Size))
                .col(string_len(Uploads::Sha256, 64))
                .col(string_len(Uploads::StorageKey, 256))
                .col(integer_null(Uploads::CreatedBy))
                .col(timestamp_with_time_zone(Uploads::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_media_files_message")
                .table(MediaFiles::Table)
                .col(MediaFiles::MessageId)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Uploads::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(MediaFiles::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(TemplateCatalogs::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Templates::Table).to_owned())
            .await
    }
}
