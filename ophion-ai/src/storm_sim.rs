//! A seeded alert-storm generator for judging Smart Alerts
//! ([`crate::incidents`]), built to have what real storms have rather than
//! what the correlator assumes:
//!
//! - a **random topology** per case: 10 to 24 services in layers (entry
//!   services, middle tiers, back ends, data stores) with random names,
//!   each calling one to three services further down;
//! - **faults propagate to callers**: a fault in one service trips one to
//!   three of its alert rules (six in ten per instance, so the same rule
//!   fires for one to all of the service's two to eight replicas), and each caller of an affected service is
//!   affected in turn (one to three of its rules) with probability 0.75, 15 to 120 s later, up to the
//!   entry services; the faulty service's own alerts are **detected up to
//!   three minutes late**, so callers often fire first;
//! - **storms overlap** now and then (two to four per four-hour case at
//!   random times);
//! - **unrelated background alerts** on random services, neighbours of a
//!   storm included, some during storms;
//! - **flapping**: a quarter of alerts fire and resolve two to four times;
//! - **shared labels**: every alert carries the cluster's and namespace's
//!   labels, so label similarity alone does not group.
//!
//! The truth of an alert is its storm (or, for a background alert, its
//! own group); a storm's root-cause alerts are those of its faulty
//! service. [`replay`] runs the correlator and the notification policy
//! over a case as the server would, and [`Score`] sums what it did.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng, seq::SliceRandom as _};

use crate::incidents::{
    self, Alert, CorrelateConfig, Due, OpenIncident, Policy, Schedule, ServiceGraph, Severity,
};

/// Seeds the defaults were developed on.
pub const DEVELOPMENT_SEEDS: std::ops::Range<u64> = 0..40;
/// Seeds only ever scored, never looked at case by case.
pub const HELD_OUT_SEEDS: std::ops::Range<u64> = 50_000..50_040;

const S: i64 = 1_000_000_000;

/// One alert with its firing episodes.
#[derive(Debug, Clone)]
pub struct SimAlert {
    /// The alert's labels (`alertname`, `service`, `severity`, ...).
    pub labels: BTreeMap<String, String>,
    /// Its fingerprint.
    pub key: String,
    /// `[fire, resolve)` episodes, ns, in order.
    pub episodes: Vec<(i64, i64)>,
    /// Its true group: a storm's index, or a background alert's own.
    pub truth: usize,
}

/// One storm.
#[derive(Debug, Clone)]
pub struct Storm {
    /// Its group (the `truth` of its alerts).
    pub group: usize,
    /// The faulty service.
    pub root_service: String,
    /// Its root-cause alerts' keys.
    pub root_keys: Vec<String>,
}

/// One generated case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The seed.
    pub seed: u64,
    /// `(caller, callee)` edges.
    pub edges: Vec<(String, String)>,
    /// Every alert.
    pub alerts: Vec<SimAlert>,
    /// The storms.
    pub storms: Vec<Storm>,
}

const WORDS: &[&str] = &[
    "atlas", "birch", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "iris", "jade",
    "kepler", "lumen", "maple", "nimbus", "onyx", "pylon", "quartz", "raven", "sable", "tundra",
    "umber", "vega", "willow", "xenon", "yarrow", "zephyr", "alder", "basalt", "cedar", "dune",
];
const ROLES: &[&str] = &["web", "api", "svc", "worker", "gw", "db", "cache", "queue"];

fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    // FNV-1a over the sorted pairs: stable and dependency-free.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn episodes(rng: &mut StdRng, start: i64, end: i64) -> Vec<(i64, i64)> {
    if !rng.random_bool(0.25) || end - start < 6 * 60 * S {
        return vec![(start, end)];
    }
    let flaps = rng.random_range(2..=4);
    let mut out = Vec::new();
    let mut t = start;
    for i in 0..flaps {
        let left = flaps - i;
        let span = (end - t) / left as i64;
        let on = rng.random_range(span / 3..=span * 2 / 3);
        out.push((t, t + on));
        t += on + rng.random_range(30 * S..=240 * S).min(span - on);
        if t >= end {
            break;
        }
    }
    out
}

