//! Retry policies: when a failed delivery is tried again, decided by one pure function.
//!
//! Everything that varies between runs (the jitter, the slow lane's spread) comes from the rng
//! the caller passes in, so the schedule is testable with a seeded rng and the engine stays free
//! to use a thread-local one.

use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The standard schedule, in seconds: quick first retry for blips, then hours apart so that an
/// endpoint that is down for an afternoon still receives its messages.
const STANDARD_DELAYS_S: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
/// No policy may retry sooner than this: a zero delay would hammer a failing endpoint.
const MIN_DELAY_S: u64 = 1;
/// No single delay may exceed a week, the longest any retention setting keeps a message.
const MAX_DELAY_S: u64 = 604_800;
/// Bounds a policy's retry count so a typo cannot schedule deliveries for years.
const MAX_RETRIES: u32 = 1_000;
/// Bounds an explicit schedule so a policy stays small enough to store and show.
const MAX_SCHEDULE_LEN: usize = 100;
/// The slow lane retries at a random moment in this window, so that endpoints which have been
/// down for a long time are not all retried in the same instant.
const SLOW_LANE_MIN_S: u64 = 12 * 3_600;
const SLOW_LANE_MAX_S: u64 = 24 * 3_600;
/// Each delay is spread by this fraction either way, so that the many messages that failed
/// together during an outage do not all come back at once when the endpoint recovers.
const JITTER: f64 = 0.10;

/// How an endpoint's failed deliveries are retried.
///
/// Stored as JSON (`{"policy":"fixed","interval_s":300,"max_retries":5}`), so the variant and
/// field names are part of the stored format and must not change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum RetryPolicy {
    /// Retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (7 retries): about a day and a
    /// half of cover, which suits most receivers. The default, because it is what a receiver
    /// that never chose a policy expects.
    #[default]
    Standard,
    /// The same interval before every retry.
    Fixed {
        /// Seconds before each retry.
        interval_s: u64,
        /// How many retries follow the first attempt.
        max_retries: u32,
    },
    /// `step_s * n` before retry `n`: 60, 120, 180, 240, 300 for step 60 and 5 retries.
    Linear {
        /// Seconds added to the delay with each retry.
        step_s: u64,
        /// How many retries follow the first attempt.
        max_retries: u32,
    },
    /// `initial_s` doubling with each retry, capped at `max_interval_s`, for `max_retries`
    /// retries; then, with `slow_lane`, a retry every 12–24 h (uniformly random) forever, until
    /// the caller expires the message by retention.
    Exponential {
        /// Seconds before the first retry.
        initial_s: u64,
        /// The doubling stops at this many seconds.
        max_interval_s: u64,
        /// How many fast retries follow the first attempt.
        max_retries: u32,
        /// Whether to keep retrying twice a day or so once the fast retries are spent.
        #[serde(default)]
        slow_lane: bool,
    },
    /// Any explicit list of delays in seconds, one per retry.
    Schedule {
        /// Seconds before each retry, in order.
        delays_s: Vec<u64>,
    },
}

/// What a policy asks for before a given retry, before jitter and Retry-After.
enum Planned {
    /// A delay of this many seconds, to be jittered.
    Seconds(u64),
    /// A slow-lane retry, already spread across its window.
    SlowLane,
}

impl RetryPolicy {
    /// The policy's delay before retry `retry` (1 for the first retry), or None when the policy
    /// has no such retry.
    fn planned(&self, retry: u32) -> Option<Planned> {
        let index = usize::try_from(retry.checked_sub(1)?).ok()?;
        match self {
            Self::Standard => STANDARD_DELAYS_S.get(index).copied().map(Planned::Seconds),
            Self::Fixed {
                interval_s,
                max_retries,
            } => (retry <= *max_retries).then_some(Planned::Seconds(*interval_s)),
            Self::Linear {
                step_s,
                max_retries,
            } => {
                if retry <= *max_retries {
                    Some(Planned::Seconds(step_s.saturating_mul(u64::from(retry))))
                } else {
                    None
                }
            }
            Self::Exponential {
                initial_s,
                max_interval_s,
                max_retries,
                slow_lane,
            } => {
                if retry <= *max_retries {
                    let doubled = initial_s.saturating_mul(2u64.saturating_pow(retry - 1));
                    Some(Planned::Seconds(doubled.min(*max_interval_s)))
                } else if *slow_lane {
                    Some(Planned::SlowLane)
                } else {
                    None
                }
            }
            Self::Schedule { delays_s } => delays_s.get(index).copied().map(Planned::Seconds),
        }
    }

