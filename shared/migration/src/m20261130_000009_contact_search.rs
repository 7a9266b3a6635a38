//! Contact search (`q`: a phone or a name containing the text) as trigram indexes, so that
//! `LIKE '%text%'` is an index lookup instead of a scan of every contact (PostgreSQL's pg_trgm;
//! the embedded SQLite database scans, which its size allows).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = m.get_connection();
        db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_contacts_phone_trgm ON contacts USING gin (phone gin_trgm_ops)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_contacts_name_trgm ON contacts USING gin (lower(name) gin_trgm_ops)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_contacts_phone_trgm")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_contacts_name_trgm")
            .await?;
        Ok(())
    }
}
