//! Several business numbers: a registry of the numbers a deployment sends from (the
//! environment's `WHATSAPP_*` number is the default one), the number each contact last wrote
//! to (a reply goes out from it), and the number a campaign sends from.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum BusinessNumbers {
    Table,
    Id,
    PhoneNumberId,
    DisplayNumber,
    WabaId,
    AccessToken,
    Mps,
    IsDefault,
    State,
    StateReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Contacts {
    Table,
    LastNumber,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledMessages {
    Table,
    SenderNumber,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(BusinessNumbers::Table)
                .col(
                    ColumnDef::new(BusinessNumbers::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::PhoneNumberId)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::DisplayNumber)
                        .string_len(32)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::WabaId)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::AccessToken)
                        .string_len(1024)
                        .null(),
                )
                .col(ColumnDef::new(BusinessNumbers::Mps).integer().not_null())
                .col(
                    ColumnDef::new(BusinessNumbers::IsDefault)
                        .boolean()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::State)
                        .string_len(16)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::StateReason)
                        .string_len(512)
                        .null(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BusinessNumbers::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Contacts::Table)
                .add_column(ColumnDef::new(Contacts::LastNumber).string_len(64).null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .add_column(
                    ColumnDef::new(ScheduledMessages::SenderNumber)
                        .string_len(64)
                        .null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ScheduledMessages::Table)
                .drop_column(ScheduledMessages::SenderNumber)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Contacts::Table)
                .drop_column(Contacts::LastNumber)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(BusinessNumbers::Table).to_owned())
            .await
    }
}
