//! Sign-in throttling: a few attempts per email and per client address, then a pause.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Allows a burst of attempts per key, refilled one every 12 seconds (5 a minute).
#[derive(Clone)]
pub struct SignInThrottle {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl SignInThrottle {
    pub fn new(burst: u32) -> Self {
        let quota = Quota::with_period(Duration::from_secs(12))
            .expect("non-zero period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("non-zero"));
        SignInThrottle {
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Counts an attempt for each key; false when any of them is over its budget.
    pub fn attempt(&self, keys: &[String]) -> bool {
        keys.iter().all(|k| self.limiter.check_key(k).is_ok())
    }
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle::new(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_beyond_the_burst_are_refused() {
        let t = SignInThrottle::new(3);
        let key = vec!["email:a@example.com".to_string()];
        assert!(t.attempt(&key));
        assert!(t.attempt(&key));
        assert!(t.attempt(&key));
        assert!(!t.attempt(&key));
        assert!(t.attempt(&["email:other@example.com".to_string()]));
    }
}
