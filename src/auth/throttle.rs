//! Sign-in throttling: a few attempts per email and per client address, then a pause.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Keys remembered at most. A key is forgotten once its budget has refilled; a flood of new
/// keys beyond this is refused until some are, so memory stays bounded whatever is sent.
const MAX_KEYS: usize = 100_000;

/// Allows a burst of attempts per key, refilled one every 12 seconds (5 a minute).
#[derive(Clone)]
pub struct SignInThrottle {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    max_keys: usize,
}

impl SignInThrottle {
    pub fn new(burst: u32) -> Self {
        Self::with_capacity(burst, MAX_KEYS)
    }

    fn with_capacity(burst: u32, max_keys: usize) -> Self {
        let quota = Quota::with_period(Duration::from_secs(12))
            .expect("non-zero period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("non-zero"));
        SignInThrottle {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            max_keys,
        }
    }

    /// Counts an attempt for each key; false when any of them is over its budget.
    pub fn attempt(&self, keys: &[String]) -> bool {
        if self.limiter.len() + keys.len() > self.max_keys {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            if self.limiter.len() + keys.len() > self.max_keys {
                return false;
            }
        }
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

    #[test]
    fn a_flood_of_new_keys_cannot_grow_the_map_past_its_bound() {
        let t = SignInThrottle::with_capacity(3, 100);
        for i in 0..1_000 {
            t.attempt(&[format!("email:{i}@example.com")]);
        }
        assert!(t.limiter.len() <= 100, "{}", t.limiter.len());
    }
}
