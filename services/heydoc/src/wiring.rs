//! Building the parts from the settings: the job bus, the Cloud API client, the sandbox.

use std::sync::Arc;
use std::time::Duration;

use heydoc_config::{Settings, WhatsAppSettings};
use heydoc_queue::memory::MemoryBus;
use heydoc_queue::rabbit::{RabbitBus, RabbitConfig};
use heydoc_queue::JobBus;
use heydoc_whatsapp::sandbox::{Sandbox, SandboxConfig, SandboxKnobs};
use heydoc_whatsapp::CloudApiConfig;
use secrecy::SecretString;

/// RabbitMQ when `AMQP_URL` is set, the in-process bus otherwise.
pub async fn bus(settings: &Settings) -> Arc<dyn JobBus> {
    match settings.amqp_url() {
        Some(url) => {
            RabbitBus::connect(RabbitConfig {
                url: url.to_string(),
                prefix: settings.sender.amqp_prefix.clone(),
                delivery_limit: settings.sender.delivery_limit,
                queue_expiry_secs: settings.sender.amqp_queue_expiry_secs,
            })
            .await
        }
        None => Arc::new(MemoryBus::new(settings.sender.delivery_limit)),
    }
}

/// The bus route and the paced number: the business phone number id (`sandbox` without one).
pub fn route(settings: &Settings) -> String {
    let id = settings.whatsapp.phone_number_id.trim();
    if id.is_empty() {
        "sandbox".into()
    } else {
        id.to_string()
    }
}

/// How the senders reach the Cloud API (the sandbox's address when it stands in for Meta):
/// the default number's id and the environment's token; registered numbers replace both.
pub fn cloud_api_config(
    settings: &Settings,
    base_url: &str,
    token: SecretString,
) -> CloudApiConfig {
    CloudApiConfig {
        base_url: base_url.to_string(),
        version: settings.whatsapp.api_version.clone(),
        phone_number_id: route(settings),
        access_token: token,
        timeout: Duration::from_secs(settings.sender.request_timeout_secs.max(1)),
        connect_timeout: Duration::from_secs(5),
    }
}

/// True when no access token is configured: sends go to the built-in sandbox.
pub fn uses_sandbox(settings: &Settings) -> bool {
    WhatsAppSettings::secret(&settings.whatsapp.access_token).is_none()
}

/// A sandbox that signs its webhooks with `app_secret` and posts them to `webhook_url`.
pub fn sandbox(settings: &Settings, webhook_url: String, app_secret: SecretString) -> Sandbox {
    Sandbox::new(SandboxConfig {
        webhook_url: Some(webhook_url),
        app_secret,
        display_phone_number: route(settings),
        knobs: SandboxKnobs {
            enforce_templates: true,
            ..SandboxKnobs::default()
        },
    })
}

/// The scheduler's context; `wake` lets an in-process gateway wake it early.
pub fn scheduler(
    settings: &Settings,
    db: heydoc_store::Db,
    wake: Arc<tokio::sync::Notify>,
) -> heydoc_scheduler::SchedulerContext {
    heydoc_scheduler::SchedulerContext {
        db,
        settings: settings.scheduler.clone(),
        business_number: route(settings),
        wake,
    }
}
