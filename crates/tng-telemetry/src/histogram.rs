//! A fixed-bucket duration histogram updated with two relaxed atomic adds.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Request durations: sub-millisecond proxying up to slow streamed responses.
pub(crate) const REQUEST_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Connection lifetimes: one request up to long-lived tunnels.
pub(crate) const CONNECTION_BOUNDS: &[f64] = &[
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    bounds_ns: Vec<u64>,
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`. The total count is their sum,
    /// so `_count` always equals the `+Inf` bucket even while being updated.
    buckets: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

pub(crate) struct HistogramSnapshot {
    pub(crate) sum_seconds: f64,
    pub(crate) count: u64,
    pub(crate) buckets: Vec<(f64, u64)>,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            bounds_ns: bounds.iter().map(|b| (b * 1e9) as u64).collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = self.bounds_ns.partition_point(|&b| b < ns);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Relaxed);
        }
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut count = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            let n = bucket.load(Relaxed);
            count += n;
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        HistogramSnapshot {
            sum_seconds: self.sum_ns.load(Relaxed) as f64 / 1e9,
            count,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_overflow_goes_to_inf() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(1000));
        h.observe(Duration::from_micros(1001));
        h.observe(Duration::from_secs(1));
        h.observe(Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets, [(0.001, 2), (0.01, 1), (f64::INFINITY, 1)]);
        assert!((s.sum_seconds - 1.002001).abs() < 1e-9);
    }
}
