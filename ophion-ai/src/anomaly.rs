//! Anomaly detection on time series, one point at a time.
//!
//! A [`Detector`] keeps a fixed amount of state per series (a few running
//! statistics, a short window and, for series sampled regularly enough to
//! have one, one day of seasonal slots), so it can watch every RED series
//! of every service. For each point it:
//!
//! 1. measures how far the value is from what two models expect: the
//!    recent level (an exponentially weighted mean, with a weighted mean
//!    absolute deviation as its scale) and the same time yesterday (once a
//!    day has been seen). The smaller of the two standardised errors
//!    counts, so a daily ramp the seasonal model explains is not an
//!    anomaly;
//! 2. adds a *shift* term (a short-term mean away from the long-term
//!    level, in long-term deviations: drifts and level changes no single
//!    point shows) and a *novelty* term (values outside the range seen so
//!    far: level shifts and spikes score at their first point);
//! 3. averages that raw error over the last few points and compares it
//!    with a running high quantile of its own history, which calibrates
//!    scores across series of any noise level: a series that spikes every
//!    day is not anomalous at its next spike;
//! 4. checks whether the value landed where no value has landed before:
//!    the range seen so far is cut into equal regions, and a value in a
//!    region never visited (a switch stuck half way, a level between the
//!    usual ones) scores high even when no model's error is large;
//! 5. watches for the series going flat: a run of unchanged values (a
//!    stuck sensor, a counter that stopped) far longer than any run the
//!    series showed before is an anomaly of its own kind
//!    ([`AnomalyKind::Flatline`]), reported once when the run gets that
//!    long; no model error shows it, since a flat value is close to the
//!    level it stopped at;
//! 6. after a detection, holds the score down for a while (longer for
//!    series watched longer): one anomaly is reported once, not at every
//!    point it lasts.
//!
//! Scores are in `[0, 1]`, never NaN (non-finite values are skipped and
//! score 0), and the same input always gives the same output. The
//! defaults are the one configuration scored on the whole NAB corpus
//! (docs/benchmarks.md).

use serde::{Deserialize, Serialize};

/// Detector settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Weight of the newest point in the level's running mean.
    pub level_alpha: f64,
    /// Weight of the newest error in the running scales (mean absolute
    /// deviations) of the level and seasonal models.
    pub scale_alpha: f64,
    /// Weight of the newest point in the short-term mean of the shift term.
    pub shift_fast: f64,
    /// Weight of the newest point in the long-term level of the shift term
    /// and in its scale.
    pub shift_slow: f64,
    /// Weight of the shift term in the raw error.
    pub shift_weight: f64,
    /// Weight of the novelty term (values outside the range seen so far).
    pub novelty_weight: f64,
    /// Points averaged for the short-term raw error.
    pub short_window: usize,
    /// Weight of the newest point in the long-run mean and variance of the
    /// raw error.
    pub long_alpha: f64,
    /// Quantile of the short-term error tracked as "as bad as it usually
    /// gets".
    pub quantile: f64,
    /// Step of that quantile's estimate, relative to the error's typical
    /// size.
    pub quantile_rate: f64,
    /// Points seen before any score is given.
    pub warmup: usize,
    /// Points held down after a detection, at least.
    pub hold: usize,
    /// The hold grows to this fraction of the points seen so far.
    pub hold_fraction: f64,
    /// Score at or above which a point is labelled anomalous (and the hold
    /// starts).
    pub threshold: f64,
    /// Most seasonal slots kept per series (one day at the series' sampling
    /// step); series with more steps per day get no seasonal model.
    pub max_season: usize,
    /// Equal regions the range seen so far is cut into (at most 62; 0 turns
    /// the region check off). A value landing in a region no earlier value
    /// landed in scores at least `region_score`.
    pub regions: usize,
    /// Points seen before the region check speaks.
    pub region_warmup: usize,
    /// Score of a value in a region never visited.
    pub region_score: f64,
    /// Shortest run of unchanged values reported as a flatline (0 turns
    /// the check off).
    pub flat_min: usize,
    /// A run is a flatline once it is this many times longer than the
    /// longest run of unchanged values seen before it.
    pub flat_factor: f64,
    /// Score of a flatline.
    pub flat_score: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            level_alpha: 0.2,
            scale_alpha: 0.05,
            shift_fast: 0.1,
            shift_slow: 0.01,
            shift_weight: 0.8,
            novelty_weight: 4.0,
            short_window: 4,
            long_alpha: 0.005,
            quantile: 0.99,
            quantile_rate: 0.02,
            warmup: 64,
            hold: 60,
            hold_fraction: 0.03,
            threshold: 0.25,
            max_season: 2016,
            regions: 24,
            region_warmup: 300,
            region_score: 0.5,
            flat_min: 12,
            flat_factor: 3.0,
            flat_score: 0.6,
        }
    }
}

