//! Staff accounts people can leave: users can be disabled or deleted (their rows stay, so what
//! they did stays attributed), `user` becomes `manager` among three roles, sessions remember
//! where they were opened, and an audit log records security-relevant and bulk actions.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Role,
    DisabledAt,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Address,
    UserAgent,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorId,
    Actor,
    Action,
    Target,
    Detail,
    Address,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [Users::DisabledAt, Users::DeletedAt] {
            m.alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(column).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        }
        m.exec_stmt(
            Query::update()
                .table(Users::Table)
                .value(Users::Role, "manager")
                .and_where(Expr::col(Users::Role).eq("user"))
                .to_owned(),
        )
        .await?;
        for (column, len) in [(Sessions::Address, 64), (Sessions::UserAgent, 200)] {
            m.alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(column).string_len(len).null())
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(
                    ColumnDef::new(AuditLog::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AuditLog::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new(AuditLog::ActorId).integer().null())
                .col(ColumnDef::new(AuditLog::Actor).string_len(64).not_null())
                .col(ColumnDef::new(AuditLog::Action).string_len(64).not_null())
                .col(ColumnDef::new(AuditLog::Target).string_len(200).null())
                .col(ColumnDef::new(AuditLog::Detail).text().null())
                .col(ColumnDef::new(AuditLog::Address).string_len(64).null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_audit_log_actor")
                .table(AuditLog::Table)
                .col(AuditLog::ActorId)
                .col(AuditLog::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}
