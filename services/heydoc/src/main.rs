//! `heydoc`: HeyDoc's one binary. `heydoc all` (the default) runs everything in one process on
//! the embedded SQLite database unless `DATABASE_URL` says otherwise; `heydoc gateway` runs the
//! HTTP gateway alone; `heydoc migrate` brings the database schema up to date and exits.

mod accounts;
mod admin;
mod secret;
mod wiring;

use anyhow::Context;
use clap::{Parser, Subcommand};
use heydoc_config::Settings;
use heydoc_config::WhatsAppSettings;
use heydoc_gateway::{AppState, Outbox};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

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

#[derive(Subcommand, Clone)]
enum Command {
    /// Everything in one process (the default). Migrates the embedded database on start.
    All,
    /// The HTTP gateway: API, webhooks, OpenAPI docs.
    Gateway,
    /// The sender: consumes delivery jobs from RabbitMQ and calls the WhatsApp Cloud API;
    /// also relays the outbox. Needs AMQP_URL and a shared DATABASE_URL.
    Sender,
    /// The scheduler: fires due schedules and fans them out into deliveries (the sender's relay
    /// takes them from there). Any number may run against one database.
    Scheduler,
    /// The WhatsApp sandbox alone: a local Cloud API that posts signed webhooks back.
    Sandbox,
    /// Apply database migrations and exit.
    Migrate,
    /// Generate the secrets a deployment's services share into a directory (each a file only
    /// its owner reads), keeping any already there, and exit: compose's first start. Read them
    /// with `WHATSAPP_APP_SECRET_FILE=<dir>/whatsapp-app-secret` and the like.
    Secrets {
        /// Where the files go.
        dir: std::path::PathBuf,
    },
    /// Manage accounts from the machine HeyDoc runs on (no web request needed).
    #[command(subcommand)]
    Admin(accounts::AdminCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    let command = cli.command.unwrap_or(Command::All);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The gRPC trace exporter needs the runtime it will run on.
    let telemetry = {
        let _runtime = runtime.enter();
        heydoc_telemetry::init(command.service_name(), settings.log_format)?
    };
    let result = runtime.block_on(run(command, settings));
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "stopped with an error");
    }
    telemetry.shutdown();
    result
}

impl Command {
    /// The name in traces (unless OTEL_SERVICE_NAME says otherwise).
    fn service_name(&self) -> &'static str {
        match self {
            Command::All => "heydoc",
            Command::Gateway => "heydoc-gateway",
            Command::Sender => "heydoc-sender",
            Command::Scheduler => "heydoc-scheduler",
            Command::Sandbox => "heydoc-sandbox",
            Command::Migrate | Command::Admin(_) | Command::Secrets { .. } => "heydoc-migrate",
        }
    }
}

async fn run(command: Command, mut settings: Settings) -> anyhow::Result<()> {
    if let Command::Sandbox = command {
        return run_sandbox(settings).await;
    }
    if let Command::Secrets { dir } = &command {
        return secret::generate_files(dir);
    }
    let db = heydoc_store::connect(&settings.database_url(), settings.db_max_connections)
        .await
        .context("connecting to the database")?;
    match command {
        Command::Migrate => {
            heydoc_store::migrate(&db).await.context("migrating")?;
            tracing::info!("database schema is up to date");
            Ok(())
        }
        Command::Admin(admin) => accounts::run(admin, &db).await,
        Command::Sender => run_sender(settings, db).await,
        Command::Scheduler => {
            let stop = CancellationToken::new();
            let admin = admin::spawn(
                &settings.admin_addr,
                admin::Readiness {
                    db: db.clone(),
                    bus: None,
                },
                stop.clone(),
            )
            .await?;
            let signal_stop = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                signal_stop.cancel();
            });
            heydoc_scheduler::run(wiring::scheduler(&settings, db, Default::default()), stop)
                .await
                .context("scheduler")?;
            let _ = admin.await;
            Ok(())
        }
        Command::Gateway => {
            if settings.is_embedded() {
                heydoc_store::migrate(&db).await.context("migrating")?;
            }
            secret::refuse_published(&settings)?;
            let jwt_secret = secret::jwt_secret(&settings, &db).await?;
            settings.set_jwt_secret(jwt_secret.clone());
            let mut state = AppState::new(settings.clone(), db.clone(), &jwt_secret);
            let mut bus = None;
            if settings.amqp_url().is_some() {
                let connected = wiring::bus(&settings).await;
                bus = Some(connected.clone());
                state = state.with_outbox(Outbox {
                    bus: connected,
                    route: wiring::route(&settings),
                });
            }
            // Metrics on the internal address, not beside the public API.
            let stop = CancellationToken::new();
            let admin = admin::spawn(
                &settings.admin_addr,
                admin::Readiness { db, bus },
                stop.clone(),
            )
            .await?;
            let served = heydoc_gateway::run(state, shutdown_signal()).await;
            stop.cancel();
            let _ = admin.await;
            served.context("serving HTTP")?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::All => run_all(settings, db).await,
        Command::Sandbox | Command::Secrets { .. } => Ok(()),
    }
}

