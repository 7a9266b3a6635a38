//! A closed-loop load generator: `connections` tasks, each sending its next request as soon as
//! the previous one is answered, for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LoadReport {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<34} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   errors {}",
            self.rps(),
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.errors
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends GET `url` (with `token` as bearer, if any) from `connections` concurrent loops for
/// `duration` after a `warmup`, and reports what the non-warmup part measured.
pub async fn run_get(
    url: &str,
    token: Option<&str>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> LoadReport {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()
        .expect("HTTP client");
    let auth = token.map(|t| format!("Bearer {t}"));
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let url: Arc<str> = url.into();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(64 * 1024);
            let mut errors = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let mut req = client.get(&*url);
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let ok = match req.send().await {
                    Ok(res) => {
                        let good = res.status().is_success();
                        good && res.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if sent >= measure_from {
                    if ok {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    LoadReport {
        requests: all.len() as u64,
        errors,
        elapsed: duration,
        p50: pct(0.50),
        p99: pct(0.99),
        max: all.last().copied().unwrap_or_default(),
    }
}
