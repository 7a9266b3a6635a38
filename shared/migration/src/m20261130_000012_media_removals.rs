//! Files whose contact was deleted leave the media store too. The deletion lists their storage
//! keys here, in its own transaction (the rows that named them cascade away with the contact);
//! every gateway's upkeep then removes each object and, once it is gone, its row. A list in the
//! database, because the database is the truth: a gateway stopped between the deletion and the
//! removal leaves the list for the next one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_initial::big_pk_auto;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum MediaRemovals {
    Table,
    Id,
    StorageKey,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MediaRemovals::Table)
                .if_not_exists()
                .col(big_pk_auto(MediaRemovals::Id))
                .col(string_len(MediaRemovals::StorageKey, 256))
                .col(timestamp_with_time_zone(MediaRemovals::CreatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(MediaRemovals::Table).to_owned())
            .await
    }
}
