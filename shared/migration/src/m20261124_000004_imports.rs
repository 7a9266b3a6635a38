//! Contact imports: one row per uploaded CSV with its progress and counts, and the rows it
//! rejected (line and reason; the first 10,000 are kept).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_initial::big_pk_auto;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Imports {
    Table,
    Id,
    Status,
    CreatedBy,
    BytesTotal,
    BytesDone,
    Lines,
    Created,
    Updated,
    Unchanged,
    Rejected,
    Error,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ImportRejects {
    Table,
    Id,
    ImportId,
    Line,
    Reason,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Imports::Table)
                .col(pk_auto(Imports::Id))
                .col(string_len(Imports::Status, 16))
                .col(integer(Imports::CreatedBy))
                .col(big_integer(Imports::BytesTotal))
                .col(big_integer(Imports::BytesDone).default(0))
                .col(big_integer(Imports::Lines).default(0))
                .col(big_integer(Imports::Created).default(0))
                .col(big_integer(Imports::Updated).default(0))
                .col(big_integer(Imports::Unchanged).default(0))
                .col(big_integer(Imports::Rejected).default(0))
                .col(text_null(Imports::Error))
                .col(timestamp_with_time_zone(Imports::CreatedAt))
                .col(timestamp_with_time_zone(Imports::UpdatedAt))
                .col(timestamp_with_time_zone_null(Imports::FinishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Imports::Table, Imports::CreatedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ImportRejects::Table)
                .col(big_pk_auto(ImportRejects::Id))
                .col(integer(ImportRejects::ImportId))
                .col(big_integer(ImportRejects::Line))
                .col(string_len(ImportRejects::Reason, 512))
                .foreign_key(
                    ForeignKey::create()
                        .from(ImportRejects::Table, ImportRejects::ImportId)
                        .to(Imports::Table, Imports::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_import_rejects_import_line")
                .table(ImportRejects::Table)
                .col(ImportRejects::ImportId)
                .col(ImportRejects::Line)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ImportRejects::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Imports::Table).to_owned())
            .await
    }
}
