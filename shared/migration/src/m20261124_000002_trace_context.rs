//! Trace context kept with rows that outlive the request creating them: the W3C `traceparent`
//! of the span that made the row, so the relay, the webhooks and the fan-out can continue or link
//! to the trace later, in another process.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Messages {
    Table,
    TraceContext,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledMessages {
    Table,
    TraceContext,
}

#[derive(DeriveIden, Clone, Copy)]
enum Occurrences {
    Table,
    TraceContext,
}

fn add(table: impl IntoIden + 'static, column: impl IntoIden) -> TableAlterStatement {
    Table::alter()
        .table(table)
        .add_column(ColumnDef::new(column).string_len(128).null())
        .to_owned()
}

fn drop(table: impl IntoIden + 'static, column: impl IntoIden) -> TableAlterStatement {
    Table::alter().table(table).drop_column(column).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(add(Messages::Table, Messages::TraceContext))
            .await?;
        manager
            .alter_table(add(
                ScheduledMessages::Table,
                ScheduledMessages::TraceContext,
            ))
            .await?;
        manager
            .alter_table(add(Occurrences::Table, Occurrences::TraceContext))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(drop(Occurrences::Table, Occurrences::TraceContext))
            .await?;
        manager
            .alter_table(drop(
                ScheduledMessages::Table,
                ScheduledMessages::TraceContext,
            ))
            .await?;
        manager
            .alter_table(drop(Messages::Table, Messages::TraceContext))
            .await
    }
}