    /// The largest delay the policy can produce (before jitter): the ceiling for a receiver's
    /// Retry-After, so that a receiver cannot park a message beyond what its owner configured.
    fn max_delay(&self) -> Duration {
        let seconds = match self {
            Self::Standard => STANDARD_DELAYS_S.iter().copied().max().unwrap_or(0),
            Self::Fixed { interval_s, .. } => *interval_s,
            Self::Linear {
                step_s,
                max_retries,
            } => step_s.saturating_mul(u64::from(*max_retries)),
            Self::Exponential {
                max_interval_s,
                slow_lane,
                ..
            } => {
                if *slow_lane {
                    (*max_interval_s).max(SLOW_LANE_MAX_S)
                } else {
                    *max_interval_s
                }
            }
            Self::Schedule { delays_s } => delays_s.iter().copied().max().unwrap_or(0),
        };
        Duration::from_secs(seconds)
    }

    /// Checks the policy against the limits the engine relies on, returning the offending field
    /// (`retry.interval_s`, …) and a message for the form that submitted it.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            Self::Standard => Ok(()),
            Self::Fixed {
                interval_s,
                max_retries,
            } => {
                check_delay("retry.interval_s", *interval_s)?;
                check_retries(*max_retries)
            }
            Self::Linear {
                step_s,
                max_retries,
            } => {
                check_delay("retry.step_s", *step_s)?;
                check_retries(*max_retries)?;
                // The last retry waits step × retries, and no delay may exceed a week.
                if step_s.saturating_mul(u64::from(*max_retries)) > MAX_DELAY_S {
                    return Err(invalid(
                        "retry.step_s",
                        "the last retry (step × retries) must come within 7 days (604800 s)",
                    ));
                }
                Ok(())
            }
            Self::Exponential {
                initial_s,
                max_interval_s,
                max_retries,
                ..
            } => {
                check_delay("retry.initial_s", *initial_s)?;
                check_delay("retry.max_interval_s", *max_interval_s)?;
                if max_interval_s < initial_s {
                    return Err(invalid(
                        "retry.max_interval_s",
                        "must be at least the initial interval",
                    ));
                }
                check_retries(*max_retries)
            }
            Self::Schedule { delays_s } => {
                if delays_s.len() > MAX_SCHEDULE_LEN {
                    return Err(invalid(
                        "retry.delays_s",
                        format!("may list at most {MAX_SCHEDULE_LEN} delays"),
                    ));
                }
                for (i, delay_s) in delays_s.iter().enumerate() {
                    check_delay("retry.delays_s", *delay_s).map_err(|(field, message)| {
                        (field, format!("delay {}: {message}", i + 1))
                    })?;
                }
                Ok(())
            }
        }
    }

    /// How many retries follow the first attempt, or None when the policy retries until the
    /// message expires (an exponential policy with the slow lane).
    pub fn max_retries(&self) -> Option<u32> {
        match self {
            Self::Standard => Some(STANDARD_DELAYS_S.len() as u32),
            Self::Fixed { max_retries, .. } | Self::Linear { max_retries, .. } => {
                Some(*max_retries)
            }
            Self::Exponential {
                max_retries,
                slow_lane,
                ..
            } => (!*slow_lane).then_some(*max_retries),
            Self::Schedule { delays_s } => Some(u32::try_from(delays_s.len()).unwrap_or(u32::MAX)),
        }
    }

    /// A short human description for the admin panel, e.g. "every 300 s, 5 retries".
    pub fn describe(&self) -> String {
        if self.max_retries() == Some(0) {
            return "no retries".to_owned();
        }
        match self {
            Self::Standard => "5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 7 retries".to_owned(),
            Self::Fixed {
                interval_s,
                max_retries,
            } => format!("every {interval_s} s, {}", retries(*max_retries)),
            Self::Linear {
                step_s,
                max_retries,
            } => {
                if *max_retries == 1 {
                    format!("{step_s} s, 1 retry")
                } else {
                    let last_s = step_s.saturating_mul(u64::from(*max_retries));
                    format!(
                        "{step_s} s growing by {step_s} s to {last_s} s, {}",
                        retries(*max_retries)
                    )
                }
            }
            Self::Exponential {
                initial_s,
                max_interval_s,
                max_retries,
                slow_lane,
            } => {
                let slow = if *slow_lane {
                    ", then every 12–24 h"
                } else {
                    ""
                };
                if *max_retries == 0 {
                    "every 12–24 h".to_owned()
                } else {
                    format!(
                        "{initial_s} s doubling to {max_interval_s} s, {}{slow}",
                        retries(*max_retries)
                    )
                }
            }
            Self::Schedule { delays_s } => {
                let seconds = |d: &u64| format!("{d} s");
                let join = |ds: &[u64]| ds.iter().map(seconds).collect::<Vec<_>>().join(", ");
                // Long schedules show their start and end, which is what tells them apart.
                let shown = match delays_s.as_slice() {
                    [rest @ .., last] if rest.len() > 5 => {
                        format!("{}, … {}", join(&rest[..5]), seconds(last))
                    }
                    all => join(all),
                };
                let count = u32::try_from(delays_s.len()).unwrap_or(u32::MAX);
                format!("{shown}, {}", retries(count))
            }
        }
    }
}

