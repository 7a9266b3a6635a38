//! Pacing (invariant 6): per business number, evenly spaced sends at the limit in force (no
//! bursts, so no wall-clock second ever sees more than it), a limit that adapts (lowered when
//! Meta throttles a real share of the sends, raised back step by step up to WHATSAPP_MPS), a
//! pause of the whole number when it cannot send at all, and pair pacing per recipient.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a few assignments: consistent even after a panic elsewhere.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Pacer {
    /// The configured rate (msg/s); 0 turns the number's pacing off.
    configured: u32,
    /// The rate in force now, in thousandths of a message per second: the configured one,
    /// lowered when Meta says the number is over its throughput and raised back step by step.
    limit_milli: AtomicU64,
    /// When the next message may go (no bursts: an idle number earns no credit).
    next_slot: Mutex<Instant>,
    /// What the last second brought, for the limit's adjustment.
    window: Mutex<Window>,
    pairs: DefaultKeyedRateLimiter<String>,
    paused_until_ms: AtomicI64,
    /// Open while the number cannot send at all (token, account, payment, policy): why.
    circuit: Mutex<Option<String>>,
}

/// Sends and throttling answers (130429 and its kin) counted over about a second.
struct Window {
    started: Instant,
    sent: u32,
    throttled: u32,
}

/// The share of throttled sends in a second above which the limit is lowered: an occasional
/// 130429 (Meta has them at any rate) is noise, a steady share means the real limit is lower.
const THROTTLED_SHARE: f64 = 0.05;
/// Multiplicative decrease, additive increase (a fraction of the configured rate per second).
const DECREASE: f64 = 0.7;
const INCREASE: f64 = 0.05;
/// The limit never goes below this (msg/s).
const MIN_RATE: f64 = 1.0;

