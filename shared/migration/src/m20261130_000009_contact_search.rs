//! Contact search (`q`: a phone or a name containing the text) as trigram indexes, so that
//! `LIKE '%text%'` is an index lookup instead of a scan of every contact (PostgreSQL's pg_trgm;
//! the embedded SQLite database scans, which its size allows). Where the database user may
//! not create the extension and nobody has, the indexes are left out and search scans; an
//! administrator can then create the extension and the two indexes below by hand.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = m.get_connection();
        // CREATE EXTENSION failing would abort the migration's transaction: ask first.
        let allowed = db
            .query_one(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') \
                 OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') \
                     AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                          OR (current_setting('server_version_num')::int >= 130000 \
                              AND has_database_privilege(current_database(), 'CREATE'))))",
            ))
            .await?
            .and_then(|row| row.try_get_by_index::<bool>(0).ok())
            .unwrap_or(false);
        if !allowed {
            return Ok(());
        }
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
