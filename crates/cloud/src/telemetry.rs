//! What the controller measures about itself while it runs: requests per
//! service, action and status with their latencies, and the reconciler's
//! passes. The protocol layer records requests and renders everything for
//! Prometheus (`mallee_api::metrics`); the state that is already in the
//! store (nodes, instances) is read there at scrape time instead.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Distinct (service, action, status) series kept; requests beyond that
/// are counted under the action `other`, so clients sending made-up
/// actions cannot grow the table without bound.
pub const MAX_SERIES: usize = 2048;

/// Key of one request series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    /// `ec2`, `s3`, `iam`, `sts`, `metal`, or `-` when unknown.
    pub service: String,
    /// The action's name (`DescribeInstances`, `PutObject`), `-` or `other`.
    pub action: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// Count and latency histogram of one request series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSeries {
    /// Requests answered.
    pub count: u64,
    /// Sum of their latencies (seconds).
    pub latency_sum: f64,
    /// Requests whose latency was at most each of [`LATENCY_BUCKETS`]
    /// (not cumulative: one bucket per request; the last slot is `+Inf`).
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
}

/// The reconciler's passes so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcilerStats {
    /// Passes completed, failed ones included.
    pub passes: u64,
    /// Passes that failed (the store could not be read).
    pub failures: u64,
    /// Duration of the last pass.
    pub last_duration: Duration,
    /// When the last pass ended.
    pub last_end: Option<SystemTime>,
}

/// The controller's own measurements.
#[derive(Debug, Default)]
pub struct Telemetry {
    requests: Mutex<HashMap<RequestKey, RequestSeries>>,
    reconciler: Mutex<ReconcilerStats>,
}

impl Telemetry {
    /// Records one answered request.
    pub fn record_request(&self, service: &str, action: &str, status: u16, latency: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = RequestKey {
            service: service.to_owned(),
            action: if action.is_empty() { "-" } else { action }.to_owned(),
            status,
        };
        if !requests.contains_key(&key) && requests.len() >= MAX_SERIES {
            key.action = "other".to_owned();
        }
        let series = requests.entry(key).or_default();
        let seconds = latency.as_secs_f64();
        series.count += 1;
        series.latency_sum += seconds;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        series.buckets[bucket] += 1;
    }

    /// Every request series, ordered by key.
    pub fn requests(&self) -> Vec<(RequestKey, RequestSeries)> {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = requests
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Records one reconciler pass.
    pub fn record_pass(&self, duration: Duration, ok: bool) {
        let mut stats = self
            .reconciler
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stats.passes += 1;
        if !ok {
            stats.failures += 1;
        }
        stats.last_duration = duration;
        stats.last_end = Some(SystemTime::now());
    }

    /// The reconciler's passes so far.
    pub fn reconciler(&self) -> ReconcilerStats {
        self.reconciler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fall_into_one_bucket_each_and_series_are_bounded() {
        let t = Telemetry::default();
        t.record_request("ec2", "DescribeInstances", 200, Duration::from_millis(3));
        t.record_request("ec2", "DescribeInstances", 200, Duration::from_secs(30));
        t.record_request("ec2", "", 400, Duration::from_millis(1));
        let all = t.requests();
        assert_eq!(all.len(), 2);
        let (key, series) = &all[0];
        assert_eq!((key.action.as_str(), key.status), ("-", 400));
        assert_eq!(series.buckets[0], 1);
        let (_, describe) = &all[1];
        assert_eq!(describe.count, 2);
        assert_eq!(describe.buckets[2], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(
            describe.buckets[LATENCY_BUCKETS.len()],
            1,
            "30 s only in +Inf"
        );
        assert!((describe.latency_sum - 30.003).abs() < 1e-9);

        for i in 0..MAX_SERIES + 10 {
            t.record_request("ec2", &format!("Made{i}"), 400, Duration::ZERO);
        }
        let all = t.requests();
        assert_eq!(all.len(), MAX_SERIES + 1, "the overflow shares one series");
        let other = all
            .iter()
            .find(|(k, _)| k.action == "other")
            .expect("other");
        assert_eq!(other.1.count, 12);
    }

    #[test]
    fn passes_are_counted_with_their_failures() {
        let t = Telemetry::default();
        assert_eq!(t.reconciler().passes, 0);
        t.record_pass(Duration::from_millis(20), true);
        t.record_pass(Duration::from_millis(5), false);
        let stats = t.reconciler();
        assert_eq!((stats.passes, stats.failures), (2, 1));
        assert_eq!(stats.last_duration, Duration::from_millis(5));
        assert!(stats.last_end.is_some());
    }
}
