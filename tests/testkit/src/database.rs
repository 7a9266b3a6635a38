//! A database per test: a fresh PostgreSQL database (dropped afterwards) or SQLite file in a
//! temporary directory, migrated.

use std::path::PathBuf;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{postgres_admin_url, Backend};

/// A database that exists for one test and is dropped with it.
pub struct TestDatabase {
    pub url: String,
    pub conn: DatabaseConnection,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { dir: PathBuf },
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (url, cleanup) = match backend {
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("heydoc_test_{id}");
                let admin = heydoc_store::connect(&admin_url, 1)
                    .await
                    .with_context(|| {
                        format!("PostgreSQL at {admin_url} (set TEST_DATABASE_URL)")
                    })?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                admin.close().await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_url);
                (
                    format!("{base}/{name}"),
                    Cleanup::Postgres { admin_url, name },
                )
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("heydoc-test-{id}"));
                std::fs::create_dir_all(&dir)?;
                (
                    format!("sqlite://{}?mode=rwc", dir.join("heydoc.db").display()),
                    Cleanup::Sqlite { dir },
                )
            }
        };
        let conn = heydoc_store::connect(&url, 8).await?;
        heydoc_store::migrate(&conn).await?;
        Ok(Self { url, conn, cleanup })
    }
}

impl TestDatabase {
    /// A campaign message queued for `contact_id` (as a fan-out would write it), for tests of
    /// what happens to queued deliveries.
    pub async fn queue_campaign_message(&self, contact_id: i32, to: &str, text: &str) {
        use heydoc_store::entity::message;
        use sea_orm::{ActiveValue::Set, EntityTrait};
        let now = chrono::Utc::now();
        message::Entity::insert(message::ActiveModel {
            origin: Set("occurrence".into()),
            ..heydoc_store::chat::queued_text(contact_id, "sandbox", to, text, "occurrence", now)
        })
        .exec(&self.conn)
        .await
        .expect("queue a campaign message");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime: drop the database from a thread of its own.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        if let Ok(admin) = heydoc_store::connect(&admin_url, 1).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                            let _ = admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}
