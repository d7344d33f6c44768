//! A lock-free latency histogram with fixed buckets, cheap enough for every
//! write and query, rendered by the server as a Prometheus histogram.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// Upper bounds of the buckets, in seconds (Prometheus' `le`).
pub const BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts of observed durations per bucket, their sum and count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts: observations at most `BUCKETS[i]` seconds.
    pub cumulative: [u64; BUCKETS.len()],
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of observations in seconds.
    pub sum_secs: f64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&le| secs <= le) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; BUCKETS.len()];
        let mut running = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            running += b.load(Relaxed);
            cumulative[i] = running;
        }
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Relaxed),
            sum_secs: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1); // <= 0.5 ms
        assert_eq!(s.cumulative[3], 2); // <= 5 ms
        assert_eq!(s.cumulative[BUCKETS.len() - 1], 2); // 60 s only in +Inf
        assert_eq!(s.count, 3);
        assert!((s.sum_secs - 60.0033).abs() < 1e-6);
    }
}
