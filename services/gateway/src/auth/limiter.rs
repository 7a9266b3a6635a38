//! Login attempts per username and per client address (governor's keyed GCRA limiters).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

pub struct LoginLimiter {
    per_user: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimiter {
    pub fn new(per_user_per_minute: u32, per_ip_per_minute: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_user: RateLimiter::keyed(quota(per_user_per_minute)),
            per_ip: RateLimiter::keyed(quota(per_ip_per_minute)),
        }
    }

    /// Counts one attempt; refuses it with a 429 when either limit is spent.
    pub fn check(&self, username: &str, ip: IpAddr) -> Result<(), ApiError> {
        let clock = DefaultClock::default();
        let refused = |not_until: governor::NotUntil<_>| ApiError::RateLimited {
            retry_after_secs: not_until.wait_time_from(clock.now()).as_secs().max(1),
        };
        self.per_ip.check_key(&ip).map_err(refused)?;
        self.per_user
            .check_key(&username.to_lowercase())
            .map_err(refused)?;
        Ok(())
    }

    /// Forgets keys whose limits have refilled, so the maps do not grow without bound.
    pub fn prune(&self) {
        self.per_user.retain_recent();
        self.per_ip.retain_recent();
    }

    pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_per_user_and_per_ip() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let limiter = LoginLimiter::new(2, 3);
        assert!(limiter.check("alice", ip).is_ok());
        assert!(limiter.check("ALICE", ip).is_ok());
        assert!(matches!(
            limiter.check("alice", ip),
            Err(ApiError::RateLimited { .. })
        ));
        // The address has now made three attempts: its limit is spent for everyone.
        assert!(limiter.check("bob", ip).is_err());
        assert!(limiter.check("bob", "10.0.0.2".parse().unwrap()).is_ok());
    }
}
