//! Limits on what anonymous visitors can make HeyDoc do.
//!
//! Logins: only *failures* count, per (username, address) and per address, and a limit is
//! checked before any password is hashed. So an attacker who exhausts a username's limit from
//! their address does not lock its owner out from theirs, and a locked-out attacker costs no
//! CPU. An attempt counts as a failure from the moment it is let through (checked and counted
//! under one lock) until it succeeds, so a burst of parallel guesses gets no more tries than
//! guesses one after another. Registrations: per address and hour (governor's keyed GCRA), checked before hashing.

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
/// Failed logins per minute for one username from all addresses, unless configured.
const DEFAULT_PER_ACCOUNT: u32 = 100;
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

    /// `blocked`, and if not, a failure recorded: one step, so parallel attempts cannot all
    /// pass before any is counted.
    fn admit(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut seen = self.lock();
        if let Some(times) = seen.get(&key) {
            let recent: Vec<&Instant> = times.iter().filter(|t| now - **t < WINDOW).collect();
            if recent.len() >= self.limit {
                return Err(WINDOW.saturating_sub(now - *recent[0]));
            }
        }
        if seen.len() < MAX_KEYS || seen.contains_key(&key) {
            let times = seen.entry(key).or_default();
            times.push_back(now);
            while times.len() > self.limit {
                times.pop_front();
            }
        }
        Ok(())
    }

    /// Takes back the most recent failure of `key` (an admitted attempt that succeeded).
    fn forgive_one(&self, key: &K) {
        if let Some(times) = self.lock().get_mut(key) {
            times.pop_back();
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
    /// Failures per username from every address together: many addresses guessing one
    /// account are slowed too (set high, so that one attacker cannot lock a person out
    /// cheaply).
    per_account: Failures<String>,
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
            per_account: Failures::new(DEFAULT_PER_ACCOUNT),
            registrations: RateLimiter::keyed(per_hour),
        }
    }

    /// Failed logins per minute allowed for one username from all addresses together.
    pub fn with_account_limit(mut self, failures_per_account_per_minute: u32) -> Self {
        self.per_account = Failures::new(failures_per_account_per_minute);
        self
    }

    /// Lets an attempt by `username` from `ip` through, counting it as a failure until it
    /// `succeeded`; a 429 when the pair or the address has failed too often.
    pub fn attempt(&self, username: &str, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let ip = limit_key(ip);
        let account = username.to_lowercase();
        self.per_ip.admit(ip, now).map_err(refused)?;
        if let Err(wait) = self.per_user.admit((account.clone(), ip), now) {
            self.per_ip.forgive_one(&ip);
            return Err(refused(wait));
        }
        if let Err(wait) = self.per_account.admit(account.clone(), now) {
            self.per_ip.forgive_one(&ip);
            self.per_user.forgive_one(&(account, ip));
            tracing::warn!(
                username,
                "failed logins for this account from many addresses: refused for a while"
            );
            return Err(refused(wait));
        }
        Ok(())
    }

    /// Counts a failure against the address alone (a username that cannot exist, a wrong
    /// setup token); a 429 when the address has failed too often already.
    pub fn failed_from(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.per_ip
            .admit(limit_key(ip), Instant::now())
            .map_err(refused)
    }

    /// An admitted attempt succeeded: it was no failure, and the username's earlier failures
    /// from that address are forgotten.
    pub fn succeeded(&self, username: &str, ip: IpAddr) {
        let ip = limit_key(ip);
        self.per_ip.forgive_one(&ip);
        self.per_account.forgive_one(&username.to_lowercase());
        self.per_user.clear(&(username.to_lowercase(), ip));
    }

    /// An admitted attempt that could not be checked (the database away, no hashing slot):
    /// it counts neither way.
    pub fn abandoned(&self, username: &str, ip: IpAddr) {
        let ip = limit_key(ip);
        self.per_ip.forgive_one(&ip);
        self.per_user.forgive_one(&(username.to_lowercase(), ip));
        self.per_account.forgive_one(&username.to_lowercase());
    }

    /// A 429 when the address has failed too often (counting nothing).
    pub fn check_address(&self, ip: IpAddr) -> Result<(), ApiError> {
        match self.per_ip.blocked(&limit_key(ip), Instant::now()) {
            Some(wait) => Err(refused(wait)),
            None => Ok(()),
        }
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
        self.per_account.prune(now);
        self.registrations.retain_recent();
    }

    pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
}

fn refused(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs().max(1),
    }
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

    #[test]
    fn many_addresses_guessing_one_account_are_stopped() {
        let limiter = LoginLimiter::new(5, 1000, 10).with_account_limit(10);
        let mut refused = 0;
        for i in 0..30u8 {
            // A different address each time: the per-address limits never trip.
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
            if limiter.attempt("ana", ip).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 20, "only the account's 10 get through");
        // Another account is not affected.
        assert!(limiter
            .attempt("bob", IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)))
            .is_ok());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_failures_count_and_per_pair() {
        let limiter = LoginLimiter::new(2, 100, 10);
        let (attacker, owner) = (ip("203.0.113.9"), ip("198.51.100.7"));
        for _ in 0..10 {
            limiter.attempt("admin", owner).unwrap();
            limiter.succeeded("admin", owner);
        }
        limiter.attempt("admin", attacker).unwrap();
        limiter.attempt("ADMIN", attacker).unwrap();
        assert!(matches!(
            limiter.attempt("admin", attacker),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(
            limiter.attempt("admin", owner).is_ok(),
            "the owner is not locked out"
        );
        limiter.succeeded("admin", owner);
        limiter.attempt("admin", owner).unwrap();
        assert!(
            limiter.attempt("admin", owner).is_ok(),
            "a success forgets earlier failures"
        );
    }

    #[test]
    fn parallel_attempts_count_before_they_finish() {
        let limiter = std::sync::Arc::new(LoginLimiter::new(5, 1000, 10));
        let admitted: usize = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| limiter.attempt("admin", ip("203.0.113.9")).is_ok())
                        .count()
                })
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(admitted, 5, "400 guesses at once, 5 let through");
        let fresh = LoginLimiter::new(1, 1000, 10);
        let owner = ip("198.51.100.7");
        fresh.attempt("admin", owner).unwrap();
        fresh.abandoned("admin", owner);
        assert!(
            fresh.attempt("admin", owner).is_ok(),
            "a server failure counts neither way"
        );
    }

    #[test]
    fn an_address_spraying_usernames_is_stopped() {
        let limiter = LoginLimiter::new(5, 3, 10);
        let sprayer = ip("203.0.113.9");
        for name in ["a", "b", "c"] {
            limiter.attempt(name, sprayer).unwrap();
        }
        assert!(limiter.attempt("d", sprayer).is_err());
        assert!(limiter.attempt("d", ip("203.0.113.10")).is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let limiter = LoginLimiter::new(1, 100, 10);
        limiter.attempt("admin", ip("2001:db8:1:2::1")).unwrap();
        assert!(limiter
            .attempt("admin", ip("2001:db8:1:2:ffff::9"))
            .is_err());
        assert!(limiter.attempt("admin", ip("2001:db8:1:3::1")).is_ok());
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