impl Pacer {
    /// `mps` 0 turns the number's pacing off.
    pub fn new(mps: u32) -> Self {
        // Meta's pair rate: about one message every 6 s to the same user, bursts up to 45.
        let pair_quota = Quota::with_period(Duration::from_secs(6))
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(45).unwrap_or(NonZeroU32::MIN));
        Self {
            configured: mps,
            limit_milli: AtomicU64::new(u64::from(mps) * 1000),
            next_slot: Mutex::new(Instant::now()),
            window: Mutex::new(Window {
                started: Instant::now(),
                sent: 0,
                throttled: 0,
            }),
            pairs: RateLimiter::keyed(pair_quota),
            paused_until_ms: AtomicI64::new(0),
            circuit: Mutex::new(None),
        }
    }

    /// The number cannot send (Meta's `code`, `why`): nothing goes for `probe`, then sends try
    /// again; the first that gets through closes the circuit. Logged and measured once per
    /// opening, not per refused message.
    pub fn open_circuit(&self, probe: Duration, code: Option<i32>, why: &str) {
        self.pause(probe);
        let mut circuit = lock(&self.circuit);
        if circuit.is_none() {
            tracing::error!(code, reason = why, "the business number cannot send: its deliveries wait (no attempt is spent) and are tried again every {probe:?}; check the access token, the account and the number's status");
            metrics::gauge!(heydoc_telemetry::metrics::NUMBER_PAUSED).set(1.0);
        }
        *circuit = Some(format!("{}: {why}", code.unwrap_or_default()));
    }

    /// A send got through: the number works again. True when its circuit was open.
    pub fn close_circuit(&self) -> bool {
        let mut circuit = lock(&self.circuit);
        match circuit.take() {
            Some(why) => {
                tracing::info!(was = %why, "the business number sends again");
                metrics::gauge!(heydoc_telemetry::metrics::NUMBER_PAUSED).set(0.0);
                true
            }
            None => false,
        }
    }

    /// Why the number cannot send, while it cannot.
    pub fn circuit(&self) -> Option<String> {
        lock(&self.circuit).clone()
    }

    /// The rate in force now (msg/s); 0 when pacing is off.
    pub fn limit(&self) -> f64 {
        self.limit_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// One message's share of a second at the current limit, plus 4% headroom, so that jitter
    /// between here and Meta (a busy runtime, the network) cannot put limit + 1 sends into one
    /// wall-clock second. (2% was measured too little: at 4 x 250/s on this 2-core machine,
    /// arrivals bunched to 256 in a second.)
    fn period(&self) -> Option<Duration> {
        let limit = self.limit();
        (self.configured > 0 && limit > 0.0).then(|| Duration::from_secs_f64(1.04 / limit))
    }

    /// Waits for the number's pause (if any), reserves `n` evenly spaced slots at the current
    /// limit (none when pacing is off) and waits for the first. Each send then waits for its
    /// own slot, so no wall-clock second sees more than the limit, however large the batch.
    /// Returns the slots and the time waited.
    pub async fn reserve(&self, n: usize) -> (Vec<Instant>, Duration) {
        let started = std::time::Instant::now();
        self.wait_pause().await;
        let Some(period) = self.period() else {
            return (Vec::new(), started.elapsed());
        };
        let slots: Vec<Instant> = {
            let mut next = lock(&self.next_slot);
            let first = (*next).max(Instant::now());
            let slots = (0..n.max(1) as u32)
                .map(|i| first + period * i)
                .collect::<Vec<_>>();
            *next = first + period * n.max(1) as u32;
            slots
        };
        if let Some(first) = slots.first() {
            tokio::time::sleep_until((*first).into()).await;
        }
        (slots, started.elapsed())
    }

    /// Waits for the number's pause (if any) and then for `n` slots. Returns the time waited.
    #[cfg(test)]
    pub async fn acquire(&self, n: usize) -> Duration {
        let started = std::time::Instant::now();
        let (slots, _) = self.reserve(n).await;
        if let Some(last) = slots.last() {
            tokio::time::sleep_until((*last).into()).await;
        }
        started.elapsed()
    }

    async fn wait_pause(&self) {
        loop {
            let until = self.paused_until_ms.load(Ordering::SeqCst);
            let now = Utc::now().timestamp_millis();
            if until <= now {
                break;
            }
            tokio::time::sleep(Duration::from_millis((until - now) as u64)).await;
        }
    }

    /// Whether the whole number is paused now (its circuit is open, or Meta named a time).
    pub fn paused(&self) -> bool {
        self.paused_until_ms.load(Ordering::SeqCst) > Utc::now().timestamp_millis()
    }

    /// Until when the whole number is paused, while it is.
    pub fn paused_until(&self) -> Option<chrono::DateTime<Utc>> {
        let until = self.paused_until_ms.load(Ordering::SeqCst);
        (until > Utc::now().timestamp_millis())
            .then(|| chrono::DateTime::from_timestamp_millis(until))
            .flatten()
    }

    /// The number's hold as the database has it (a webhook's error, another sender's, or this
    /// one's before a restart): nothing goes before `until`, and the circuit shows `why` until
    /// a send gets through (which clears the database's hold too).
    pub fn adopt_hold(&self, until: Option<chrono::DateTime<Utc>>, why: &str) {
        if let Some(until) = until {
            self.paused_until_ms
                .fetch_max(until.timestamp_millis(), Ordering::SeqCst);
        }
        let mut circuit = lock(&self.circuit);
        if circuit.is_none() {
            tracing::error!(
                reason = why,
                ?until,
                "the business number is held: its deliveries wait (no attempt is spent)"
            );
            metrics::gauge!(heydoc_telemetry::metrics::NUMBER_PAUSED).set(1.0);
            *circuit = Some(why.to_string());
        }
    }

    /// Counts a send's answer: `throttled` when Meta said the number is over its throughput.
    /// About once a second the limit moves: down by a factor when a real share of the sends was
    /// throttled, otherwise up by a step towards the configured rate.
    pub fn observe(&self, throttled: bool) {
        if self.configured == 0 {
            return;
        }
        let mut w = lock(&self.window);
        if throttled {
            w.throttled += 1;
        } else {
            w.sent += 1;
        }
        if w.started.elapsed() < Duration::from_secs(1) {
            return;
        }
        let total = f64::from(w.sent + w.throttled);
        let share = f64::from(w.throttled) / total.max(1.0);
        let configured = f64::from(self.configured);
        let limit = self.limit();
        let next = if share > THROTTLED_SHARE {
            (limit * DECREASE).max(MIN_RATE)
        } else {
            (limit + configured * INCREASE).min(configured)
        };
        metrics::counter!(heydoc_telemetry::metrics::THROTTLED).increment(u64::from(w.throttled));
        if (next - limit).abs() > f64::EPSILON {
            self.limit_milli
                .store((next * 1000.0) as u64, Ordering::Relaxed);
            metrics::gauge!(heydoc_telemetry::metrics::RATE_LIMIT).set(next);
            if next < limit {
                tracing::warn!(
                    limit = next,
                    throttled = w.throttled,
                    sent = w.sent,
                    "Meta throttled the number; sending slower"
                );
            }
        }
        *w = Window {
            started: Instant::now(),
            sent: 0,
            throttled: 0,
        };
    }

    /// Stops the whole number for `for_how_long` (its circuit is open: the token, the account
    /// or a Retry-After says nothing can go now).
    pub fn pause(&self, for_how_long: Duration) {
        let until = Utc::now().timestamp_millis() + for_how_long.as_millis() as i64;
        self.paused_until_ms.fetch_max(until, Ordering::SeqCst);
    }

    /// `None` when a message to `recipient` may go now; otherwise how long to wait.
    pub fn pair_wait(&self, recipient: &str) -> Option<Duration> {
        match self.pairs.check_key(&recipient.to_string()) {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }

    /// Forgets recipients whose pair budget has refilled.
    pub fn prune(&self) {
        self.pairs.retain_recent();
        self.pairs.shrink_to_fit();
    }

    /// How many recipients' pair budgets are remembered.
    pub fn remembered(&self) -> usize {
        self.pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_without_bursts() {
        let pacer = Pacer::new(100);
        let started = std::time::Instant::now();
        pacer.acquire(20).await;
        // 20 tokens at 100/s, the first free: at least 190 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(185),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn the_limit_falls_with_throttling_and_recovers_step_by_step() {
        let pacer = Pacer::new(1000);
        assert_eq!(pacer.limit(), 1000.0);
        // An occasional 130429 (1 in 40) is noise: the limit stays.
        for i in 0..400 {
            pacer.observe(i % 40 == 0);
        }
        lock(&pacer.window).started -= Duration::from_secs(2);
        pacer.observe(false);
        assert_eq!(pacer.limit(), 1000.0);
        // Most sends refused: down by the factor, each second it lasts.
        for _ in 0..3 {
            for i in 0..100 {
                pacer.observe(i % 2 == 0);
            }
            lock(&pacer.window).started -= Duration::from_secs(2);
            pacer.observe(true);
        }
        let low = pacer.limit();
        assert!((low - 343.0).abs() < 1.0, "{low}");
        // Quiet seconds: back up by 5% of the configured rate each.
        lock(&pacer.window).started -= Duration::from_secs(2);
        pacer.observe(false);
        assert!(
            (pacer.limit() - (low + 50.0)).abs() < 1.0,
            "{}",
            pacer.limit()
        );
    }

    #[tokio::test]
    async fn pause_holds_the_number() {
        let pacer = Pacer::new(0);
        pacer.pause(Duration::from_millis(150));
        let waited = pacer.acquire(1).await;
        assert!(waited >= Duration::from_millis(100));
    }

    #[test]
    fn pair_pacing_allows_a_burst_then_waits() {
        let pacer = Pacer::new(0);
        for _ in 0..45 {
            assert!(pacer.pair_wait("15550001234").is_none());
        }
        assert!(pacer.pair_wait("15550001234").is_some());
        assert!(pacer.pair_wait("15550009999").is_none());
    }

    #[tokio::test]
    async fn a_hold_from_the_database_pauses_and_shows_until_a_send_gets_through() {
        let pacer = Pacer::new(10);
        pacer.adopt_hold(
            Some(Utc::now() + chrono::Duration::milliseconds(300)),
            "131042: payment",
        );
        assert!(pacer.paused());
        assert!(pacer.paused_until().is_some());
        assert_eq!(pacer.circuit().as_deref(), Some("131042: payment"));
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(!pacer.paused());
        // Still shown until a send closes it.
        assert!(pacer.close_circuit());
        assert!(pacer.circuit().is_none());
    }

    #[test]
    fn prune_forgets_refilled_recipients() {
        let pacer = Pacer::new(0);
        assert!(pacer.pair_wait("15550001234").is_none());
        assert_eq!(pacer.remembered(), 1);
    }
}
