//! Outbound events: endpoints that receive signed JSON events, and one delivery row per event
//! and endpoint, retried with back-off like any send (the row is the retry).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261124_000001_initial::big_pk_auto;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum EventEndpoints {
    Table,
    Id,
    Url,
    Secret,
    Events,
    Enabled,
    DisabledReason,
    FailingSince,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum EventDeliveries {
    Table,
    Id,
    EndpointId,
    EventType,
    OrderingKey,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
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
                .table(EventEndpoints::Table)
                .col(pk_auto(EventEndpoints::Id))
                .col(string_len(EventEndpoints::Url, 2048))
                .col(string_len(EventEndpoints::Secret, 128))
                .col(json(EventEndpoints::Events))
                .col(boolean(EventEndpoints::Enabled).default(true))
                .col(text_null(EventEndpoints::DisabledReason))
                .col(timestamp_with_time_zone_null(EventEndpoints::FailingSince))
                .col(integer(EventEndpoints::CreatedBy))
                .col(timestamp_with_time_zone(EventEndpoints::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(EventEndpoints::Table, EventEndpoints::CreatedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(EventDeliveries::Table)
                .col(big_pk_auto(EventDeliveries::Id))
                .col(integer(EventDeliveries::EndpointId))
                .col(string_len(EventDeliveries::EventType, 64))
                .col(string_len(EventDeliveries::OrderingKey, 64))
                .col(json(EventDeliveries::Payload))
                .col(string_len(EventDeliveries::Status, 16))
                .col(integer(EventDeliveries::Attempts).default(0))
                .col(timestamp_with_time_zone(EventDeliveries::NextAttemptAt))
                .col(integer_null(EventDeliveries::LastStatus))
                .col(text_null(EventDeliveries::LastError))
                .col(timestamp_with_time_zone(EventDeliveries::CreatedAt))
                .col(timestamp_with_time_zone_null(EventDeliveries::DeliveredAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(EventDeliveries::Table, EventDeliveries::EndpointId)
                        .to(EventEndpoints::Table, EventEndpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The dispatcher's scan, and "is an older event of this key still pending?".
        m.create_index(
            Index::create()
                .name("idx_event_deliveries_due")
                .table(EventDeliveries::Table)
                .col(EventDeliveries::Status)
                .col(EventDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_event_deliveries_key")
                .table(EventDeliveries::Table)
                .col(EventDeliveries::EndpointId)
                .col(EventDeliveries::OrderingKey)
                .col(EventDeliveries::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(EventDeliveries::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(EventEndpoints::Table).to_owned())
            .await
    }
}
