//! Limits on what anonymous visitors can make HeyDoc do.
//!
//! Logins: only *failures* count, per (username, address) and per address, and a limit is
//! checked before any password is hashed. So an attacker who exhausts a username's limit from
//! their address does not lock its owner out from theirs, and a locked-out attacker costs no
//! CPU. Registrations: per address and hour (governor's keyed GCRA), checked before hashing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// How long a failure counts.
const WINDOW: Duration = Duration::from_secs(60);
/// Keys remembered at most; beyond it new keys are counted per address only (a flood of
/// made-up usernames cannot grow the map without bound).
const MAX_KEYS: usize = 100_000;

/// Failed attempts within the last minute, by key.
struct Failures<K> {
    limit: usize,
    seen: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: std::hash::Hash + Eq + Clone> Failures<K> {
    fn new(limit: u32) -> Self {
        Self {
            limit: usize::try_from(limit.max(1)).unwrap_or(usize::MAX),
            seen: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, VecDeque<Instant>>> {
        // A poisoned map still holds valid timestamps.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long until `key` may try again, when its failures have reached the limit.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let seen = self.lock();
        let times = seen.get(key)?;
        let recent: Vec<&Instant> = times.iter().filter(|t| now - **t < WINDOW).collect();
        (recent.len() >= self.limit).then(|| WINDOW.saturating_sub(now - *recent[0]))
    }

    fn fail(&self, key: K, now: Instant) {
        let mut seen = self.lock();
        if seen.len() >= MAX_KEYS && !seen.contains_key(&key) {
            return;
        }
        let times = seen.entry(key).or_default();
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }

    fn prune(&self, now: Instant) {
        self.lock()
            .retain(|_, times| times.back().is_some_and(|t| now - *t < WINDOW));
    }
}

pub struct LoginLimiter {
    per_user: Failures<(String, IpAddr)>,
    per_ip: Failures<IpAddr>,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimiter {
    pub fn new(
        failures_per_user_per_minute: u32,
        failures_per_ip_per_minute: u32,
        registrations_per_hour: u32,
    ) -> Self {
        let per_hour =
            Quota::per_hour(NonZeroU32::new(registrations_per_hour).unwrap_or(NonZeroU32::MIN));
        Self {
            per_user: Failures::new(failures_per_user_per_minute),
            per_ip: Failures::new(failures_per_ip_per_minute),
            registrations: RateLimiter::keyed(per_hour),
        }
    }

    /// Refuses with a 429 when `username` from `ip`, or `ip` itself, has failed too often.
    pub fn check(&self, username: &str, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let ip = limit_key(ip);
        let wait = self
            .per_ip
            .blocked(&ip, now)
            .or_else(|| self.per_user.blocked(&(username.to_lowercase(), ip), now));
        match wait {
            Some(wait) => Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }),
            None => Ok(()),
        }
    }

    pub fn failed(&self, username: &str, ip: IpAddr) {
        let now = Instant::now();
        let ip = limit_key(ip);
        self.per_ip.fail(ip, now);
        self.per_user.fail((username.to_lowercase(), ip), now);
    }

    /// A successful login forgets the username's failures from that address.
    pub fn succeeded(&self, username: &str, ip: IpAddr) {
        self.per_user
            .clear(&(username.to_lowercase(), limit_key(ip)));
    }

    /// Counts one registration from `ip`; 429 when its hourly allowance is spent.
    pub fn register(&self, ip: IpAddr) -> Result<(), ApiError> {
        let clock = DefaultClock::default();
        self.registrations
            .check_key(&limit_key(ip))
            .map_err(|not_until| ApiError::RateLimited {
                retry_after_secs: not_until.wait_time_from(clock.now()).as_secs().max(1),
            })
    }

    /// Forgets keys whose failures have expired, so the maps do not grow without bound.
    pub fn prune(&self) {
        let now = Instant::now();
        self.per_user.prune(now);
        self.per_ip.prune(now);
        self.registrations.retain_recent();
    }

    pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
}

/// The address a limit counts: IPv4 as it is, IPv6 by its /64 (one subscriber's prefix; an
/// attacker has 2^64 addresses in it).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_failures_count_and_per_pair() {
        let limiter = LoginLimiter::new(2, 100, 10);
        let (attacker, owner) = (ip("203.0.113.9"), ip("198.51.100.7"));
        for _ in 0..10 {
            assert!(
                limiter.check("admin", owner).is_ok(),
                "successes never count"
            );
        }
        limiter.failed("admin", attacker);
        limiter.failed("ADMIN", attacker);
        assert!(matches!(
            limiter.check("admin", attacker),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(
            limiter.check("admin", owner).is_ok(),
            "the owner is not locked out"
        );
        limiter.failed("admin", owner);
        limiter.succeeded("admin", owner);
        limiter.failed("admin", owner);
        assert!(
            limiter.check("admin", owner).is_ok(),
            "a success forgets earlier failures"
        );
    }

    #[test]
    fn an_address_spraying_usernames_is_stopped() {
        let limiter = LoginLimiter::new(5, 3, 10);
        let sprayer = ip("203.0.113.9");
        for name in ["a", "b", "c"] {
            limiter.failed(name, sprayer);
        }
        assert!(limiter.check("d", sprayer).is_err());
        assert!(limiter.check("d", ip("203.0.113.10")).is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let limiter = LoginLimiter::new(1, 100, 10);
        limiter.failed("admin", ip("2001:db8:1:2::1"));
        assert!(limiter.check("admin", ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(limiter.check("admin", ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(limit_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn registrations_per_address() {
        let limiter = LoginLimiter::new(5, 30, 2);
        let a = ip("203.0.113.9");
        assert!(limiter.register(a).is_ok());
        assert!(limiter.register(a).is_ok());
        assert!(limiter.register(a).is_err());
        assert!(limiter.register(ip("203.0.113.10")).is_ok());
    }
}
