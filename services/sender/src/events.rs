//! The outbound-event dispatcher: claims due event deliveries (oldest first, one at a time per
//! contact or schedule), POSTs each to its endpoint with an HMAC-SHA256 signature over a
//! timestamp and the body, and records the answer on the row: a 2xx delivers it, anything else
//! schedules a retry with jittered back-off. Runs beside the send loop, in every sender.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use heydoc_config::SenderSettings;
use heydoc_store::events::{claim_due, record, Attempt, Due};
use heydoc_store::Db;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// How often the dispatcher looks for due events.
const POLL: Duration = Duration::from_millis(250);
/// Events claimed per round, and in flight at once.
const BATCH: u64 = 32;
const IN_FLIGHT: usize = 8;
/// An event the endpoint refuses (a 4xx other than 408 and 429) this many times is given up,
/// so it does not hold back the contact's later events for ever.
const REFUSALS: i32 = 5;

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-heydoc-signature";
pub const EVENT_HEADER: &str = "x-heydoc-event";

pub async fn run(db: Db, settings: SenderSettings, shutdown: CancellationToken) {
    // Built when the first event is due: a deployment without endpoints pays nothing for it
    // (a TLS client with its root store is several MB of a sender's memory).
    let client = tokio::sync::OnceCell::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A full batch means more are due: go again at once.
        while round(&db, &client, &settings).await >= BATCH as usize {
            if shutdown.is_cancelled() {
                return;
            }
        }
    }
}

/// One claim and its attempts; returns how many were claimed.
fn http_client(settings: &SenderSettings) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.event_timeout_secs.max(1)))
        // A redirect would send the signed event somewhere the admin did not register.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("HeyDoc-Events/", env!("CARGO_PKG_VERSION")));
    if settings.event_private_targets {
        return builder.build();
    }
    // Names are resolved at every connection and only public addresses are used: a name
    // that was public when it was registered and points inside later is refused (DNS
    // rebinding). Proxies would resolve elsewhere, so none is used.
    builder
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(PublicOnly(SystemLookup)))
        .build()
}

/// Looks a name up (the system's resolver, or a test's).
pub trait Lookup: Send + Sync + 'static {
    fn lookup(
        &self,
        name: String,
    ) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<std::net::SocketAddr>>>;
}

pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        name: String,
    ) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<std::net::SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((name.as_str(), 0)).await?.collect()) })
    }
}

/// A resolver that answers only with public addresses, and fails when a name has none.
pub struct PublicOnly<L>(pub L);

/// Why an endpoint was not called; neutral, so the delivery log tells an admin nothing about
/// what answers inside the network.
pub const NOT_PUBLIC: &str = "the endpoint's address is not on the public internet";

