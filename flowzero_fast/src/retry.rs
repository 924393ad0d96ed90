//! Retry policy: which failures are worth another try, and how long to wait (exponential backoff, jitter).

use std::time::Duration;

/// Up to `max_retries` further attempts, waiting about `base * 2^attempt` (at most `cap`) between them.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Whether failure number `failures` (1 for the first) may be followed by another attempt.
    pub fn allows(&self, failures: u32) -> bool {
        failures <= self.max_retries
    }

    /// The ceiling of the wait after failure number `failures` (1 for the first).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// "Equal jitter": half the ceiling fixed, half random, so retries of many files spread out.
    pub fn delay(&self, failures: u32, jitter: &mut Jitter) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        half + half.mul_f64(jitter.next_unit())
    }
}

/// The status codes worth another try, the same table as Python's `flowzero.transient.RETRYABLE_STATUSES`
/// (exposed as `flowzero._fast.RETRYABLE_STATUSES`, and tested equal): timeouts, "too early", throttling (429:
/// flow control, paced and waited out) and the server errors that pass (S3's 503 SlowDown among them); not 501.
pub const RETRYABLE_STATUSES: [u16; 7] = [408, 425, 429, 500, 502, 503, 504];

pub fn retryable_status(status: u16) -> bool {
    RETRYABLE_STATUSES.contains(&status)
}

/// Randomness for jitter (fastrand's wyrand; cryptographic quality is not needed).
pub struct Jitter(fastrand::Rng);

impl Jitter {
    pub fn seeded(seed: u64) -> Self {
        Jitter(fastrand::Rng::with_seed(seed))
    }

    pub fn from_entropy() -> Self {
        Jitter(fastrand::Rng::new())
    }

    /// A number in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        self.0.f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy();
        assert!(p.allows(1) && p.allows(3));
        assert!(!p.allows(4));
        assert!(!RetryPolicy {
            max_retries: 0,
            ..p
        }
        .allows(1));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let ceilings: Vec<u128> = (1..=6).map(|n| p.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(200), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_half_and_full_ceiling_and_varies() {
        let p = policy();
        let mut j = Jitter::seeded(42);
        let mut seen = std::collections::HashSet::new();
        for n in 1..=5 {
            for _ in 0..200 {
                let d = p.delay(n, &mut j);
                assert!(
                    d >= p.ceiling(n) / 2 && d <= p.ceiling(n),
                    "{d:?} for failure {n}"
                );
                seen.insert(d.as_micros());
            }
        }
        assert!(seen.len() > 100, "jitter should spread delays");
    }

    #[test]
    fn unit_numbers_are_in_range() {
        let mut j = Jitter::from_entropy();
        for _ in 0..10_000 {
            let u = j.next_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn which_statuses_retry() {
        for s in [500, 502, 503, 504, 429, 408, 425] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 206, 400, 403, 404, 416, 501, 505, 599] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