/// What kind of anomaly a point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// The value left what the models expect: spikes, dips, level shifts,
    /// changed variance, broken seasonality.
    Deviation,
    /// The value stopped changing for far longer than it ever did: a
    /// stuck sensor, a stalled counter.
    Flatline,
}

impl DetectorConfig {
    /// The server's setting for per-minute series (the watch's RED series
    /// and watched metrics, the RED series of `analyze`, log pattern
    /// rates): the defaults, warm after half an hour and holding a quarter
    /// of an hour after a report (not a fraction of the history, which on
    /// minute series would mean hours of silence). Scored on NAB beside
    /// the defaults (docs/benchmarks.md); the watch adds its confirmation
    /// (`ophion-bin`'s `ai/watch.rs`), scored by its own noise test.
    pub fn minutes() -> Self {
        Self {
            warmup: 30,
            hold: 15,
            hold_fraction: 0.0,
            ..Self::default()
        }
    }
}

/// The verdict on one point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointScore {
    /// Anomaly score in `[0, 1]`.
    pub score: f64,
    /// Whether `score` reached the configured threshold.
    pub anomalous: bool,
    /// The kind, for an anomalous point.
    pub kind: Option<AnomalyKind>,
    /// Lower end of the range the detector expected the value in (NaN
    /// before the first point or for a skipped non-finite value).
    pub expected_low: f64,
    /// Upper end of the expected range.
    pub expected_high: f64,
}

impl PointScore {
    fn quiet() -> Self {
        Self {
            score: 0.0,
            anomalous: false,
            kind: None,
            expected_low: f64::NAN,
            expected_high: f64::NAN,
        }
    }
}

/// A running, exponentially weighted mean.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ewm {
    mean: f64,
    init: bool,
}

impl Ewm {
    fn update(&mut self, x: f64, alpha: f64) {
        if self.init {
            self.mean += alpha * (x - self.mean);
        } else {
            self.mean = x;
            self.init = true;
        }
    }
}

/// Streaming anomaly detector for one series. Its state is bounded: at
/// most `max_season + short_window` numbers plus a few dozen scalars, and
/// it serializes, so a server can persist it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detector {
    cfg: DetectorConfig,
    seen: u64,
    last_ts: Option<i64>,
    /// Smallest step between timestamps seen, in the caller's unit.
    step: Option<i64>,
    /// Seconds per caller time unit, for finding the day length.
    unit_secs: f64,
    level: Ewm,
    level_dev: Ewm,
    season: Vec<f64>,
    season_dev: Ewm,
    fast: Ewm,
    slow: Ewm,
    slow_dev: Ewm,
    min: f64,
    max: f64,
    /// Regions of the range visited: bit `i + 1` for region `i`, bit 0 for
    /// below the range and bit `regions + 1` for above it.
    visited: u64,
    short: Vec<f64>,
    short_at: usize,
    err_mean: Ewm,
    err_var: Ewm,
    high: f64,
    hold_left: usize,
    /// The last value and how many points in a row had it.
    #[serde(default)]
    last_value: f64,
    #[serde(default)]
    run: usize,
    /// The longest finished run of unchanged values.
    #[serde(default)]
    longest_run: usize,
    /// Whether the current run was reported.
    #[serde(default)]
    run_reported: bool,
}