/// The case of `seed`.
pub fn generate(seed: u64) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    // Topology: layers of services with random names.
    let mut words: Vec<&str> = WORDS.to_vec();
    words.shuffle(&mut rng);
    let sizes = [
        rng.random_range(1..=2),
        rng.random_range(3..=6),
        rng.random_range(3..=6),
        rng.random_range(3..=6),
        rng.random_range(2..=4),
    ];
    let mut layers: Vec<Vec<String>> = Vec::new();
    let mut w = 0;
    for (li, &n) in sizes.iter().enumerate() {
        let mut layer = Vec::new();
        for _ in 0..n {
            let role = match li {
                0 => ROLES[rng.random_range(0..2)],
                4 => ROLES[rng.random_range(5..8)],
                _ => ROLES[rng.random_range(1..5)],
            };
            layer.push(format!("{}-{role}", words[w % words.len()]));
            w += 1;
        }
        layers.push(layer);
    }
    let mut edges: Vec<(String, String)> = Vec::new();
    for li in 0..layers.len() - 1 {
        for caller in &layers[li] {
            let k = rng.random_range(1..=3);
            for _ in 0..k {
                // Mostly the next layer, sometimes further down.
                let lj = if rng.random_bool(0.75) || li + 2 >= layers.len() {
                    li + 1
                } else {
                    rng.random_range(li + 2..layers.len())
                };
                let callee = layers[lj][rng.random_range(0..layers[lj].len())].clone();
                if !edges.contains(&(caller.clone(), callee.clone())) {
                    edges.push((caller.clone(), callee));
                }
            }
        }
    }
    // Every service below the entries is called by someone.
    for li in 1..layers.len() {
        for s in &layers[li] {
            if !edges.iter().any(|(_, b)| b == s) {
                let up = &layers[rng.random_range(0..li)];
                edges.push((up[rng.random_range(0..up.len())].clone(), s.clone()));
            }
        }
    }
    let services: Vec<String> = layers.iter().flatten().cloned().collect();
    let callers = |s: &str| -> Vec<String> {
        edges
            .iter()
            .filter(|(_, b)| b == s)
            .map(|(a, _)| a.clone())
            .collect()
    };
    let cluster = format!(
        "{}-{}",
        ["eu", "us", "ap"][rng.random_range(0..3)],
        seed % 7
    );
    let replicas: HashMap<String, usize> = services
        .iter()
        .map(|s| (s.clone(), rng.random_range(2..=8)))
        .collect();
    let base = |rng: &mut StdRng, service: &str, name: &str, sev: Severity| {
        let mut l = BTreeMap::new();
        l.insert("alertname".to_owned(), name.to_owned());
        l.insert("service".to_owned(), service.to_owned());
        l.insert("severity".to_owned(), sev.as_str().to_owned());
        l.insert("cluster".to_owned(), cluster.clone());
        l.insert("namespace".to_owned(), "prod".to_owned());
        let _ = rng;
        l
    };
    // A rule fires once per affected replica (`instance`) when it is a
    // per-instance rule, else once for the service.
    let fan_out = |rng: &mut StdRng, labels: BTreeMap<String, String>| {
        let service = labels.get("service").cloned().unwrap_or_default();
        let n = replicas.get(&service).copied().unwrap_or(1);
        if rng.random_bool(0.4) {
            return vec![labels];
        }
        let hit = rng.random_range(1..=n);
        (0..hit)
            .map(|i| {
                let mut l = labels.clone();
                l.insert("instance".to_owned(), format!("{service}-{i}"));
                l
            })
            .collect()
    };
    let symptoms = ["HighErrorRate", "HighLatencyP99", "SLOBurnRate", "ApdexLow"];
    let causes = [
        "HighErrorRate",
        "HighLatencyP99",
        "SaturationHigh",
        "ConnectionPoolExhausted",
        "OOMKilled",
        "DiskFull",
    ];
    let horizon = 4 * 3600 * S;
    let mut alerts: Vec<SimAlert> = Vec::new();
    let mut storms = Vec::new();
    let add = |rng: &mut StdRng,
               alerts: &mut Vec<SimAlert>,
               labels: BTreeMap<String, String>,
               start: i64,
               end: i64,
               truth: usize|
     -> Option<String> {
        let key = fingerprint(&labels);
        if alerts.iter().any(|a| a.key == key) {
            return None;
        }
        let episodes = episodes(rng, start, end);
        alerts.push(SimAlert {
            labels,
            key: key.clone(),
            episodes,
            truth,
        });
        Some(key)
    };
    let n_storms = rng.random_range(2..=4);
    for g in 0..n_storms {
        let root = services[rng.random_range(layers[0].len()..services.len())].clone();
        let t0 = rng.random_range(0..horizon - 3600 * S);
        let duration = rng.random_range(10 * 60 * S..=45 * 60 * S);
        let mut root_keys = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let name = causes[rng.random_range(0..causes.len())];
            let sev = if rng.random_bool(0.6) {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let labels = base(&mut rng, &root, name, sev);
            let start = t0 + rng.random_range(0..=180 * S);
            for labels in fan_out(&mut rng, labels) {
                let start = start + rng.random_range(0..=30 * S);
                let end = t0 + duration + rng.random_range(0..=60 * S);
                if let Some(k) = add(&mut rng, &mut alerts, labels, start, end, g) {
                    root_keys.push(k);
                }
            }
        }
        // Propagation up the callers.
        let mut frontier = vec![(root.clone(), t0)];
        let mut affected: HashSet<String> = HashSet::from([root.clone()]);
        while let Some((s, t)) = frontier.pop() {
            for c in callers(&s) {
                if affected.contains(&c) || !rng.random_bool(0.75) {
                    continue;
                }
                affected.insert(c.clone());
                let tc = t + rng.random_range(15 * S..=120 * S);
                for _ in 0..rng.random_range(1..=3) {
                    let name = symptoms[rng.random_range(0..symptoms.len())];
                    let sev = if rng.random_bool(0.3) {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    };
                    let labels = base(&mut rng, &c, name, sev);
                    for labels in fan_out(&mut rng, labels) {
                        let start = tc + rng.random_range(0..=30 * S);
                        let end = t0 + duration + rng.random_range(0..=180 * S);
                        add(
                            &mut rng,
                            &mut alerts,
                            labels,
                            start,
                            end.max(start + 60 * S),
                            g,
                        );
                    }
                }
                frontier.push((c, tc));
            }
        }
        storms.push(Storm {
            group: g,
            root_service: root,
            root_keys,
        });
    }
    // Background alerts, each its own group.
    let background = rng.random_range(4..=10);
    for i in 0..background {
        let s = services[rng.random_range(0..services.len())].clone();
        let name = [
            "CertificateExpiring",
            "HighCPU",
            "DiskSpaceLow",
            "PodRestarts",
        ][rng.random_range(0..4)];
        let mut labels = base(&mut rng, &s, name, Severity::Warning);
        labels.insert("instance".to_owned(), format!("{s}-0"));
        let start = rng.random_range(0..horizon - 1800 * S);
        let end = start + rng.random_range(5 * 60 * S..=40 * 60 * S);
        add(&mut rng, &mut alerts, labels, start, end, n_storms + i);
    }
    Case {
        seed,
        edges,
        alerts,
        storms,
    }
}

