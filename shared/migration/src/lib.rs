//! HeyDoc's schema as sea-orm migrations. One set runs on PostgreSQL and on SQLite; where the
//! two differ (partial indexes), the SQL used is valid on both.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial;
mod m20261124_000002_trace_context;
mod m20261124_000003_api_keys;
mod m20261124_000004_imports;
mod m20261124_000005_outbound_events;
mod m20261130_000006_flow_control;
mod m20261130_000007_business_numbers;
mod m20261130_000008_staff;
mod m20261130_000009_contact_search;
mod m20261130_000010_whatsapp_account;
mod m20261130_000011_team_inbox;
mod m20261130_000012_media_removals;
mod m20261204_000013_real_operations;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial::Migration),
            Box::new(m20261124_000002_trace_context::Migration),
            Box::new(m20261124_000003_api_keys::Migration),
            Box::new(m20261124_000004_imports::Migration),
            Box::new(m20261124_000005_outbound_events::Migration),
            Box::new(m20261130_000006_flow_control::Migration),
            Box::new(m20261130_000007_business_numbers::Migration),
            Box::new(m20261130_000008_staff::Migration),
            Box::new(m20261130_000009_contact_search::Migration),
            Box::new(m20261130_000010_whatsapp_account::Migration),
            Box::new(m20261130_000011_team_inbox::Migration),
            Box::new(m20261130_000012_media_removals::Migration),
            Box::new(m20261204_000013_real_operations::Migration),
        ]
    }
}
