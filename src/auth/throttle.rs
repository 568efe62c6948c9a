//! Sign-in throttling: budgets per client address and per email *at* that address, with a slow
//! ceiling per email, so that guessing is slow and nobody can lock another person out.
//!
//! A budget per email alone would be spent by whoever posts wrong passwords for it: one address
//! trying `admin@…` every few seconds would lock the real admin out from everywhere. Here an
//! address that guesses spends its own budgets (per address, and per email at that address);
//! the per-email ceiling refills faster than one address may spend it, so only an attack
//! spread over many addresses reaches it, and then it still bounds the guesses per email.
//!
//! Each budget is GCRA (a theoretical arrival time per key). The maps are bounded: when one is
//! full, the keys whose budget has refilled are forgotten, then the oldest (those nearest to
//! refilled), so a flood of new keys costs the flooder's own old keys, never everyone's
//! sign-in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered per budget at most.
const MAX_KEYS: usize = 100_000;

/// How often one attempt is given back to an address's and an email-at-address's budget.
const REFILL: Duration = Duration::from_secs(12);

/// How often one attempt is given back to an email's ceiling: twice as often as one address
/// may spend it, so no single address can ever exhaust it.
const CEILING_REFILL: Duration = Duration::from_secs(6);

/// A burst of attempts, refilled one every `period`.
#[derive(Clone, Copy, Debug)]
struct Budget {
    period: Duration,
    burst: u32,
}

/// One budget per key, at most `max_keys` of them.
struct Keyed {
    budget: Budget,
    max_keys: usize,
    /// Key → theoretical arrival time: the budget is full once it is in the past.
    tat: Mutex<HashMap<String, Instant>>,
}

impl Keyed {
    fn new(budget: Budget, max_keys: usize) -> Self {
        Keyed {
            budget,
            max_keys: max_keys.max(1),
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one attempt of `key`'s budget; false (nothing spent) when it is empty.
    fn spend(&self, key: &str, now: Instant) -> bool {
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let tolerance = self.budget.period * self.budget.burst.saturating_sub(1);
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        if tat > now + tolerance {
            return false;
        }
        if !map.contains_key(key) && map.len() >= self.max_keys {
            evict(&mut map, now, self.max_keys);
        }
        map.insert(key.to_string(), tat + self.budget.period);
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tat.lock().unwrap().len()
    }
}

/// Makes room in a full map: forgets the keys whose budget has refilled, and if that is not a
/// tenth of the map, the tenth nearest to refilled (the oldest attempts).
fn evict(map: &mut HashMap<String, Instant>, now: Instant, max_keys: usize) {
    map.retain(|_, tat| *tat > now);
    let target = max_keys - max_keys / 10;
    if map.len() < target {
        return;
    }
    let mut times: Vec<Instant> = map.values().copied().collect();
    let cut = map.len() - target;
    let (_, nth, _) = times.select_nth_unstable(cut);
    let nth = *nth;
    map.retain(|_, tat| *tat > nth);
}

/// The sign-in throttle of one process.
pub struct SignInThrottle {
    by_address: Keyed,
    by_email_at_address: Keyed,
    by_email: Keyed,
}

impl SignInThrottle {
    /// `burst` attempts per email at one address (then one per 12 s); six times as many per
    /// address (people share addresses); ten times as many per email from everywhere, then
    /// one per 6 s.
    pub fn new(burst: u32) -> Self {
        Self::with_capacity(burst, MAX_KEYS)
    }

    fn with_capacity(burst: u32, max_keys: usize) -> Self {
        let burst = burst.max(1);
        let budget = |period, burst| Keyed::new(Budget { period, burst }, max_keys);
        SignInThrottle {
            by_address: budget(REFILL, burst.saturating_mul(6)),
            by_email_at_address: budget(REFILL, burst),
            by_email: budget(CEILING_REFILL, burst.saturating_mul(10)),
        }
    }

    /// Counts a sign-in attempt for `email` from `address`; false when it is refused. A
    /// refusal by one budget spends nothing of the later ones, so attempts an address is
    /// refused never count against the email's ceiling.
    pub fn attempt(&self, email: &str, address: IpAddr) -> bool {
        self.attempt_at(email, address, Instant::now())
    }

    fn attempt_at(&self, email: &str, address: IpAddr, now: Instant) -> bool {
        self.by_address.spend(&address.to_string(), now)
            && self
                .by_email_at_address
                .spend(&format!("{email} {address}"), now)
            && self.by_email.spend(email, now)
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn attempts_beyond_the_burst_are_refused_then_refilled() {
        let t = SignInThrottle::new(3);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(t.attempt_at("a@example.com", a, now));
        }
        assert!(!t.attempt_at("a@example.com", a, now));
        // Another email from the same address has its own budget.
        assert!(t.attempt_at("b@example.com", a, now));
        // One attempt comes back every 12 s.
        assert!(t.attempt_at("a@example.com", a, now + REFILL));
        assert!(!t.attempt_at("a@example.com", a, now + REFILL));
    }

    #[test]
    fn one_address_guessing_cannot_lock_the_user_out_elsewhere() {
        let t = SignInThrottle::new(5);
        let start = Instant::now();
        let attacker = ip("198.51.100.7");
        // A wrong password every 10 s for a day, from one address.
        for i in 0..8_640u32 {
            t.attempt_at(
                "admin@example.com",
                attacker,
                start + Duration::from_secs(10) * i,
            );
        }
        let later = start + Duration::from_secs(86_400);
        // The attacker's own budget is what runs out…
        assert!((0..6).any(|_| !t.attempt_at("admin@example.com", attacker, later)));
        // …not the admin's, from anywhere else.
        assert!(t.attempt_at("admin@example.com", ip("203.0.113.9"), later));
    }

    #[test]
    fn many_addresses_reach_the_per_email_ceiling() {
        let t = SignInThrottle::new(5);
        let now = Instant::now();
        let allowed = (0..100u8)
            .filter(|i| t.attempt_at("admin@example.com", ip(&format!("198.51.100.{i}")), now))
            .count();
        assert_eq!(allowed, 50, "ten times the burst, then the ceiling holds");
    }

    #[test]
    fn an_address_has_its_own_ceiling_across_emails() {
        let t = SignInThrottle::new(2);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        let allowed = (0..50)
            .filter(|i| t.attempt_at(&format!("u{i}@example.com"), a, now))
            .count();
        assert_eq!(allowed, 12);
    }

    #[test]
    fn a_flood_of_new_keys_evicts_the_oldest_instead_of_refusing_everyone() {
        let t = SignInThrottle::with_capacity(3, 100);
        let now = Instant::now();
        for i in 0..1_000u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(t.attempt_at(&format!("{i}@example.com"), address, now));
        }
        assert!(t.by_address.len() <= 100, "{}", t.by_address.len());
        assert!(t.by_email.len() <= 100);
        // Someone new still gets in.
        assert!(t.attempt_at("admin@example.com", ip("203.0.113.9"), now));
    }

    #[test]
    fn eviction_keeps_the_keys_that_spent_the_most() {
        let keyed = Keyed::new(
            Budget {
                period: Duration::from_secs(12),
                burst: 3,
            },
            10,
        );
        let now = Instant::now();
        // "busy" spent its whole burst; nine others one attempt each.
        for _ in 0..3 {
            assert!(keyed.spend("busy", now));
        }
        for i in 0..9 {
            assert!(keyed.spend(&format!("k{i}"), now));
        }
        assert!(keyed.spend("new", now));
        assert!(!keyed.spend("busy", now), "the busiest key is remembered");
    }
}