/// What [`replay`] did on cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Alert state changes (each firing and each resolution): what a
    /// notifier without grouping sends.
    pub raw: usize,
    /// Notifications Smart Alerts sent (incident openings, updates,
    /// repeats and resolutions).
    pub sent: usize,
    /// Pairs of alerts in the same incident that share a true group.
    pub true_pairs: usize,
    /// Pairs of alerts in the same incident.
    pub predicted_pairs: usize,
    /// Pairs of alerts that share a true group.
    pub truth_pairs: usize,
    /// Storms.
    pub storms: usize,
    /// Storms whose root-cause alert is first in its incident.
    pub root_first: usize,
    /// ... already in the incident's first notification.
    pub root_first_at_first_message: usize,
}

impl Score {
    /// `1 - sent / raw`.
    pub fn compression(&self) -> f64 {
        1.0 - self.sent as f64 / self.raw.max(1) as f64
    }

    /// Pairwise F1 of the grouping against the truth.
    pub fn f1(&self) -> f64 {
        let p = self.true_pairs as f64 / self.predicted_pairs.max(1) as f64;
        let r = self.true_pairs as f64 / self.truth_pairs.max(1) as f64;
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Share of storms with their root-cause alert first.
    pub fn root_first_rate(&self) -> f64 {
        self.root_first as f64 / self.storms.max(1) as f64
    }

    /// Adds another score.
    pub fn add(&mut self, o: &Score) {
        self.raw += o.raw;
        self.sent += o.sent;
        self.true_pairs += o.true_pairs;
        self.predicted_pairs += o.predicted_pairs;
        self.truth_pairs += o.truth_pairs;
        self.storms += o.storms;
        self.root_first += o.root_first;
        self.root_first_at_first_message += o.root_first_at_first_message;
    }
}

struct Inc {
    alerts: Vec<Alert>,
    firing: HashSet<String>,
    quiet_since: Option<i64>,
    closed: bool,
    schedule: Schedule,
    first_top: Option<String>,
}

fn pairs(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

/// Runs the correlator and the notification policy over `case` as the
/// server does (a tick every five seconds), and scores it.
pub fn replay(case: &Case, cfg: &CorrelateConfig, policy: &Policy) -> Score {
    let graph = ServiceGraph::from_edges(case.edges.iter().cloned());
    // (time, is_fire, alert index); resolutions first at equal times.
    let mut events: Vec<(i64, bool, usize)> = Vec::new();
    for (i, a) in case.alerts.iter().enumerate() {
        for &(f, r) in &a.episodes {
            events.push((f, true, i));
            events.push((r, false, i));
        }
    }
    events.sort();
    let raw = events.len();
    let mut incs: Vec<Inc> = Vec::new();
    let mut first_incident: HashMap<usize, usize> = HashMap::new();
    let mut sent = 0;
    let mut digest: Option<Schedule> = None;
    let quiet = cfg.quiet_secs as i64 * S;
    let end = events.last().map_or(0, |e| e.0) + quiet + 2 * policy.group_interval_secs as i64 * S;
    let tick = 5 * S;
    let mut next = 0;
    let mut t = events.first().map_or(0, |e| e.0);
    while t <= end {
        while next < events.len() && events[next].0 <= t {
            let (at, fire, i) = events[next];
            next += 1;
            let sim = &case.alerts[i];
            if fire {
                let alert = Alert {
                    key: sim.key.clone(),
                    service: incidents::service_of(&sim.labels),
                    labels: sim.labels.clone(),
                    severity: Severity::parse(sim.labels.get("severity").map_or("", |s| s)),
                    starts_ns: at,
                };
                let open: Vec<usize> = (0..incs.len()).filter(|&j| !incs[j].closed).collect();
                // The same alert again rejoins its incident while it is open.
                let again = open
                    .iter()
                    .copied()
                    .find(|&j| incs[j].alerts.iter().any(|m| m.key == sim.key));
                let j = again.or_else(|| {
                    let views: Vec<OpenIncident> = open
                        .iter()
                        .map(|&j| OpenIncident {
                            alerts: incs[j].alerts.clone(),
                            quiet_since_ns: incs[j].quiet_since,
                        })
                        .collect();
                    incidents::assign(cfg, &graph, &views, &alert).map(|k| open[k])
                });
                let j = match j {
                    Some(j) => j,
                    None => {
                        incs.push(Inc {
                            alerts: Vec::new(),
                            firing: HashSet::new(),
                            quiet_since: None,
                            closed: false,
                            schedule: Schedule {
                                opened_ns: at,
                                ..Schedule::default()
                            },
                            first_top: None,
                        });
                        incs.len() - 1
                    }
                };
                let inc = &mut incs[j];
                // A member keeps its first start: a flap does not stretch
                // the incident's window.
                if !inc.alerts.iter().any(|m| m.key == alert.key) {
                    inc.alerts.push(alert);
                }
                inc.firing.insert(sim.key.clone());
                inc.quiet_since = None;
                first_incident.entry(i).or_insert(j);
            } else {
                for inc in incs.iter_mut().filter(|x| !x.closed) {
                    if inc.firing.remove(&sim.key) && inc.firing.is_empty() {
                        inc.quiet_since = Some(at);
                    }
                }
            }
        }
        // Low-priority incidents go to the digest group when it is on.
        if let Some(dp) = policy.digest() {
            let low: Vec<usize> = (0..incs.len())
                .filter(|&j| !incs[j].closed && incidents::low_priority(&incs[j].alerts))
                .collect();
            if !low.is_empty() && digest.is_none() {
                digest = Some(Schedule {
                    opened_ns: t,
                    ..Schedule::default()
                });
            }
            if let Some(d) = digest.as_mut() {
                let mut firing: Vec<String> = low
                    .iter()
                    .flat_map(|&j| incs[j].firing.iter().cloned())
                    .collect();
                firing.sort();
                let done = |inc: &Inc| {
                    inc.firing.is_empty() && inc.quiet_since.is_some_and(|q| t - q >= quiet)
                };
                let resolved = low.iter().all(|&j| done(&incs[j]));
                match dp.due(d, &firing, resolved, t) {
                    Due::Firing => {
                        sent += 1;
                        d.sent_ns = Some(t);
                        d.sent_firing = firing;
                    }
                    Due::Resolved => {
                        sent += 1;
                        digest = None;
                    }
                    Due::Wait(_) if resolved => digest = None,
                    Due::Wait(_) => {}
                }
                for &j in &low {
                    if done(&incs[j]) {
                        incs[j].closed = true;
                    }
                }
            }
        }
        for inc in incs.iter_mut().filter(|x| !x.closed) {
            if policy.digest_secs > 0 && incidents::low_priority(&inc.alerts) {
                continue;
            }
            let resolved = inc.firing.is_empty() && inc.quiet_since.is_some_and(|q| t - q >= quiet);
            let mut firing: Vec<String> = inc.firing.iter().cloned().collect();
            firing.sort();
            match policy.due(&inc.schedule, &firing, resolved, t) {
                Due::Firing => {
                    sent += 1;
                    if inc.first_top.is_none() {
                        let order = incidents::rank(&graph, &inc.alerts, &[]);
                        inc.first_top = Some(inc.alerts[order[0]].key.clone());
                    }
                    inc.schedule.sent_ns = Some(t);
                    inc.schedule.sent_firing = firing;
                }
                Due::Resolved => {
                    sent += 1;
                    inc.schedule.sent_resolved = true;
                    inc.closed = true;
                }
                Due::Wait(_) if resolved => inc.closed = true,
                Due::Wait(_) => {}
            }
        }
        t += tick;
    }
    // Grouping: each alert in the incident of its first firing.
    let mut cells: HashMap<(usize, usize), usize> = HashMap::new();
    let mut by_pred: HashMap<usize, usize> = HashMap::new();
    let mut by_truth: HashMap<usize, usize> = HashMap::new();
    for (i, a) in case.alerts.iter().enumerate() {
        let p = first_incident[&i];
        *cells.entry((p, a.truth)).or_default() += 1;
        *by_pred.entry(p).or_default() += 1;
        *by_truth.entry(a.truth).or_default() += 1;
    }
    let mut score = Score {
        raw,
        sent,
        true_pairs: cells.values().map(|&n| pairs(n)).sum(),
        predicted_pairs: by_pred.values().map(|&n| pairs(n)).sum(),
        truth_pairs: by_truth.values().map(|&n| pairs(n)).sum(),
        storms: case.storms.len(),
        ..Score::default()
    };
    for storm in &case.storms {
        let Some(first_root) = case
            .alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| storm.root_keys.contains(&a.key))
            .min_by_key(|(_, a)| a.episodes[0].0)
            .map(|(i, _)| i)
        else {
            continue;
        };
        let inc = &incs[first_incident[&first_root]];
        let order = incidents::rank(&graph, &inc.alerts, &[]);
        if storm.root_keys.contains(&inc.alerts[order[0]].key) {
            score.root_first += 1;
        }
        if inc
            .first_top
            .as_ref()
            .is_some_and(|k| storm.root_keys.contains(k))
        {
            score.root_first_at_first_message += 1;
        }
    }
    score
}

/// The summed score of `seeds` with `cfg` and `policy`.
pub fn score(seeds: std::ops::Range<u64>, cfg: &CorrelateConfig, policy: &Policy) -> Score {
    let mut total = Score::default();
    for seed in seeds {
        total.add(&replay(&generate(seed), cfg, policy));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_seeded_and_storms_have_truth() {
        let (a, b) = (generate(7), generate(7));
        assert_eq!(a.alerts.len(), b.alerts.len());
        assert_eq!(a.edges, b.edges);
        assert!(a.storms.len() >= 2);
        assert!(a.storms.iter().all(|s| !s.root_keys.is_empty()));
        let services: HashSet<&str> = a
            .edges
            .iter()
            .flat_map(|(x, y)| [x.as_str(), y.as_str()])
            .collect();
        assert!(services.len() >= 10, "{} services", services.len());
    }

    /// The acceptance figures, on the held-out seeds (never tuned on).
    #[test]
    fn held_out_storms_meet_the_goals() {
        let s = score(
            HELD_OUT_SEEDS,
            &CorrelateConfig::default(),
            &Policy::default(),
        );
        assert!(s.storms >= 50, "{} storms", s.storms);
        // The goal is 0.9; the defaults reach 0.85 (docs/benchmarks.md says
        // why): this guards against a regression, it does not claim it.
        assert!(
            s.compression() >= 0.85,
            "compression {:.3} ({s:?})",
            s.compression()
        );
        assert!(s.f1() >= 0.9, "F1 {:.3} ({s:?})", s.f1());
        assert!(
            s.root_first_rate() >= 0.8,
            "root first {:.3} ({s:?})",
            s.root_first_rate()
        );
        // With a channel's 30-minute digest of low-priority incidents (the
        // period chosen on the development seeds), compression reaches the
        // goal; grouping and ranking are the same.
        let d = score(
            HELD_OUT_SEEDS,
            &CorrelateConfig::default(),
            &Policy {
                digest_secs: 1800,
                ..Policy::default()
            },
        );
        assert!(
            d.compression() >= 0.9,
            "compression with a digest {:.3} ({d:?})",
            d.compression()
        );
        assert_eq!((d.true_pairs, d.root_first), (s.true_pairs, s.root_first));
    }
}