impl<L: Lookup> reqwest::dns::Resolve for PublicOnly<L> {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.0.lookup(name.as_str().to_string());
        Box::pin(async move {
            let public: Vec<std::net::SocketAddr> = lookup
                .await?
                .into_iter()
                .filter(|a| heydoc_domain::public_address::is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(NOT_PUBLIC.into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `url`'s host is an address literal that is not public (reqwest does not ask the
/// resolver about those).
fn literal_not_public(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return true;
    };
    let host = parsed.host_str().unwrap_or_default();
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| !heydoc_domain::public_address::is_public(ip))
}

async fn round(
    db: &Db,
    client: &tokio::sync::OnceCell<reqwest::Client>,
    settings: &SenderSettings,
) -> usize {
    let now = Utc::now();
    // The lease outlasts every wave of the round timing out, so nobody else takes a row before
    // its attempt is recorded.
    let waves = BATCH.div_ceil(IN_FLIGHT as u64) as i64;
    let lease = now + chrono::Duration::seconds(waves * settings.event_timeout_secs as i64 + 30);
    let due = match claim_due(db, now, lease, BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim due events");
            return 0;
        }
    };
    let claimed = due.len();
    if claimed == 0 {
        return 0;
    }
    let client = match client
        .get_or_try_init(|| async { http_client(settings) })
        .await
    {
        Ok(c) => c,
        Err(e) => {
            // The claimed rows' leases run out and they are tried again.
            tracing::error!(error = %e, "cannot build the HTTP client for outbound events");
            return 0;
        }
    };
    futures_util::stream::iter(due)
        .for_each_concurrent(IN_FLIGHT, |d| async move {
            let attempt = attempt(client, &d, settings).await;
            let now = Utc::now();
            let disable_before =
                now - chrono::Duration::seconds(settings.event_disable_after_secs as i64);
            if let Err(e) = record(db, &d, &attempt, now, disable_before).await {
                // The lease runs out and the event is tried again: at least once.
                tracing::warn!(error = %e, delivery = d.id, "cannot record an event attempt");
            }
        })
        .await;
    claimed
}

async fn attempt(client: &reqwest::Client, due: &Due, settings: &SenderSettings) -> Attempt {
    let retry_at = Utc::now() + backoff(due.attempts, settings);
    if !settings.event_private_targets && literal_not_public(&due.url) {
        return Attempt::Failed {
            give_up: false,
            status: None,
            error: NOT_PUBLIC.into(),
            retry_at,
        };
    }
    let body = due.payload.to_string();
    let timestamp = Utc::now().timestamp();
    let response = client
        .post(&due.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, &due.event_type)
        .header(SIGNATURE_HEADER, signature(&due.secret, timestamp, &body))
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Attempt::Delivered {
            status: i32::from(r.status().as_u16()),
        },
        Ok(r) => {
            let code = r.status();
            let refused = code.is_client_error()
                && code != reqwest::StatusCode::REQUEST_TIMEOUT
                && code != reqwest::StatusCode::TOO_MANY_REQUESTS;
            let give_up = refused && due.attempts + 1 >= REFUSALS;
            Attempt::Failed {
                status: Some(i32::from(code.as_u16())),
                error: if give_up {
                    format!("the endpoint answered {code} {REFUSALS} times; given up")
                } else {
                    format!("the endpoint answered {code}")
                },
                retry_at,
                give_up,
            }
        }
        Err(e) => {
            // The log keeps the details; the delivery log (which admins read) says only what
            // kind of failure it was.
            tracing::debug!(error = %e, delivery = due.id, "outbound event not delivered");
            let refused_address =
                std::iter::successors(Some(&e as &dyn std::error::Error), |s| s.source())
                    .any(|s| s.to_string().contains(NOT_PUBLIC));
            Attempt::Failed {
                give_up: false,
                status: None,
                error: if e.is_timeout() {
                    "no answer within the timeout".into()
                } else if refused_address {
                    NOT_PUBLIC.into()
                } else if e.is_connect() {
                    "cannot connect to the endpoint".into()
                } else {
                    "the request to the endpoint failed".into()
                },
                retry_at,
            }
        }
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the receiver recomputes it and
/// refuses old timestamps, so a captured request cannot be replayed later.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The wait before attempt `attempts + 1`: base doubling per attempt, capped, with ±20% jitter.
fn backoff(attempts: i32, settings: &SenderSettings) -> chrono::Duration {
    let base = settings.event_retry_base_ms.max(1) as f64;
    let cap = (settings.event_retry_max_secs.max(1) * 1000) as f64;
    let exp = base * 2f64.powi(attempts.clamp(0, 30));
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    chrono::Duration::milliseconds((exp.min(cap) * jitter) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    /// A name that resolved to `first` and now resolves to `then` (DNS rebinding).
    struct Rebinding(std::sync::Mutex<Vec<&'static str>>);

    impl Lookup for Rebinding {
        fn lookup(
            &self,
            _name: String,
        ) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<std::net::SocketAddr>>>
        {
            let ip = self.0.lock().unwrap().remove(0);
            Box::pin(async move { Ok(vec![std::net::SocketAddr::new(ip.parse().unwrap(), 0)]) })
        }
    }

    #[tokio::test]
    async fn a_name_that_turns_private_is_refused_at_the_call() {
        let resolver = PublicOnly(Rebinding(std::sync::Mutex::new(vec![
            "93.184.216.34",
            "169.254.169.254",
            "127.0.0.1",
        ])));
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let first: Vec<_> = resolver
            .resolve(name("crm.example.com"))
            .await
            .unwrap()
            .collect();
        assert_eq!(first[0].ip().to_string(), "93.184.216.34");
        for _ in 0..2 {
            let Err(e) = resolver.resolve(name("crm.example.com")).await else {
                panic!("a private answer must be refused");
            };
            assert_eq!(e.to_string(), NOT_PUBLIC);
        }
    }

    #[test]
    fn address_literals_are_checked_before_the_call() {
        assert!(literal_not_public("http://127.0.0.1:8080/hook"));
        assert!(literal_not_public("http://[::1]/hook"));
        assert!(literal_not_public(
            "http://169.254.169.254/latest/meta-data"
        ));
        assert!(!literal_not_public("https://93.184.216.34/hook"));
        assert!(
            !literal_not_public("https://crm.example.com/hook"),
            "names go to the resolver"
        );
    }

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let a = signature("s3cret", 1_700_000_000, r#"{"a":1}"#);
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1_700_000_001, r#"{"a":1}"#));
        assert_ne!(a, signature("s3cret", 1_700_000_000, r#"{"a":2}"#));
        assert_ne!(a, signature("other", 1_700_000_000, r#"{"a":1}"#));
    }
}
