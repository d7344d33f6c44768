//! Confirmation of the watch's flags: a series' detector raises a flag,
//! and the series' own recent values confirm it before it becomes an
//! insight (a minute of noise, or a wobble the detector had not learnt
//! yet, is no incident). Chosen and scored by the noise test
//! (`ophion-bin/tests/watch_noise.rs`, docs/benchmarks.md).

use std::collections::VecDeque;

use ophion_ai::anomaly::{Detector, DetectorConfig};

/// A watched series: its detector, its recent values, and the minute
/// before which it is not reported again.
#[derive(Debug)]
pub(super) struct Watched {
    pub(super) detector: Detector,
    pub(super) recent: VecDeque<f64>,
    pub(super) quiet_until: i64,
}

/// The watch's detector: the server's minute setting without its hold
/// (the watch keeps a series quiet after a report itself, and needs the
/// flags of consecutive minutes to confirm one).
pub(super) fn watch_config() -> DetectorConfig {
    DetectorConfig {
        hold: 0,
        ..DetectorConfig::minutes()
    }
}

/// Minutes of recent values kept per series, for the confirmation.
pub(super) const RECENT: usize = 60;

impl Watched {
    /// Whether the last `confirm` values all lie `spread` robust
    /// deviations (1.4826 MAD, at least 1% of the median) or more from the
    /// median of the values before them, on the same side: a flag the
    /// detector raised on a minute of noise, or on a wobble it had not
    /// learnt yet, is not confirmed.
    pub(super) fn confirmed(&self, confirm: usize, spread: f64) -> bool {
        let n = self.recent.len();
        if n < confirm + 10 {
            return false;
        }
        let mut before: Vec<f64> = self.recent.iter().take(n - confirm).copied().collect();
        before.sort_by(f64::total_cmp);
        let median = before[before.len() / 2];
        let mut dev: Vec<f64> = before.iter().map(|v| (v - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let scale = (1.4826 * dev[dev.len() / 2])
            .max(0.01 * median.abs())
            .max(1e-9);
        // A single minute is judged against the spread of every value too:
        // a series that is mostly one value (no errors most minutes) has
        // no median deviation, and any other value would look extreme.
        let scale = if confirm == 1 {
            let mean = before.iter().sum::<f64>() / before.len() as f64;
            let var =
                before.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / before.len() as f64;
            scale.max(var.sqrt())
        } else {
            scale
        };
        let last: Vec<f64> = self.recent.iter().skip(n - confirm).copied().collect();
        last.iter().all(|v| (v - median) / scale >= spread)
            || last.iter().all(|v| (median - v) / scale >= spread)
    }
}

/// A flag is confirmed when the series' last `CONFIRM_MINUTES` values
/// all lie `CONFIRM_SPREAD` robust deviations or more from the median of
/// the hour before them, on the same side. Chosen on the development
/// seeds of the noise test (`ophion-bin/tests/watch_noise.rs`,
/// docs/benchmarks.md): a minute of noise, or a wobble the detector had
/// not learnt yet, is no incident; a fault that lasts is reported two
/// minutes later.
pub(super) const CONFIRM_MINUTES: usize = 3;
pub(super) const CONFIRM_SPREAD: f64 = 4.0;
/// One minute alone is confirmed this far out (in robust deviations, or
/// standard deviations when those are larger): a latency spike of many
/// times the usual is an incident even if it lasts a minute.
pub(super) const CONFIRM_EXTREME: f64 = 20.0;
/// Minutes a reported series stays quiet.
pub(super) const QUIET_MINUTES: i64 = 15;
