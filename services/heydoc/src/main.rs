//! `heydoc`: HeyDoc's one binary. `heydoc all` (the default) runs everything in one process on
//! the embedded SQLite database unless `DATABASE_URL` says otherwise; `heydoc gateway` runs the
//! HTTP gateway alone; `heydoc migrate` brings the database schema up to date and exits.

mod secret;

use anyhow::Context;
use clap::{Parser, Subcommand};
use heydoc_config::{LogFormat, Settings};
use heydoc_gateway::AppState;
use tracing_subscriber::EnvFilter;

/// mimalloc: measured faster than glibc's malloc for the gateway's many small allocations
/// (see `make bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "heydoc",
    version,
    about = "WhatsApp Business messaging backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone, Copy)]
enum Command {
    /// Everything in one process (the default). Migrates the embedded database on start.
    All,
    /// The HTTP gateway: API, webhooks, OpenAPI docs.
    Gateway,
    /// Apply database migrations and exit.
    Migrate,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    init_logging(settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command.unwrap_or(Command::All), settings))
}

async fn run(command: Command, mut settings: Settings) -> anyhow::Result<()> {
    let db = heydoc_store::connect(&settings.database_url(), settings.db_max_connections)
        .await
        .context("connecting to the database")?;
    match command {
        Command::Migrate => {
            heydoc_store::migrate(&db).await.context("migrating")?;
            tracing::info!("database schema is up to date");
            Ok(())
        }
        Command::All | Command::Gateway => {
            if settings.is_embedded() || matches!(command, Command::All) {
                heydoc_store::migrate(&db).await.context("migrating")?;
            }
            let jwt_secret = secret::jwt_secret(&settings)?;
            settings.set_jwt_secret(jwt_secret.clone());
            let state = AppState::new(settings, db, &jwt_secret);
            heydoc_gateway::run(state, shutdown_signal())
                .await
                .context("serving HTTP")?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
