//! Campaigns under real operations.
//! - `scheduled_messages.paused_at`: when the campaign was paused (by a person, a template or
//!   HeyDoc), so a resume moves its waiting deliveries on by the time it was held and each keeps
//!   its own place (a day's share of a campaign spread over days stays a day's share).
//! - `scheduled_messages.local_anchor`: the wall-clock time a schedule was written in
//!   (`2026-03-08T02:30:00` in its zone) when it was given without an offset, so a first run
//!   that fell in a daylight-saving gap does not move the later runs.
//! - `business_numbers.held_until`: the number's circuit, kept in the database, so that an error
//!   Meta reports by webhook stops the number in every sender and a restarted sender knows it;
//!   `verified_name` and `throughput` as Meta reports the number.
//! - `install_secrets`: what one install shares across its replicas and keeps across restarts
//!   without anyone configuring it: the session-signing secret when `JWT_SECRET` is not set
//!   (generated once), and the first admin's setup token (its SHA-256 only, generated at the
//!   first start and shown once).
//! - `messages.revisions`: what happened to a message after it was sent (reactions, edits with
//!   the earlier texts, a deletion), kept apart from the payload the sender reads.
//! - Two partial indexes for the relay, per number: the runs with queued deliveries, and the
//!   runs with retries with each run's soonest first, so a refill finds the runs that can send
//!   now with one index probe per run and never walks a run's rows.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledMessages {
    Table,
    PausedAt,
    LocalAnchor,
}

#[derive(DeriveIden, Clone, Copy)]
enum Messages {
    Table,
    Revisions,
}

#[derive(DeriveIden, Clone, Copy)]
enum InstallSecrets {
    Table,
    Name,
    Value,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum BusinessNumbers {
    Table,
    HeldUntil,
    VerifiedName,
    Throughput,
}

const INDEXES: [(&str, &str); 2] = [
    (
        "idx_messages_queued_runs",
        "CREATE INDEX IF NOT EXISTS idx_messages_queued_runs ON messages (sender_phone, occurrence_id) \
         WHERE status = 'queued' AND enqueued_at IS NULL AND occurrence_id IS NOT NULL",
    ),
    (
        "idx_messages_retrying_runs",
        "CREATE INDEX IF NOT EXISTS idx_messages_retrying_runs ON messages (sender_phone, occurrence_id, next_attempt_at) \
         WHERE status = 'retrying' AND enqueued_at IS NULL AND occurrence_id IS NOT NULL",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        for column in [
            timestamp_with_time_zone_null(ScheduledMessages::PausedAt),
            string_len_null(ScheduledMessages::LocalAnchor, 32),
        ] {
            m.alter_table(
                Table::alter()
                    .table(ScheduledMessages::Table)
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
        }
        for column in [
            timestamp_with_time_zone_null(BusinessNumbers::HeldUntil),
            string_len_null(BusinessNumbers::VerifiedName, 256),
            string_len_null(BusinessNumbers::Throughput, 32),
        ] {
            m.alter_table(
                Table::alter()
                    .table(BusinessNumbers::Table)
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .add_column(json_null(Messages::Revisions))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(InstallSecrets::Table)
                .if_not_exists()
                .col(string_len(InstallSecrets::Name, 64).primary_key())
                .col(string_len(InstallSecrets::Value, 256))
                .col(timestamp_with_time_zone(InstallSecrets::CreatedAt))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        for (_, create) in INDEXES {
            db.execute_unprepared(create).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(InstallSecrets::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Messages::Table)
                .drop_column(Messages::Revisions)
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        for column in [ScheduledMessages::PausedAt, ScheduledMessages::LocalAnchor] {
            m.alter_table(
                Table::alter()
                    .table(ScheduledMessages::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        for column in [
            BusinessNumbers::HeldUntil,
            BusinessNumbers::VerifiedName,
            BusinessNumbers::Throughput,
        ] {
            m.alter_table(
                Table::alter()
                    .table(BusinessNumbers::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
