//! Root-cause ranking for an incident window.
//!
//! Symptoms travel up the call graph: when a database slows down, every
//! caller's span gets longer, and when a payment service fails, checkout and
//! the front end fail with it. So [`rank`] compares each operation's *own*
//! behaviour in the incident window with the time before it:
//!
//! - **own time**: a span's duration minus the time spent in its direct
//!   children, so a caller waiting on a slow callee is not blamed;
//! - **own errors**: failed spans none of whose children failed, so an
//!   error is charged where it started;
//! - **versions**: a `service.version` seen in the incident but not before
//!   (a deployment).
//!
//! Database calls (client spans with `db.system`) are judged as the
//! database's, since databases are rarely instrumented themselves.
//!
//! Each service's worst operation becomes a candidate with a score in
//! `[0, 1]`, a kind (latency, errors, saturation, deployment) and its
//! evidence: example trace ids and the numbers that moved.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::spans::SpanInfo;

/// What went wrong at a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// Its own time grew.
    Latency,
    /// It started failing.
    Errors,
    /// Both at once: the signature of a resource running out.
    Saturation,
    /// A new version appeared with the trouble.
    Deployment,
}

/// One ranked candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The service.
    pub service: String,
    /// Its operation that moved most.
    pub operation: String,
    /// What went wrong.
    pub kind: CauseKind,
    /// Confidence in `[0, 1]` (for ranking; not a probability).
    pub score: f64,
    /// Example trace ids and the numbers behind the score.
    pub evidence: Vec<String>,
}

/// Ranking settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RcaConfig {
    /// Fewest spans an operation needs in each window to be judged.
    pub min_spans: usize,
    /// Weight of a rise in own error ratio (0 to 1) against the latency
    /// z-score.
    pub error_weight: f64,
    /// Added to the score of a service whose version changed.
    pub deployment_bonus: f64,
}

impl Default for RcaConfig {
    fn default() -> Self {
        Self {
            min_spans: 5,
            error_weight: 20.0,
            deployment_bonus: 2.0,
        }
    }
}

#[derive(Default)]
struct Window<'a> {
    own_ns: Vec<f64>,
    own_errors: usize,
    versions: HashSet<&'a str>,
    /// (own time, trace) of the slowest and the failing spans.
    slowest: Vec<(f64, &'a str)>,
    failing: Vec<&'a str>,
}

impl Window<'_> {
    fn mean(&self) -> f64 {
        self.own_ns.iter().sum::<f64>() / self.own_ns.len().max(1) as f64
    }

    fn sd(&self) -> f64 {
        let m = self.mean();
        let var = self.own_ns.iter().map(|x| (x - m) * (x - m)).sum::<f64>()
            / self.own_ns.len().max(1) as f64;
        var.sqrt()
    }

    fn error_ratio(&self) -> f64 {
        self.own_errors as f64 / self.own_ns.len().max(1) as f64
    }
}

