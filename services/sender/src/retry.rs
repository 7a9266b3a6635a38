//! When to try again: exponential back-off with jitter per error class, never sooner than
//! Meta's Retry-After.

use std::time::Duration;

use heydoc_whatsapp::ErrorClass;
use rand::Rng;

/// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed. `unit` is
/// the first retry's delay (`sender.retry_base_ms`).
pub fn delay(
    class: ErrorClass,
    code: Option<i64>,
    attempt: i32,
    retry_after: Option<Duration>,
    unit: Duration,
) -> Duration {
    let n = u32::try_from(attempt.max(1) - 1).unwrap_or(0).min(16);
    let base = match class {
        ErrorClass::RetrySoon => unit.saturating_mul(1 << n),
        ErrorClass::BackOffNumber => unit.saturating_mul(2 << n),
        // Meta's advice for the pair rate: 4^n seconds; the per-user marketing limit: another
        // day (with the jitter below: 16 to 24 hours from now, spread over the campaign).
        ErrorClass::BackOffRecipient if code == Some(131049) => Duration::from_secs(32 * 3600),
        ErrorClass::BackOffRecipient => (unit / 2).saturating_mul(4u32.saturating_pow(n + 1)),
        ErrorClass::StopNumber | ErrorClass::TemplateProblem => Duration::from_secs(60),
        ErrorClass::NeverRetry { .. } | ErrorClass::OutcomeUnknown => Duration::ZERO,
    };
    let cap = if code == Some(131049) {
        Duration::from_secs(32 * 3600)
    } else {
        Duration::from_secs(3600)
    };
    let base = base.min(cap);
    // Half fixed, half random: spreads a storm's retries out without making any of them early.
    let jittered = base / 2 + base.mul_f64(rand::thread_rng().gen_range(0.0..0.5));
    jittered.max(retry_after.unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_honours_retry_after() {
        let unit = Duration::from_secs(2);
        let first = delay(ErrorClass::RetrySoon, None, 1, None, unit);
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
        let fifth = delay(ErrorClass::RetrySoon, None, 5, None, unit);
        assert!(fifth >= Duration::from_secs(16));
        let told = delay(
            ErrorClass::RetrySoon,
            None,
            1,
            Some(Duration::from_secs(30)),
            unit,
        );
        assert_eq!(told, Duration::from_secs(30));
        assert!(
            delay(ErrorClass::BackOffRecipient, Some(131049), 1, None, unit)
                >= Duration::from_secs(16 * 3600)
        );
        assert!(delay(ErrorClass::RetrySoon, None, 40, None, unit) <= Duration::from_secs(3600));
    }
}
