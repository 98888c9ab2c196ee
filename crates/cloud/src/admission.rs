//! Which requests the controller takes on: at most a set number at once
//! (past that, new requests are refused at once instead of queueing, so
//! latency stays bounded under a spike), and, when the admin sets one, a
//! rate per account (a token bucket: a steady rate with a burst). The
//! protocol layers turn a refusal into each service's throttling error
//! (`RequestLimitExceeded`, `SlowDown`, `Throttling`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Requests handled at once unless the admin says otherwise.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// A steady request rate with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, on average.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

// A rate is finite and above zero (parsing refuses anything else), so its
// equality is total.
impl Eq for RateLimit {}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `RATE` or `RATE:BURST` (burst defaults to twice the rate, at least 1).
    fn from_str(s: &str) -> Result<Self, String> {
        let (rate, burst) = match s.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (s, None),
        };
        let per_second: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: the rate must be a number of requests per second"))?;
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!("{s:?}: the rate must be above zero"));
        }
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(|| format!("{s:?}: the burst must be a whole number above zero"))?,
            None => (per_second * 2.0).ceil().max(1.0) as u32,
        };
        Ok(Self { per_second, burst })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The controller's admission of requests.
#[derive(Debug)]
pub struct Admission {
    max_in_flight: usize,
    in_flight: AtomicUsize,
    per_account: Option<RateLimit>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A request being handled; dropping it makes room for another.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONCURRENT_REQUESTS, None)
    }
}

impl Admission {
    /// At most `max_in_flight` requests at once, and `per_account` if set.
    pub fn new(max_in_flight: usize, per_account: Option<RateLimit>) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            in_flight: AtomicUsize::new(0),
            per_account,
            buckets: Mutex::default(),
        }
    }

    /// Room for one more request, or `None` when the controller is full.
    pub fn enter(&self) -> Option<InFlight<'_>> {
        let mut now = self.in_flight.load(Ordering::Acquire);
        loop {
            if now >= self.max_in_flight {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                now,
                now + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(InFlight(&self.in_flight)),
                Err(seen) => now = seen,
            }
        }
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether `account` may make a request now (always, without a
    /// per-account limit); takes one token when it may.
    pub fn allow_account(&self, account: &str) -> bool {
        self.allow_account_at(account, Instant::now())
    }

    fn allow_account_at(&self, account: &str, now: Instant) -> bool {
        let Some(limit) = self.per_account else {
            return true;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(account.to_owned()).or_insert(Bucket {
            tokens: f64::from(limit.burst),
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(f64::from(limit.burst));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_parse_with_and_without_a_burst() {
        assert_eq!(
            "10".parse::<RateLimit>(),
            Ok(RateLimit {
                per_second: 10.0,
                burst: 20
            })
        );
        assert_eq!(
            "0.5:3".parse::<RateLimit>(),
            Ok(RateLimit {
                per_second: 0.5,
                burst: 3
            })
        );
        for bad in ["0", "-1", "x", "5:0", "5:x", "inf"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn in_flight_requests_are_capped_and_released() {
        let a = Admission::new(2, None);
        let first = a.enter().expect("first");
        let second = a.enter().expect("second");
        assert!(a.enter().is_none(), "full");
        drop(first);
        assert_eq!(a.in_flight(), 1);
        let third = a.enter().expect("room again");
        drop((second, third));
        assert_eq!(a.in_flight(), 0);
    }

    #[test]
    fn each_account_has_its_own_bucket_that_refills() {
        let a = Admission::new(10, Some("2:3".parse().expect("limit")));
        let t0 = Instant::now();
        assert!((0..3).all(|_| a.allow_account_at("111", t0)), "the burst");
        assert!(!a.allow_account_at("111", t0), "then refused");
        assert!(a.allow_account_at("222", t0), "another account is not");
        // 2 per second: one more token after half a second.
        let later = t0 + Duration::from_millis(500);
        assert!(a.allow_account_at("111", later));
        assert!(!a.allow_account_at("111", later));
        // Never more than the burst, however long the quiet.
        let much_later = t0 + Duration::from_secs(3600);
        assert_eq!(
            (0..10)
                .filter(|_| a.allow_account_at("111", much_later))
                .count(),
            3
        );
        assert!(Admission::new(1, None).allow_account("111"), "no limit set");
    }
}
