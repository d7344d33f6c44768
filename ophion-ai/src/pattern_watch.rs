//! Log templates over time: counts per time bucket, patterns never seen
//! before, and templates whose rate jumps or collapses.
//!
//! A [`PatternWatch`] takes `(timestamp, template id)` pairs from a
//! [`crate::patterns::TemplateMiner`] in time order. Each closed bucket's
//! count of every tracked template goes to that template's
//! [`crate::anomaly::Detector`] (zeros included, so a template that falls
//! silent is seen too). Memory is bounded: at most `history` buckets of
//! counts, and at most `max_templates` templates tracked for rates.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::{
    anomaly::{Detector, DetectorConfig},
    patterns::TemplateId,
};

/// Settings of a [`PatternWatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Bucket length in seconds.
    pub bucket_secs: i64,
    /// Closed buckets of counts kept.
    pub history: usize,
    /// Buckets at the start during which every template is new, so none is
    /// reported as such.
    pub warmup_buckets: usize,
    /// Templates tracked (for rates and for telling new ones); later ones
    /// are counted only.
    pub max_templates: usize,
    /// Detector settings for the per-template rates.
    pub detector: DetectorConfig,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            bucket_secs: 60,
            history: 1440,
            warmup_buckets: 10,
            max_templates: 1000,
            detector: DetectorConfig {
                // No daily model per template: it would hold a day of
                // slots for each one.
                max_season: 0,
                ..DetectorConfig::minutes()
            },
        }
    }
}

/// Something worth telling about a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PatternEvent {
    /// A template first seen after the warm-up.
    New {
        /// The template.
        id: TemplateId,
        /// When it was first seen (seconds).
        at: i64,
    },
    /// A bucket whose count the template's detector flagged.
    Rate {
        /// The template.
        id: TemplateId,
        /// Start of the bucket (seconds).
        bucket: i64,
        /// Lines in the bucket.
        count: u64,
        /// The range the detector expected.
        expected: (f64, f64),
        /// Anomaly score in [0, 1].
        score: f64,
    },
}

/// Counts, new patterns and rate anomalies of log templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatternWatch {
    cfg: WatchConfig,
    /// Start of the open bucket.
    open: Option<i64>,
    counts: HashMap<TemplateId, u64>,
    closed: VecDeque<(i64, BTreeMap<TemplateId, u64>)>,
    buckets_closed: usize,
    known: HashSet<TemplateId>,
    detectors: HashMap<TemplateId, Detector>,
    events: Vec<PatternEvent>,
}

impl PatternWatch {
    /// A watch with the given settings.
    pub fn new(cfg: WatchConfig) -> Self {
        Self {
            cfg,
            open: None,
            counts: HashMap::new(),
            closed: VecDeque::new(),
            buckets_closed: 0,
            known: HashSet::new(),
            detectors: HashMap::new(),
            events: Vec::new(),
        }
    }

    fn step(&self) -> i64 {
        self.cfg.bucket_secs.max(1)
    }

    /// Closes the bucket starting at `start`: its counts go to history and
    /// to the detectors.
    fn close(&mut self, start: i64) {
        let counts: BTreeMap<TemplateId, u64> = self.counts.drain().collect();
        let mut flagged: Vec<PatternEvent> = Vec::new();
        for (id, d) in &mut self.detectors {
            let n = counts.get(id).copied().unwrap_or(0);
            let p = d.update(start, n as f64);
            if p.anomalous {
                flagged.push(PatternEvent::Rate {
                    id: *id,
                    bucket: start,
                    count: n,
                    expected: (p.expected_low.max(0.0), p.expected_high),
                    score: p.score,
                });
            }
        }
        // Detectors live in a hash map: report in template order.
        flagged.sort_by_key(|e| match e {
            PatternEvent::Rate { id, .. } | PatternEvent::New { id, .. } => *id,
        });
        self.events.extend(flagged);
        self.closed.push_back((start, counts));
        while self.closed.len() > self.cfg.history {
            self.closed.pop_front();
        }
        self.buckets_closed += 1;
    }

