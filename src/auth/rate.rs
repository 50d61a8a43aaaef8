//! A per-principal token bucket for minting, so that a runaway pipeline cannot mint thousands of
//! tokens: each principal may mint `burst` tokens at once and then `per_minute` a minute.
//!
//! "Now" is a parameter. Buckets of principals that have been idle long enough to be full again
//! are dropped when the table grows, so its size is bounded by the number of recently active
//! principals.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Above this many buckets, full ones are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained mints per minute.
    pub per_minute: u32,
    /// Mints allowed at once.
    pub burst: u32,
}

struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// The buckets of every principal.
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `principal` at `now`. `Err(seconds)`: refused, retry after that many
    /// whole seconds.
    pub fn take(&self, principal: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let rate = f64::from(self.limit.per_minute) / 60.0;
        let burst = f64::from(self.limit.burst.max(1));
        // Nothing here can panic while holding the lock; if something did, keep limiting.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(principal) {
            if buckets.len() >= PRUNE_AT {
                buckets.retain(|_, b| refill(b, now, rate, burst) < burst);
            }
            buckets.insert(
                principal.to_owned(),
                Bucket {
                    tokens: burst,
                    at: now,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(principal) else {
            return Ok(());
        };
        let tokens = refill(bucket, now, rate, burst);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            bucket.at = now;
            Ok(())
        } else {
            let wait = if rate > 0.0 {
                ((1.0 - tokens) / rate).ceil().max(1.0)
            } else {
                60.0
            };
            Err(wait as u64)
        }
    }
}

/// The bucket's level at `now` (not stored).
fn refill(b: &Bucket, now: DateTime<Utc>, rate: f64, burst: f64) -> f64 {
    let elapsed = (now - b.at).num_milliseconds().max(0) as f64 / 1000.0;
    (b.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn burst_then_rate_then_recovery() {
        let limiter = RateLimiter::new(RateLimit {
            per_minute: 6,
            burst: 3,
        });
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.take("ci", t), Ok(()));
        }
        // Empty: one token every 10 s.
        assert_eq!(limiter.take("ci", t), Err(10));
        assert_eq!(limiter.take("ci", t + Duration::seconds(4)), Err(6));
        // Another principal has its own bucket.
        assert_eq!(limiter.take("other", t), Ok(()));
        assert_eq!(limiter.take("ci", t + Duration::seconds(10)), Ok(()));
        assert!(limiter.take("ci", t + Duration::seconds(10)).is_err());
        // Idle for a minute: full again, but never above the burst.
        let later = t + Duration::minutes(5);
        for _ in 0..3 {
            assert_eq!(limiter.take("ci", later), Ok(()));
        }
        assert!(limiter.take("ci", later).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = RateLimiter::new(RateLimit {
            per_minute: 60,
            burst: 2,
        });
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        for i in 0..(PRUNE_AT * 2) {
            let _ = limiter.take(&format!("p{i}"), t + Duration::seconds(i as i64));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= PRUNE_AT + 1);
    }
}