impl Detector {
    /// A detector for timestamps in seconds.
    pub fn new(cfg: DetectorConfig) -> Self {
        Self::with_time_unit(cfg, 1.0)
    }

    /// A detector whose timestamps count `unit_secs` seconds each (1e-9
    /// for nanoseconds).
    pub fn with_time_unit(cfg: DetectorConfig, unit_secs: f64) -> Self {
        let short = vec![0.0; cfg.short_window.max(1)];
        Self {
            cfg,
            seen: 0,
            last_ts: None,
            step: None,
            unit_secs,
            level: Ewm::default(),
            level_dev: Ewm::default(),
            season: Vec::new(),
            season_dev: Ewm::default(),
            fast: Ewm::default(),
            slow: Ewm::default(),
            slow_dev: Ewm::default(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            visited: 0,
            short,
            short_at: 0,
            err_mean: Ewm::default(),
            err_var: Ewm::default(),
            high: 0.0,
            hold_left: 0,
            last_value: f64::NAN,
            run: 0,
            longest_run: 0,
            run_reported: false,
        }
    }

    /// Counts the run of unchanged values; whether it just became a
    /// flatline (reported once per run).
    fn flat(&mut self, value: f64) -> bool {
        let cfg = &self.cfg;
        // "Unchanged": equal up to a millionth of the range seen.
        let tolerance = 1e-6 * (self.max - self.min).abs().max(f64::MIN_POSITIVE);
        if (value - self.last_value).abs() <= tolerance {
            self.run += 1;
        } else {
            self.longest_run = self.longest_run.max(self.run);
            self.run = 1;
            self.run_reported = false;
        }
        self.last_value = value;
        let needed = (cfg.flat_min as f64).max(cfg.flat_factor * self.longest_run as f64);
        // Before the warm-up, or on a series that never changed, a run
        // says nothing.
        let due = cfg.flat_min > 0
            && !self.run_reported
            && self.seen as usize >= cfg.warmup
            && self.max > self.min
            && self.run as f64 >= needed;
        if due {
            self.run_reported = true;
        }
        due
    }

    /// Numbers held for this series (seasonal slots and the short window):
    /// what grows with configuration, never with the series' length.
    pub fn state_len(&self) -> usize {
        self.season.len() + self.short.len()
    }

    /// Seasonal slots in a day at the sampling step, if that is a whole
    /// number between 4 and `max_season`.
    fn day_slots(&self) -> Option<usize> {
        let step = self.step? as f64 * self.unit_secs;
        if step <= 0.0 {
            return None;
        }
        let slots = 86_400.0 / step;
        let n = slots.round();
        ((slots - n).abs() < 1e-6 && n >= 4.0 && n <= self.cfg.max_season as f64)
            .then_some(n as usize)
    }

    /// The seasonal slot of `timestamp`, learning the sampling step from
    /// the smallest positive gap seen. `None` without a seasonal model, or
    /// for a timestamp that does not move forward.
    fn slot(&mut self, timestamp: i64) -> Option<usize> {
        let forward = match self.last_ts {
            Some(last) if timestamp <= last => false,
            Some(last) => {
                let gap = timestamp - last;
                self.step = Some(self.step.map_or(gap, |s| s.min(gap)));
                true
            }
            None => true,
        };
        if !forward {
            return None;
        }
        self.last_ts = Some(timestamp);
        let (n, step) = (self.day_slots()?, self.step?);
        if self.season.len() != n {
            // A new step: what the old slots held is not comparable.
            self.season = vec![f64::NAN; n];
        }
        Some(timestamp.div_euclid(step).rem_euclid(n as i64) as usize)
    }

    /// Marks the region of the range `value` falls in as visited (before
    /// the range takes the value in); whether it was new. Regions are cut
    /// from the range as it is at each point, so a region is "visited" in
    /// the coordinates of its time: coarse, and cheap (one word of state).
    fn visit(&mut self, value: f64) -> bool {
        let n = self.cfg.regions.min(62);
        if n == 0 {
            return false;
        }
        let range = self.max - self.min;
        let bit = if self.seen == 0 || range <= 0.0 || !range.is_finite() {
            1
        } else if value > self.max {
            n + 1
        } else if value < self.min {
            0
        } else {
            (((value - self.min) / range * n as f64) as usize).min(n - 1) + 1
        };
        let mask = 1u64 << bit;
        let new = self.visited & mask == 0;
        self.visited |= mask;
        new
    }

    /// Scores one point. Timestamps should increase; gaps are fine (slots
    /// are found from the timestamp, not the point count).
    pub fn update(&mut self, timestamp: i64, value: f64) -> PointScore {
        if !value.is_finite() {
            return PointScore::quiet();
        }
        let slot = self.slot(timestamp);
        let new_region = self.visit(value);
        let flatline = self.flat(value);
        let cfg = &self.cfg;
        let range = if self.seen > 0 {
            self.max - self.min
        } else {
            0.0
        };
        // A floor for the scales: a flat series has zero deviation, and any
        // change on it would otherwise score infinitely.
        let floor = 1e-3 * (range + self.level.mean.abs()).max(1e-9);

        // Level model.
        let mut err = if self.level.init {
            (value - self.level.mean).abs() / self.level_dev.mean.max(floor)
        } else {
            0.0
        };
        let spread = 3.0 * self.level_dev.mean;
        let mut expected = if self.level.init {
            (self.level.mean - spread, self.level.mean + spread)
        } else {
            (f64::NAN, f64::NAN)
        };
        // Seasonal model: the same slot a day earlier.
        if let Some(i) = slot {
            let prev = self.season[i];
            if prev.is_finite() {
                let diff = value - prev;
                let season_err = diff.abs() / self.season_dev.mean.max(floor);
                if season_err < err {
                    err = season_err;
                    let spread = 3.0 * self.season_dev.mean;
                    expected = (prev - spread, prev + spread);
                }
                self.season_dev.update(diff.abs(), cfg.scale_alpha);
            }
            self.season[i] = value;
        }
        // Shift of the short-term mean from the long-term level.
        self.fast.update(value, cfg.shift_fast);
        let shift = if self.slow.init {
            (self.fast.mean - self.slow.mean).abs() / self.slow_dev.mean.max(floor)
        } else {
            0.0
        };
        // Novelty: how far outside the range seen so far, in ranges.
        let novelty = if self.seen as usize >= cfg.warmup && range > 0.0 {
            ((value - self.max).max(self.min - value).max(0.0) / range).min(10.0)
        } else {
            0.0
        };
        let raw = err.min(50.0)
            + cfg.shift_weight * shift.min(50.0)
            + cfg.novelty_weight * 10.0 * novelty;

        // Learn from the point after scoring it.
        if self.level.init {
            self.level_dev
                .update((value - self.level.mean).abs(), cfg.scale_alpha);
        }
        self.level.update(value, cfg.level_alpha);
        if self.slow.init {
            self.slow_dev
                .update((value - self.slow.mean).abs(), cfg.shift_slow);
        }
        self.slow.update(value, cfg.shift_slow);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.seen += 1;

        // The short-term error against its running high quantile.
        let k = self.short.len();
        self.short[self.short_at % k] = raw;
        self.short_at = (self.short_at + 1) % (k * 1024);
        let filled = (self.seen as usize).min(k);
        let short_mean = self.short[..filled].iter().sum::<f64>() / filled as f64;
        // A series whose error has always been zero (perfectly flat or
        // perfectly periodic) finds any error infinitely surprising.
        let ratio = if self.high > 0.0 {
            short_mean / self.high
        } else if short_mean > 1e-9 {
            f64::MAX
        } else {
            0.0
        };
        let over = (ratio - 1.0).max(0.0);
        let mut score = if self.seen as usize > cfg.warmup {
            over / (over + 1.0)
        } else {
            0.0
        };
        if new_region && self.seen as usize > cfg.region_warmup {
            score = score.max(cfg.region_score);
        }
        // The step of the quantile estimate scales with the raw error's
        // long-run mean and deviation.
        let sd = self.err_var.mean.max(0.0).sqrt();
        let dev = raw - self.err_mean.mean;
        self.err_var.update(dev * dev, cfg.long_alpha);
        self.err_mean.update(raw, cfg.long_alpha);
        let step = cfg.quantile_rate * (self.err_mean.mean.abs() + sd).max(1e-9);
        if short_mean > self.high {
            self.high += step * cfg.quantile;
        } else {
            self.high = (self.high - step * (1.0 - cfg.quantile)).max(0.0);
        }

        // One report per anomaly.
        if self.hold_left > 0 {
            self.hold_left -= 1;
            score = 0.0;
        }
        // A flatline is reported once per run, hold or not: nothing else
        // would report it.
        let mut kind = AnomalyKind::Deviation;
        if flatline && cfg.flat_score > score {
            score = cfg.flat_score;
            kind = AnomalyKind::Flatline;
        }
        let anomalous = score >= cfg.threshold;
        if anomalous {
            self.hold_left = cfg
                .hold
                .max((self.seen as f64 * cfg.hold_fraction) as usize);
        }
        PointScore {
            score: if score.is_finite() {
                score.clamp(0.0, 1.0)
            } else {
                0.0
            },
            anomalous,
            kind: anomalous.then_some(kind),
            expected_low: expected.0,
            expected_high: expected.1,
        }
    }
}

/// Scores a whole series (timestamps in seconds) with a fresh detector:
/// exactly the scores the streaming detector gives point by point.
pub fn detect(points: &[(i64, f64)], cfg: &DetectorConfig) -> Vec<PointScore> {
    let mut d = Detector::new(cfg.clone());
    points.iter().map(|&(t, v)| d.update(t, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily sine at 5-minute steps with a little deterministic noise.
    fn daily(n: usize) -> Vec<(i64, f64)> {
        let mut state = 7u64;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.2;
                let day = (i as f64 / 288.0 * std::f64::consts::TAU).sin();
                (i as i64 * 300, 10.0 + day + noise)
            })
            .collect()
    }

    fn top(scores: &[PointScore]) -> usize {
        scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
            .map_or(0, |(i, _)| i)
    }

    #[test]
    fn a_spike_scores_highest_and_is_reported_once() {
        let mut s = daily(4000);
        s[3000].1 += 8.0;
        let scores = detect(&s, &DetectorConfig::default());
        assert!(
            (3000..3004).contains(&top(&scores)),
            "top at {}",
            top(&scores)
        );
        let reports: Vec<usize> = (2900..3200).filter(|&i| scores[i].anomalous).collect();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let p = scores[3000];
        assert!(p.expected_low < 11.5 && p.expected_high > 8.5 && p.expected_high < 14.0);
    }

    #[test]
    fn a_level_shift_is_found_at_its_start() {
        let mut s = daily(4000);
        for p in &mut s[3000..] {
            p.1 += 5.0;
        }
        let scores = detect(&s, &DetectorConfig::default());
        let first = (2000..4000).find(|&i| scores[i].anomalous);
        assert!(
            first.is_some_and(|i| (3000..3010).contains(&i)),
            "{first:?}"
        );
    }

    #[test]
    fn the_daily_cycle_alone_is_not_anomalous() {
        let s = daily(6000);
        let scores = detect(&s, &DetectorConfig::default());
        let reports = scores[600..].iter().filter(|p| p.anomalous).count();
        assert!(reports <= 2, "{reports} reports on a clean daily cycle");
    }

    #[test]
    fn a_change_on_a_flat_series_is_reported_at_once() {
        let mut s: Vec<(i64, f64)> = (0..300).map(|i| (i * 60, 14.0)).collect();
        s[200].1 = 400.0;
        let scores = detect(&s, &DetectorConfig::default());
        let first = scores.iter().position(|p| p.anomalous);
        assert_eq!(first, Some(200));
    }

    #[test]
    fn a_value_in_a_region_never_visited_is_reported() {
        // A switch that flips between about 0 and about 10 (so every step
        // is a big jump, and the level model learns that) until it stops
        // half way once: inside the range, but where no value ever was.
        let mut state = 3u64;
        let mut s: Vec<(i64, f64)> = (0..1000)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.4;
                (i * 60, if (i / 3) % 2 == 0 { 0.0 } else { 10.0 } + noise)
            })
            .collect();
        s[800].1 = 5.0;
        let cfg = DetectorConfig::default();
        let scores = detect(&s, &cfg);
        assert!(scores[800].anomalous, "{:?}", scores[800]);
        assert!(scores[800].score >= cfg.region_score);
        let others = (400..1000)
            .filter(|&i| i != 800 && scores[i].anomalous)
            .count();
        assert_eq!(others, 0, "only the half-way value is new");
        // Without the region check, nothing stands out.
        let off = DetectorConfig { regions: 0, ..cfg };
        assert!(!detect(&s, &off)[800].anomalous);
    }

    #[test]
    fn constant_empty_and_gapped_series_give_finite_scores() {
        let cfg = DetectorConfig::default();
        assert!(detect(&[], &cfg).is_empty());
        let flat: Vec<_> = (0..2000).map(|i| (i * 60, 3.0)).collect();
        assert!(detect(&flat, &cfg).iter().all(|p| p.score == 0.0));
        // Gaps of hours and a repeated timestamp.
        let gapped: Vec<_> = (0..3000)
            .map(|i| {
                (
                    i * 300 + if i > 1500 { 86_400 } else { 0 } + i64::from(i == 7),
                    1.0,
                )
            })
            .collect();
        assert!(detect(&gapped, &cfg).iter().all(|p| p.score.is_finite()));
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let mut d = Detector::new(DetectorConfig::default());
        for i in 0..500 {
            d.update(i * 60, (i % 7) as f64);
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let p = d.update(501 * 60, v);
            assert_eq!(p.score, 0.0);
            assert!(!p.anomalous);
        }
        assert!(d.update(502 * 60, 3.0).score.is_finite());
    }

    #[test]
    fn state_survives_serialization() {
        let s = daily(1500);
        let mut a = Detector::new(DetectorConfig::default());
        for p in &s[..1000] {
            a.update(p.0, p.1);
        }
        let json = serde_json::to_string(&a).expect("serialize");
        let mut b: Detector = serde_json::from_str(&json).expect("deserialize");
        for p in &s[1000..] {
            assert_eq!(a.update(p.0, p.1), b.update(p.0, p.1));
        }
    }

    /// A small seeded generator of its own (not the detector's models):
    /// series of six shapes, with or without a stretch where the value is
    /// stuck, for the flatline check.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            (0..12).map(|_| self.next()).sum::<f64>() - 6.0
        }
        fn poisson(&mut self, lambda: f64) -> f64 {
            let (l, mut k, mut p) = ((-lambda).exp(), 0.0, 1.0);
            loop {
                p *= self.next();
                if p <= l {
                    return k;
                }
                k += 1.0;
            }
        }
    }

    /// Shape `shape` (0..6) for `n` points at 5-minute steps; with `stuck`,
    /// the value freezes over that index range (a counter stops counting,
    /// a sensor repeats its last reading).
    fn shaped(shape: usize, n: usize, seed: u64, stuck: Option<(usize, usize)>) -> Vec<(i64, f64)> {
        let mut r = Lcg(seed);
        let mut walk = 50.0;
        let mut counter = 0.0;
        let mut out: Vec<(i64, f64)> = Vec::with_capacity(n);
        for i in 0..n {
            let day = (i as f64 / 288.0 * std::f64::consts::TAU).sin();
            let v = match shape {
                0 => 100.0 + 5.0 * r.normal(),
                1 => 40.0 + 15.0 * day + 2.0 * r.normal(),
                2 => {
                    walk += r.normal();
                    walk
                }
                3 => r.poisson(3.0 + 2.0 * day),
                4 => {
                    counter += r.poisson(20.0);
                    counter
                }
                _ => (0.5 + 0.4 * day + 0.05 * r.normal()).clamp(0.0, 1.0),
            };
            let v = match (stuck, out.last()) {
                (Some((a, b)), Some(&(_, last))) if (a..b).contains(&i) => last,
                _ => v,
            };
            out.push((i as i64 * 300, v));
        }
        out
    }

    #[test]
    fn flatlines_are_found_as_their_own_kind_and_clean_series_stay_quiet() {
        let cfg = DetectorConfig::default();
        let (mut found, mut cases, mut false_flat) = (0, 0, 0);
        for shape in 0..6 {
            for seed in 0..8u64 {
                let n = 3000;
                let start = 1500 + (seed as usize * 97) % 900;
                let len = 36 + (seed as usize * 13) % 60;
                let s = shaped(
                    shape,
                    n,
                    seed + 100 * shape as u64,
                    Some((start, start + len)),
                );
                let scores = detect(&s, &cfg);
                cases += 1;
                if scores[start..start + len]
                    .iter()
                    .any(|p| p.kind == Some(AnomalyKind::Flatline))
                {
                    found += 1;
                }
                let clean = detect(&shaped(shape, n, seed + 100 * shape as u64, None), &cfg);
                false_flat += clean
                    .iter()
                    .filter(|p| p.kind == Some(AnomalyKind::Flatline))
                    .count();
            }
        }
        println!("flatlines found {found}/{cases}; flatline reports on clean series {false_flat}");
        assert!(found * 10 >= cases * 9, "found {found} of {cases}");
        assert_eq!(false_flat, 0, "clean series reported as flat");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any values, huge or tiny, at any steps: scores stay in [0, 1],
        /// never NaN, the state stays bounded, and a rerun agrees.
        #[test]
        fn scores_are_bounded_finite_and_deterministic(
            values in prop::collection::vec(prop::num::f64::ANY, 0..400),
            steps in prop::collection::vec(0i64..100_000, 0..400),
        ) {
            let points: Vec<(i64, f64)> = values
                .iter()
                .zip(steps.iter().chain(std::iter::repeat(&60)))
                .scan(0i64, |t, (v, s)| {
                    *t += s;
                    Some((*t, *v))
                })
                .collect();
            let cfg = DetectorConfig::default();
            let mut d = Detector::new(cfg.clone());
            let scores: Vec<PointScore> = points.iter().map(|&(t, v)| d.update(t, v)).collect();
            for p in &scores {
                prop_assert!((0.0..=1.0).contains(&p.score), "{p:?}");
            }
            prop_assert!(d.state_len() <= cfg.max_season + cfg.short_window);
            let bits = |v: &[PointScore]| -> Vec<(u64, bool, u64, u64)> {
                v.iter()
                    .map(|p| (p.score.to_bits(), p.anomalous, p.expected_low.to_bits(), p.expected_high.to_bits()))
                    .collect()
            };
            prop_assert_eq!(bits(&scores), bits(&detect(&points, &cfg)));
        }
    }
}