/// Ranks candidate root causes of the trouble in `[start_ns, end_ns)`,
/// using the spans before `start_ns` as the baseline. Best first.
pub fn rank(spans: &[SpanInfo], start_ns: i64, end_ns: i64, cfg: &RcaConfig) -> Vec<Candidate> {
    // Children's total time and whether any failed, per parent.
    let mut children: HashMap<(&str, &str), (i64, bool)> = HashMap::new();
    for s in spans {
        if let Some(p) = &s.parent_id {
            let e = children.entry((&s.trace_id, p)).or_default();
            e.0 += s.duration_ns;
            e.1 |= s.error;
        }
    }
    // (service, operation) -> (baseline, incident).
    let mut ops: HashMap<(&str, &str), (Window<'_>, Window<'_>)> = HashMap::new();
    for s in spans {
        let w = if s.start_ns < start_ns {
            0
        } else if s.start_ns < end_ns {
            1
        } else {
            continue;
        };
        let (child_ns, child_failed) = children
            .get(&(s.trace_id.as_str(), s.span_id.as_str()))
            .copied()
            .unwrap_or_default();
        let own = (s.duration_ns - child_ns).max(0) as f64;
        // A database call is judged as the database's (its `db.system`):
        // the database itself is rarely instrumented.
        let db = s.kind == "client" && s.db_system.is_some();
        let service = if db {
            s.db_system.as_deref().unwrap_or_default()
        } else {
            &s.service
        };
        let pair = ops.entry((service, &s.name)).or_default();
        let win = if w == 0 { &mut pair.0 } else { &mut pair.1 };
        win.own_ns.push(own);
        // The version on a database call is the caller's.
        if let Some(v) = s.version.as_deref().filter(|_| !db) {
            win.versions.insert(v);
        }
        if w == 1 {
            win.slowest.push((own, &s.trace_id));
            if s.error && !child_failed {
                win.failing.push(&s.trace_id);
            }
        }
        if s.error && !child_failed {
            win.own_errors += 1;
        }
    }
    // Versions per service in each window.
    let mut versions: HashMap<&str, (HashSet<&str>, HashSet<&str>)> = HashMap::new();
    for ((service, _), (b, i)) in &ops {
        let e = versions.entry(service).or_default();
        e.0.extend(&b.versions);
        e.1.extend(&i.versions);
    }

    let mut best: HashMap<&str, Candidate> = HashMap::new();
    for ((service, op), (base, inc)) in &mut ops {
        if base.own_ns.len() < cfg.min_spans || inc.own_ns.len() < cfg.min_spans {
            continue;
        }
        let (mb, mi) = (base.mean(), inc.mean());
        // Scale: the baseline's spread, at least a tenth of its mean and a
        // microsecond, so a very steady operation is not blamed for noise.
        let scale = base.sd().max(0.1 * mb).max(1_000.0);
        let latency = ((mi - mb) / scale).max(0.0);
        let errors = (inc.error_ratio() - base.error_ratio()).max(0.0) * cfg.error_weight;
        let (before, during) = &versions[service];
        let deployed = during.iter().any(|v| !before.contains(v)) && !before.is_empty();
        let mut raw = latency.max(errors);
        if deployed && raw > 0.5 {
            raw += cfg.deployment_bonus;
        }
        let kind = if deployed && raw > 0.5 {
            CauseKind::Deployment
        } else if latency >= 3.0 && errors >= 1.0 {
            CauseKind::Saturation
        } else if errors > latency {
            CauseKind::Errors
        } else {
            CauseKind::Latency
        };
        inc.slowest
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        let mut traces: Vec<String> = Vec::new();
        let examples = match kind {
            CauseKind::Errors => inc.failing.clone(),
            _ => inc.slowest.iter().map(|(_, t)| *t).collect(),
        };
        for t in examples {
            if !traces.iter().any(|x| x == t) {
                traces.push(t.to_owned());
            }
            if traces.len() == 3 {
                break;
            }
        }
        let mut evidence = vec![
            format!(
                "own time {:.1} ms -> {:.1} ms (mean over {} and {} spans)",
                mb / 1e6,
                mi / 1e6,
                base.own_ns.len(),
                inc.own_ns.len()
            ),
            format!(
                "own errors {:.1}% -> {:.1}%",
                base.error_ratio() * 100.0,
                inc.error_ratio() * 100.0
            ),
        ];
        if deployed {
            let mut new: Vec<&str> = during.difference(before).copied().collect();
            new.sort_unstable();
            evidence.push(format!("new version {}", new.join(", ")));
        }
        evidence.push(format!(
            "SELECT * FROM spans WHERE service_name = '{}' AND name = '{}'",
            service.replace('\'', "''"),
            op.replace('\'', "''")
        ));
        evidence.extend(traces.into_iter().map(|t| format!("trace {t}")));
        let candidate = Candidate {
            service: service.to_string(),
            operation: op.to_string(),
            kind,
            score: raw / (1.0 + raw),
            evidence,
        };
        match best.get(service) {
            Some(c) if c.score >= candidate.score => {}
            _ => {
                best.insert(service, candidate);
            }
        }
    }
    let mut out: Vec<Candidate> = best.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    out
}
