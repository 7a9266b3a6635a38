//! Pacing (invariant 6): a token bucket per business number (WHATSAPP_MPS, no bursts, so no
//! wall-clock second ever sees more than the limit), a pause for the whole number when Meta
//! says it is over its limits, and pair pacing per recipient.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct Pacer {
    number: Option<DefaultDirectRateLimiter>,
    pairs: DefaultKeyedRateLimiter<String>,
    paused_until_ms: AtomicI64,
}

impl Pacer {
    /// `mps` 0 turns the number's bucket off.
    pub fn new(mps: u32) -> Self {
        let number = NonZeroU32::new(mps).map(|n| {
            // One token at a time, one every 1/mps s plus 2% headroom, so that network jitter
            // between here and Meta cannot put mps + 1 sends into one wall-clock second.
            let period = Duration::from_nanos(1_020_000_000 / u64::from(n.get()));
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(n))
                .allow_burst(NonZeroU32::MIN);
            RateLimiter::direct(quota)
        });
        // Meta's pair rate: about one message every 6 s to the same user, bursts up to 45.
        let pair_quota = Quota::with_period(Duration::from_secs(6))
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(45).unwrap_or(NonZeroU32::MIN));
        Self {
            number,
            pairs: RateLimiter::keyed(pair_quota),
            paused_until_ms: AtomicI64::new(0),
        }
    }

    /// Waits for the number's pause (if any) and then for `n` tokens. Returns the time waited.
    pub async fn acquire(&self, n: usize) -> Duration {
        let started = std::time::Instant::now();
        loop {
            let until = self.paused_until_ms.load(Ordering::SeqCst);
            let now = Utc::now().timestamp_millis();
            if until <= now {
                break;
            }
            tokio::time::sleep(Duration::from_millis((until - now) as u64)).await;
        }
        if let Some(limiter) = &self.number {
            for _ in 0..n {
                limiter.until_ready().await;
            }
        }
        started.elapsed()
    }

    /// Stops the whole number for `for_how_long` (Meta said it is over a limit).
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
}