    /// Records one line of template `id` at `ts` (seconds). A timestamp
    /// before the open bucket counts in the open bucket.
    pub fn observe(&mut self, ts: i64, id: TemplateId) {
        let step = self.step();
        let bucket = ts.div_euclid(step) * step;
        match self.open {
            None => self.open = Some(bucket),
            Some(open) if bucket > open => {
                // Close the open bucket and the empty ones up to this one;
                // a silence longer than the history is one bounded gap.
                let gap = ((bucket - open) / step) as usize;
                let first = if gap > self.cfg.history + 1 {
                    self.close(open);
                    bucket - step * self.cfg.history as i64
                } else {
                    open
                };
                let mut start = first;
                while start < bucket {
                    self.close(start);
                    start += step;
                }
                self.open = Some(bucket);
            }
            Some(_) => {}
        }
        if !self.known.contains(&id) && self.known.len() < self.cfg.max_templates {
            self.known.insert(id);
            if self.buckets_closed >= self.cfg.warmup_buckets {
                self.events.push(PatternEvent::New { id, at: ts });
            }
            self.detectors
                .insert(id, Detector::new(self.cfg.detector.clone()));
        }
        *self.counts.entry(id).or_default() += 1;
    }

    /// Counts of `id` per closed bucket, oldest first: `(bucket start,
    /// lines)`, zeros included.
    pub fn counts(&self, id: TemplateId) -> Vec<(i64, u64)> {
        self.closed
            .iter()
            .map(|(b, c)| (*b, c.get(&id).copied().unwrap_or(0)))
            .collect()
    }

    /// Events since the last call, in the order they happened.
    pub fn drain_events(&mut self) -> Vec<PatternEvent> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `per_minute(t)` lines of template 1 in minute `t`, for `minutes`.
    fn feed(w: &mut PatternWatch, minutes: i64, per_minute: impl Fn(i64) -> u64) {
        for t in 0..minutes {
            for k in 0..per_minute(t) {
                w.observe(t * 60 + (k as i64 % 60), 1);
            }
        }
    }

    fn rates(events: Vec<PatternEvent>) -> Vec<(i64, u64)> {
        events
            .into_iter()
            .filter_map(|e| match e {
                PatternEvent::Rate { bucket, count, .. } => Some((bucket, count)),
                PatternEvent::New { .. } => None,
            })
            .collect()
    }

    #[test]
    fn counts_per_bucket_include_silent_ones() {
        let mut w = PatternWatch::new(WatchConfig::default());
        feed(&mut w, 5, |t| if t == 2 { 0 } else { 3 });
        w.observe(10 * 60, 1); // closes minute 4 and the empty 5..9
        let c = w.counts(1);
        assert_eq!(&c[..5], &[(0, 3), (60, 3), (120, 0), (180, 3), (240, 3)]);
        assert_eq!(c.len(), 10);
        assert!(c[5..].iter().all(|(_, n)| *n == 0));
    }

    #[test]
    fn a_new_pattern_after_the_warm_up_is_reported_once() {
        let mut w = PatternWatch::new(WatchConfig::default());
        feed(&mut w, 30, |_| 5);
        // Template 2 is new at minute 30; template 1 never was (warm-up).
        w.observe(30 * 60 + 5, 2);
        w.observe(30 * 60 + 9, 2);
        let events = w.drain_events();
        assert_eq!(
            events,
            vec![PatternEvent::New {
                id: 2,
                at: 30 * 60 + 5
            }]
        );
        assert!(w.drain_events().is_empty());
    }

    #[test]
    fn a_burst_in_a_steady_rate_is_flagged_and_steady_rates_are_not() {
        let mut w = PatternWatch::new(WatchConfig::default());
        // Steady 20 to 22 lines a minute for 240 minutes: nothing to say.
        feed(&mut w, 240, |t| 20 + (t % 3) as u64);
        assert_eq!(rates(w.drain_events()), vec![]);
        // The same with 300 lines in minute 200.
        let mut w = PatternWatch::new(WatchConfig::default());
        feed(&mut w, 240, |t| {
            if t == 200 { 300 } else { 20 + (t % 3) as u64 }
        });
        let flagged = rates(w.drain_events());
        assert_eq!(flagged.first(), Some(&(200 * 60, 300)), "{flagged:?}");
    }

    #[test]
    fn memory_stays_bounded() {
        let cfg = WatchConfig {
            history: 50,
            max_templates: 20,
            ..WatchConfig::default()
        };
        let mut w = PatternWatch::new(cfg);
        for t in 0..5000u32 {
            w.observe(i64::from(t) * 30, t % 100);
        }
        // A silence of a year is one bounded gap.
        w.observe(400 * 86_400, 1);
        assert!(w.closed.len() <= 50);
        assert!(w.detectors.len() <= 20 && w.known.len() <= 20);
        assert_eq!(w.counts(1).len(), 50);
    }
}
