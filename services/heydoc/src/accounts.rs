//! `heydoc admin ...`: account management from the machine HeyDoc runs on. This is how the
//! first admin of an exposed install is made without a web request, and how an admin locked out
//! (password lost, everyone else gone) gets back in.

use std::io::BufRead;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Subcommand;
use heydoc_domain::{validate, Role};
use heydoc_store::audit::NewEntry;

#[derive(Subcommand, Clone)]
pub enum AdminCommand {
    /// Create an admin account. The password is read from HEYDOC_ADMIN_PASSWORD, or else from
    /// the first line of standard input.
    Create {
        #[arg(long)]
        username: String,
    },
    /// Make a new setup token for the first admin's registration (the old one stops working)
    /// and print it: for an install whose token, printed once at its first start, was lost.
    SetupToken,
}

pub async fn run(command: AdminCommand, db: &heydoc_store::Db) -> anyhow::Result<()> {
    heydoc_store::migrate(db).await.context("migrating")?;
    match command {
        AdminCommand::Create { username } => create(db, &username).await,
        AdminCommand::SetupToken => {
            if heydoc_store::users::count(db).await? > 0 {
                bail!("this install has users already: an admin creates accounts (or run `heydoc admin create`)");
            }
            let token = heydoc_gateway::core::setup::renew(db).await?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn create(db: &heydoc_store::Db, username: &str) -> anyhow::Result<()> {
    validate::username(username).map_err(|e| anyhow::anyhow!("{e}"))?;
    let password = match std::env::var("HEYDOC_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("Password for {username} (one line):");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    validate::password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    if heydoc_store::users::by_name(db, username).await?.is_some() {
        bail!("username {username:?} is taken");
    }
    let hash = tokio::task::spawn_blocking(move || heydoc_gateway::auth::password::hash(&password))
        .await
        .context("hashing the password")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    let user = heydoc_store::users::insert(db, username, hash, Role::Admin.as_str(), now).await?;
    let entry = NewEntry {
        actor_id: None,
        actor: "heydoc admin create".into(),
        action: heydoc_gateway::core::audit::action::USER_CREATE,
        target: Some(user.username.clone()),
        detail: Some(serde_json::json!({"role": "admin", "from": "command line"})),
        address: None,
    };
    heydoc_store::audit::record(db, entry, now).await?;
    println!("Admin {} created (id {}).", user.username, user.id);
    Ok(())
}
