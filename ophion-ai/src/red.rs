//! RED series (rate, errors, duration) of requests: what is measured per
//! minute of a service or an operation, and how one minute's counts become
//! the values the anomaly detectors score. The server computes the counts
//! with one aggregate query (`ophion-bin`'s AI service); both the
//! continuous watch and `/ai/analyze` score them through [`values`].
//!
//! ```
//! use ophion_ai::red::{values, METRICS};
//! let v = values(&ophion_ai::red::Minute { requests: 10.0, errors: 1.0, p95_ns: 2e6 });
//! assert_eq!(METRICS[1], "error_ratio");
//! assert_eq!(v, [10.0, 0.1, 2.0]);
//! ```

/// The RED metrics, in the order of [`values`].
pub const METRICS: [&str; 3] = ["requests", "error_ratio", "p95_ms"];

/// One minute of requests: their count, how many failed, and the 95th
/// percentile of their durations in nanoseconds (NaN when unknown).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minute {
    /// Requests that started in the minute.
    pub requests: f64,
    /// Of those, the ones whose status is error.
    pub errors: f64,
    /// 95th percentile duration, nanoseconds.
    pub p95_ns: f64,
}

impl Default for Minute {
    /// A minute without requests.
    fn default() -> Self {
        Self {
            requests: 0.0,
            errors: 0.0,
            p95_ns: f64::NAN,
        }
    }
}

/// One minute's values: requests, error ratio (NaN without requests) and
/// p95 latency in milliseconds (NaN when unknown).
pub fn values(m: &Minute) -> [f64; 3] {
    let ratio = if m.requests > 0.0 {
        m.errors / m.requests
    } else {
        f64::NAN
    };
    [m.requests, ratio, m.p95_ns / 1e6]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_minute_has_no_ratio_and_no_latency() {
        let v = values(&Minute::default());
        assert_eq!(v[0], 0.0);
        assert!(v[1].is_nan() && v[2].is_nan());
    }
}