/// "1 retry" or "n retries", so descriptions read naturally.
fn retries(count: u32) -> String {
    if count == 1 {
        "1 retry".to_owned()
    } else {
        format!("{count} retries")
    }
}

/// A validation error for `field`.
fn invalid(field: &str, message: impl Into<String>) -> (String, String) {
    (field.to_owned(), message.into())
}

/// Every delay a policy configures must lie between 1 second and 7 days.
fn check_delay(field: &str, seconds: u64) -> Result<(), (String, String)> {
    if seconds < MIN_DELAY_S {
        Err(invalid(field, "must be at least 1 second"))
    } else if seconds > MAX_DELAY_S {
        Err(invalid(field, "must be at most 7 days (604800 s)"))
    } else {
        Ok(())
    }
}

/// A policy may make at most [`MAX_RETRIES`] retries; zero means it never retries.
fn check_retries(max_retries: u32) -> Result<(), (String, String)> {
    if max_retries > MAX_RETRIES {
        Err(invalid(
            "retry.max_retries",
            format!("must be at most {MAX_RETRIES}"),
        ))
    } else {
        Ok(())
    }
}

/// The policy's delay spread by ±[`JITTER`], keeping sub-second precision (a 1 s delay becomes
/// 0.9–1.1 s) so that messages that failed together spread out even on short schedules.
fn jittered(seconds: u64, rng: &mut impl Rng) -> Duration {
    // Validation keeps delays at 1 s or more; the floor covers a policy that skipped it.
    let base = seconds.max(MIN_DELAY_S) as f64;
    let factor: f64 = rng.gen_range(1.0 - JITTER..=1.0 + JITTER);
    Duration::try_from_secs_f64(base * factor).unwrap_or(Duration::MAX)
}

/// The delay before the next attempt, or None when the policy's retries are exhausted.
///
/// `attempts_made` counts the attempts already made, the first one included: after the first
/// failed attempt it is 1, and the first retry uses the policy's first delay (0 is treated as 1).
///
/// `retry_after` is the receiver's Retry-After, which the caller passes only for 429, 502, 503
/// and 504 responses. It is honoured within the policy's bounds: the delay becomes
/// max(jittered policy delay, min(retry_after, largest policy delay)), so a receiver can ask for
/// more time but cannot hurry the engine or park a message beyond what its owner configured.
/// It never revives an exhausted policy.
pub fn next_delay(
    policy: &RetryPolicy,
    attempts_made: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    let delay = match policy.planned(attempts_made.max(1))? {
        Planned::Seconds(seconds) => jittered(seconds, rng),
        // Already spread across its window, so no further jitter.
        Planned::SlowLane => {
            Duration::from_secs_f64(rng.gen_range(SLOW_LANE_MIN_S as f64..=SLOW_LANE_MAX_S as f64))
        }
    };
    Some(match retry_after {
        Some(asked) => delay.max(asked.min(policy.max_delay())),
        None => delay,
    })
}