/// Everything in one process: the gateway, the sender and its relay, and (without an access
/// token) the sandbox standing in for WhatsApp.
async fn run_all(mut settings: Settings, db: heydoc_store::Db) -> anyhow::Result<()> {
    heydoc_store::migrate(&db).await.context("migrating")?;
    secret::refuse_published(&settings)?;
    let jwt_secret = secret::jwt_secret(&settings, &db).await?;
    settings.set_jwt_secret(jwt_secret.clone());
    let listener = tokio::net::TcpListener::bind(&settings.http_addr)
        .await
        .with_context(|| format!("binding {}", settings.http_addr))?;
    let gateway_addr = listener.local_addr()?;

    let api = if wiring::uses_sandbox(&settings) {
        // The sandbox signs its webhooks with the app secret the gateway checks.
        let app_secret = match WhatsAppSettings::secret(&settings.whatsapp.app_secret) {
            Some(s) => SecretString::from(s.to_string()),
            None => {
                let generated = SecretString::from(heydoc_config::generate_secret());
                settings.whatsapp.app_secret = generated.clone();
                generated
            }
        };
        let webhook_url = format!("http://{gateway_addr}/webhooks/whatsapp");
        let sandbox = wiring::sandbox(&settings, webhook_url, app_secret);
        let sandbox_addr = sandbox
            .spawn("127.0.0.1:0")
            .await
            .context("starting the sandbox")?;
        // The gateway's Graph API calls (templates, read receipts, media) go there too.
        settings.whatsapp.api_url = format!("http://{sandbox_addr}");
        settings.whatsapp.access_token = SecretString::from("sandbox-token");
        if settings.whatsapp.waba_id.trim().is_empty() {
            settings.whatsapp.waba_id = heydoc_whatsapp::sandbox::SANDBOX_WABA.to_string();
        }
        tracing::warn!(
            "WHATSAPP_ACCESS_TOKEN is not set: messages go to the built-in sandbox at http://{sandbox_addr} \
             (nothing reaches real phones); inject an inbound message with POST http://{sandbox_addr}/sandbox/inbound"
        );
        wiring::cloud_api_config(
            &settings,
            &format!("http://{sandbox_addr}"),
            SecretString::from("sandbox-token"),
        )
    } else {
        wiring::cloud_api_config(
            &settings,
            &settings.whatsapp.api_url.clone(),
            settings.whatsapp.access_token.clone(),
        )
    };

    let bus = wiring::bus(&settings).await;
    let route = wiring::route(&settings);
    let stop = CancellationToken::new();
    let registry = heydoc_sender::Registry {
        db: db.clone(),
        bus: bus.clone(),
        settings: settings.sender.clone(),
        default_number: route.clone(),
        api,
    };
    let sender = tokio::spawn(heydoc_sender::run_registry(registry, stop.clone()));
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let scheduler = tokio::spawn(heydoc_scheduler::run(
        wiring::scheduler(&settings, db.clone(), wake.clone()),
        stop.clone(),
    ));
    // Health and metrics on the internal address; in this one-process mode a busy port is not
    // worth refusing to start for.
    let admin = match admin::spawn(
        &settings.admin_addr,
        admin::Readiness {
            db: db.clone(),
            bus: Some(bus.clone()),
        },
        stop.clone(),
    )
    .await
    {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "no /metrics this time");
            None
        }
    };
    let mut state = AppState::new(settings, db, &jwt_secret).with_outbox(Outbox { bus, route });
    state.scheduler_wake = Some(wake);
    tracing::info!(
        "HeyDoc is running: open http://{gateway_addr}/ in a browser (API docs at /docs)"
    );
    let served = heydoc_gateway::serve(listener, state, shutdown_signal()).await;
    stop.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    match sender.await {
        Ok(Err(e)) => tracing::error!(error = %e, "sender stopped with an error"),
        Err(e) => tracing::error!(error = %e, "sender task failed"),
        Ok(Ok(())) => {}
    }
    if let Ok(Err(e)) = scheduler.await {
        tracing::error!(error = %e, "scheduler stopped with an error");
    }
    served.context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

async fn run_sender(settings: Settings, db: heydoc_store::Db) -> anyhow::Result<()> {
    if settings.amqp_url().is_none() {
        anyhow::bail!("heydoc sender needs AMQP_URL (RabbitMQ) to hear from the gateway; run `heydoc all` for one process");
    }
    let Some(token) = WhatsAppSettings::secret(&settings.whatsapp.access_token) else {
        anyhow::bail!("heydoc sender needs WHATSAPP_ACCESS_TOKEN (any value when WHATSAPP_API_URL points at `heydoc sandbox`)");
    };
    let api = wiring::cloud_api_config(
        &settings,
        &settings.whatsapp.api_url,
        SecretString::from(token.to_string()),
    );
    let bus = wiring::bus(&settings).await;
    let stop = CancellationToken::new();
    let admin = admin::spawn(
        &settings.admin_addr,
        admin::Readiness {
            db: db.clone(),
            bus: Some(bus.clone()),
        },
        stop.clone(),
    )
    .await?;
    let registry = heydoc_sender::Registry {
        db,
        bus,
        settings: settings.sender.clone(),
        default_number: wiring::route(&settings),
        api,
    };
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal_stop.cancel();
    });
    heydoc_sender::run_registry(registry, stop)
        .await
        .context("sender")?;
    let _ = admin.await;
    Ok(())
}

async fn run_sandbox(settings: Settings) -> anyhow::Result<()> {
    let Some(secret) = WhatsAppSettings::secret(&settings.whatsapp.app_secret) else {
        anyhow::bail!("heydoc sandbox needs WHATSAPP_APP_SECRET, the same one the gateway checks webhooks with");
    };
    let sandbox = wiring::sandbox(
        &settings,
        settings.sandbox.webhook_url.clone(),
        SecretString::from(secret.to_string()),
    );
    let addr = sandbox
        .spawn(&settings.sandbox.addr)
        .await
        .context("starting the sandbox")?;
    tracing::info!(
        "sandbox listening on http://{addr}; webhooks go to {}",
        settings.sandbox.webhook_url
    );
    shutdown_signal().await;
    Ok(())
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