/// Parses a Retry-After header value: delta-seconds (`120`) or an HTTP-date. A date in the past
/// means "now" (Duration::ZERO); anything else unreadable is None, so the policy decides alone.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 still means "a very long time"; the policy caps it anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The policies the admin panel offers ready-made: (id, label, policy).
pub fn presets() -> Vec<(&'static str, &'static str, RetryPolicy)> {
    vec![
        (
            "standard",
            "Standard: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h",
            RetryPolicy::Standard,
        ),
        (
            "every-5-min",
            "Every 5 minutes, 5 retries",
            RetryPolicy::Fixed {
                interval_s: 300,
                max_retries: 5,
            },
        ),
        (
            "linear",
            "Linear 1–5 minutes",
            RetryPolicy::Linear {
                step_s: 60,
                max_retries: 5,
            },
        ),
        (
            "growing",
            "Growing 5 s to 8 min, 50 retries, then twice a day",
            RetryPolicy::Exponential {
                initial_s: 5,
                max_interval_s: 480,
                max_retries: 50,
                slow_lane: true,
            },
        ),
        (
            "ten-retries",
            "10 retries, growing 5 s to 1 h",
            RetryPolicy::Exponential {
                initial_s: 5,
                max_interval_s: 3_600,
                max_retries: 10,
                slow_lane: false,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn seeded() -> StdRng {
        StdRng::seed_from_u64(0x5eed)
    }

    fn growing() -> RetryPolicy {
        RetryPolicy::Exponential {
            initial_s: 5,
            max_interval_s: 480,
            max_retries: 50,
            slow_lane: true,
        }
    }

    /// Asserts that `actual` is `expected_s` seconds give or take the 10% jitter.
    fn assert_jittered(actual: Duration, expected_s: u64) {
        let expected = expected_s as f64;
        let got = actual.as_secs_f64();
        let (low, high) = (expected * 0.9 - 1e-6, expected * 1.1 + 1e-6);
        assert!(
            (low..=high).contains(&got),
            "expected {expected_s} s ±10%, got {got} s"
        );
    }

    /// Asserts that the policy retries exactly with `expected_s` (give or take jitter), then
    /// stops.
    fn assert_schedule(policy: &RetryPolicy, expected_s: &[u64]) {
        let mut rng = seeded();
        for (i, &expected) in expected_s.iter().enumerate() {
            let attempts_made = u32::try_from(i + 1).unwrap();
            let delay = next_delay(policy, attempts_made, None, &mut rng)
                .unwrap_or_else(|| panic!("{policy:?} should retry after attempt {attempts_made}"));
            assert_jittered(delay, expected);
        }
        let exhausted_at = u32::try_from(expected_s.len() + 1).unwrap();
        assert_eq!(next_delay(policy, exhausted_at, None, &mut rng), None);
        assert_eq!(next_delay(policy, exhausted_at + 1, None, &mut rng), None);
    }

    fn field_of(policy: RetryPolicy) -> String {
        policy.validate().unwrap_err().0
    }

    #[test]
    fn standard_policy_follows_the_documented_schedule() {
        assert_schedule(
            &RetryPolicy::Standard,
            &[5, 300, 1_800, 7_200, 18_000, 36_000, 36_000],
        );
    }

    #[test]
    fn fixed_policy_repeats_its_interval_until_exhausted() {
        let policy = RetryPolicy::Fixed {
            interval_s: 300,
            max_retries: 5,
        };
        assert_schedule(&policy, &[300; 5]);
    }

    #[test]
    fn linear_policy_adds_one_step_per_retry() {
        let policy = RetryPolicy::Linear {
            step_s: 60,
            max_retries: 5,
        };
        assert_schedule(&policy, &[60, 120, 180, 240, 300]);
    }

    #[test]
    fn exponential_policy_doubles_up_to_its_cap() {
        let policy = RetryPolicy::Exponential {
            initial_s: 5,
            max_interval_s: 480,
            max_retries: 50,
            slow_lane: false,
        };
        let mut expected: Vec<u64> = vec![5, 10, 20, 40, 80, 160, 320];
        expected.resize(50, 480);
        assert_schedule(&policy, &expected);
    }

    #[test]
    fn ten_retries_preset_grows_from_5_seconds_and_stops() {
        let policy = RetryPolicy::Exponential {
            initial_s: 5,
            max_interval_s: 3_600,
            max_retries: 10,
            slow_lane: false,
        };
        assert_schedule(&policy, &[5, 10, 20, 40, 80, 160, 320, 640, 1_280, 2_560]);
    }

    #[test]
    fn exponential_policy_does_not_overflow_after_many_doublings() {
        let policy = RetryPolicy::Exponential {
            initial_s: 1,
            max_interval_s: 604_800,
            max_retries: 1_000,
            slow_lane: false,
        };
        let delay = next_delay(&policy, 1_000, None, &mut seeded()).unwrap();
        assert_jittered(delay, 604_800);
    }

    #[test]
    fn schedule_of_two_one_second_delays_retries_twice_with_sub_second_jitter() {
        let policy = RetryPolicy::Schedule {
            delays_s: vec![1, 1],
        };
        let mut rng = seeded();
        let first = next_delay(&policy, 1, None, &mut rng).unwrap();
        let second = next_delay(&policy, 2, None, &mut rng).unwrap();
        assert_jittered(first, 1);
        assert_jittered(second, 1);
        // Not rounded to whole seconds, and not the same each time.
        assert!(first.subsec_nanos() != 0 || second.subsec_nanos() != 0);
        assert_ne!(first, second);
        assert_eq!(next_delay(&policy, 3, None, &mut rng), None);
    }

    #[test]
    fn policies_without_retries_never_retry() {
        let mut rng = seeded();
        for policy in [
            RetryPolicy::Fixed {
                interval_s: 300,
                max_retries: 0,
            },
            RetryPolicy::Linear {
                step_s: 60,
                max_retries: 0,
            },
            RetryPolicy::Exponential {
                initial_s: 5,
                max_interval_s: 480,
                max_retries: 0,
                slow_lane: false,
            },
            RetryPolicy::Schedule { delays_s: vec![] },
        ] {
            assert_eq!(next_delay(&policy, 1, None, &mut rng), None, "{policy:?}");
            assert_eq!(policy.max_retries(), Some(0));
            assert_eq!(policy.describe(), "no retries");
        }
    }

    #[test]
    fn zero_attempts_made_is_treated_as_the_first_attempt() {
        let delay = next_delay(&RetryPolicy::Standard, 0, None, &mut seeded()).unwrap();
        assert_jittered(delay, 5);
    }

    #[test]
    fn slow_lane_retries_every_12_to_24_hours_after_the_last_fast_retry() {
        let policy = growing();
        let mut rng = seeded();
        assert_jittered(next_delay(&policy, 50, None, &mut rng).unwrap(), 480);
        let mut seen = Vec::new();
        for attempts_made in [51, 52, 60, 500, u32::MAX] {
            let delay = next_delay(&policy, attempts_made, None, &mut rng).unwrap();
            assert!(
                (43_200.0..=86_400.0).contains(&delay.as_secs_f64()),
                "slow-lane delay {delay:?} is outside 12–24 h"
            );
            seen.push(delay);
        }
        seen.dedup();
        assert!(seen.len() > 1, "slow-lane delays should vary");
    }

    #[test]
    fn jitter_spreads_delays_on_both_sides_of_the_policy_value() {
        let policy = RetryPolicy::Fixed {
            interval_s: 300,
            max_retries: 5,
        };
        let mut rng = seeded();
        let delays: Vec<Duration> = (0..200)
            .map(|_| next_delay(&policy, 1, None, &mut rng).unwrap())
            .collect();
        for delay in &delays {
            assert_jittered(*delay, 300);
        }
        assert!(delays.iter().any(|d| *d < Duration::from_secs(300)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(300)));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let (mut a, mut b) = (seeded(), seeded());
        for attempts_made in 1..=8 {
            assert_eq!(
                next_delay(&RetryPolicy::Standard, attempts_made, None, &mut a),
                next_delay(&RetryPolicy::Standard, attempts_made, None, &mut b)
            );
        }
    }

    #[test]
    fn retry_after_longer_than_the_policy_allows_is_capped_at_the_policy_maximum() {
        let mut rng = seeded();
        let hours = |h: u64| Duration::from_secs(h * 3_600);

        let standard = next_delay(&RetryPolicy::Standard, 1, Some(hours(20)), &mut rng);
        assert_eq!(standard, Some(hours(10)));

        let slow_lane = next_delay(&growing(), 1, Some(hours(48)), &mut rng);
        assert_eq!(slow_lane, Some(hours(24)));

        let fixed = RetryPolicy::Fixed {
            interval_s: 300,
            max_retries: 5,
        };
        let delay = next_delay(&fixed, 1, Some(hours(1)), &mut rng).unwrap();
        assert!(delay >= Duration::from_secs(300));
        assert_jittered(delay, 300);

        let schedule = RetryPolicy::Schedule {
            delays_s: vec![1, 90, 30],
        };
        let delay = next_delay(&schedule, 1, Some(hours(1)), &mut rng);
        assert_eq!(delay, Some(Duration::from_secs(90)));
    }

    #[test]
    fn retry_after_shorter_than_the_policy_delay_is_ignored() {
        let (mut a, mut b) = (seeded(), seeded());
        let asked = Some(Duration::from_secs(10));
        let with = next_delay(&RetryPolicy::Standard, 3, asked, &mut a).unwrap();
        let without = next_delay(&RetryPolicy::Standard, 3, None, &mut b).unwrap();
        assert_eq!(with, without);
        assert_jittered(with, 1_800);
    }

    #[test]
    fn retry_after_within_the_policy_bounds_postpones_the_retry() {
        let asked = Some(Duration::from_secs(120));
        let delay = next_delay(&RetryPolicy::Standard, 1, asked, &mut seeded());
        assert_eq!(delay, Some(Duration::from_secs(120)));
    }

    #[test]
    fn retry_after_never_revives_an_exhausted_policy() {
        let policy = RetryPolicy::Fixed {
            interval_s: 300,
            max_retries: 2,
        };
        let asked = Some(Duration::from_secs(60));
        assert_eq!(next_delay(&policy, 3, asked, &mut seeded()), None);
        assert_eq!(
            next_delay(&RetryPolicy::Standard, 8, asked, &mut seeded()),
            None
        );
    }

    #[test]
    fn parse_retry_after_reads_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn parse_retry_after_reads_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:07 GMT", now),
            Some(Duration::from_secs(90))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(3_600));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(3_600))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn parse_retry_after_rejects_garbage() {
        let now = SystemTime::now();
        for value in ["", "   ", "soon", "-5", "1.5", "+5", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }

    #[test]
    fn validate_accepts_the_default_and_every_preset() {
        assert_eq!(RetryPolicy::default(), RetryPolicy::Standard);
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
        for (id, _, policy) in presets() {
            assert_eq!(policy.validate(), Ok(()), "preset {id}");
        }
    }

    #[test]
    fn validate_allows_policies_that_never_retry() {
        let never = [
            RetryPolicy::Fixed {
                interval_s: 300,
                max_retries: 0,
            },
            RetryPolicy::Schedule { delays_s: vec![] },
        ];
        for policy in never {
            assert_eq!(policy.validate(), Ok(()), "{policy:?}");
        }
    }

    #[test]
    fn validate_errors_name_the_offending_field() {
        use RetryPolicy::*;
        let fixed = |interval_s, max_retries| Fixed {
            interval_s,
            max_retries,
        };
        let exponential = |initial_s, max_interval_s, max_retries| Exponential {
            initial_s,
            max_interval_s,
            max_retries,
            slow_lane: false,
        };
        assert_eq!(field_of(fixed(0, 5)), "retry.interval_s");
        assert_eq!(field_of(fixed(604_801, 5)), "retry.interval_s");
        assert_eq!(field_of(fixed(300, 1_001)), "retry.max_retries");
        assert_eq!(fixed(604_800, 1_000).validate(), Ok(()));
        assert_eq!(
            field_of(Linear {
                step_s: 0,
                max_retries: 5
            }),
            "retry.step_s"
        );
        assert_eq!(
            field_of(Linear {
                step_s: 604_800,
                max_retries: 2
            }),
            "retry.step_s"
        );
        assert_eq!(field_of(exponential(0, 480, 5)), "retry.initial_s");
        assert_eq!(field_of(exponential(5, 604_801, 5)), "retry.max_interval_s");
        assert_eq!(field_of(exponential(10, 5, 5)), "retry.max_interval_s");
        assert_eq!(field_of(exponential(5, 480, 1_001)), "retry.max_retries");
        assert_eq!(
            field_of(Schedule {
                delays_s: vec![1; 101]
            }),
            "retry.delays_s"
        );
        assert_eq!(
            Schedule {
                delays_s: vec![1; 100]
            }
            .validate(),
            Ok(())
        );

        let (field, message) = Schedule {
            delays_s: vec![1, 0, 1],
        }
        .validate()
        .unwrap_err();
        assert_eq!(field, "retry.delays_s");
        assert!(message.contains("delay 2"), "{message}");
    }

    #[test]
    fn max_retries_is_unbounded_only_with_the_slow_lane() {
        assert_eq!(RetryPolicy::Standard.max_retries(), Some(7));
        assert_eq!(growing().max_retries(), None);
        let expected: [Option<u32>; 5] = [Some(7), Some(5), Some(5), None, Some(10)];
        let actual: Vec<Option<u32>> = presets().iter().map(|(_, _, p)| p.max_retries()).collect();
        assert_eq!(actual, expected);
        let schedule = RetryPolicy::Schedule {
            delays_s: vec![1, 1],
        };
        assert_eq!(schedule.max_retries(), Some(2));
    }

    #[test]
    fn describe_gives_short_human_text() {
        let described: Vec<String> = presets().iter().map(|(_, _, p)| p.describe()).collect();
        assert_eq!(
            described,
            [
                "5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 7 retries",
                "every 300 s, 5 retries",
                "60 s growing by 60 s to 300 s, 5 retries",
                "5 s doubling to 480 s, 50 retries, then every 12–24 h",
                "5 s doubling to 3600 s, 10 retries",
            ]
        );
        let short = RetryPolicy::Schedule {
            delays_s: vec![1, 1],
        };
        assert_eq!(short.describe(), "1 s, 1 s, 2 retries");
        let long = RetryPolicy::Schedule {
            delays_s: (1..=10).collect(),
        };
        assert_eq!(
            long.describe(),
            "1 s, 2 s, 3 s, 4 s, 5 s, … 10 s, 10 retries"
        );
    }

    #[test]
    fn presets_have_unique_ids() {
        let mut ids: Vec<&str> = presets().iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), presets().len());
    }

    #[test]
    fn json_forms_round_trip_exactly() {
        let forms = [
            (r#"{"policy":"standard"}"#, RetryPolicy::Standard),
            (
                r#"{"policy":"fixed","interval_s":300,"max_retries":5}"#,
                RetryPolicy::Fixed {
                    interval_s: 300,
                    max_retries: 5,
                },
            ),
            (
                r#"{"policy":"linear","step_s":60,"max_retries":5}"#,
                RetryPolicy::Linear {
                    step_s: 60,
                    max_retries: 5,
                },
            ),
            (
                r#"{"policy":"exponential","initial_s":5,"max_interval_s":480,"max_retries":50,"slow_lane":true}"#,
                growing(),
            ),
            (
                r#"{"policy":"schedule","delays_s":[1,1]}"#,
                RetryPolicy::Schedule {
                    delays_s: vec![1, 1],
                },
            ),
        ];
        for (json, policy) in forms {
            assert_eq!(serde_json::to_string(&policy).unwrap(), json);
            assert_eq!(serde_json::from_str::<RetryPolicy>(json).unwrap(), policy);
        }
    }

    #[test]
    fn slow_lane_defaults_to_off_when_missing_from_json() {
        let json =
            r#"{"policy":"exponential","initial_s":5,"max_interval_s":3600,"max_retries":10}"#;
        let policy: RetryPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(policy.max_retries(), Some(10));
        assert_eq!(policy, presets()[4].2);
    }

    #[test]
    fn unknown_policies_are_rejected() {
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"policy":"sometimes"}"#).is_err());
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"interval_s":300}"#).is_err());
    }
}
