//! Smart Alerts: firing alerts become incidents, each with its probable
//! root-cause alert named first, a priority score, and a notification
//! schedule, so that a fault which trips thirty alerts across ten services
//! pages once.
//!
//! Pure functions over plain values; the server keeps the state (its
//! alert and incident tables) and calls these as alerts change:
//!
//! - [`assign`]: which open incident a newly firing alert joins, by
//!   time proximity, the service graph (caller/callee edges from traces,
//!   [`ServiceGraph`]) and label similarity; the same alert firing again
//!   (a flap) rejoins its incident.
//! - [`rank`]: the members of an incident, probable root cause first: the
//!   alerting service with no alerting service downstream of it (what it
//!   calls), then the one most alerting callers depend on, then a
//!   root-cause ranking from traces when there is one ([`rank`]'s `hint`),
//!   then severity and start time.
//! - [`priority`]: a 0..100 score from severity, blast radius, novelty and
//!   business-critical labels.
//! - [`Policy`] and [`Schedule`]: when an incident's notifications go out
//!   (first after `group_wait`, updates at most every `group_interval`,
//!   repeats after `repeat_interval`, a resolution once every member has
//!   been resolved for `quiet`), as Alertmanager times a group.
//!
//! The defaults were chosen on the development seeds of the storm
//! generator (`storm_sim`, feature `sim`) and are scored on its held-out
//! seeds (`benches/alert_storms.rs`, `docs/benchmarks.md`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs attention in working hours.
    Warning,
    /// Pages someone now.
    Critical,
}

impl Severity {
    /// The severity named `s` (`critical`, `page`, `error`, `high` are
    /// critical; `warning`, `warn`, `medium` warnings; anything else info).
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "critical" | "page" | "error" | "high" | "p1" | "sev1" => Severity::Critical,
            "warning" | "warn" | "medium" | "p2" | "p3" | "sev2" | "sev3" => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// The name as written in labels and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    fn weight(self) -> f64 {
        match self {
            Severity::Info => 0.3,
            Severity::Warning => 0.6,
            Severity::Critical => 1.0,
        }
    }
}

/// One alert as the correlator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its identity: the fingerprint of its labels.
    pub key: String,
    /// The service it is about (label `service`, `service_name`,
    /// `service.name` or `job`), if any.
    pub service: Option<String>,
    /// All its labels.
    pub labels: BTreeMap<String, String>,
    /// Severity.
    pub severity: Severity,
    /// When it (last) started firing, ns since the epoch.
    pub starts_ns: i64,
}

/// The label names an alert's service is read from, in order.
pub const SERVICE_LABELS: [&str; 4] = ["service", "service_name", "service.name", "job"];

/// The service named by `labels`, if any ([`SERVICE_LABELS`]).
pub fn service_of(labels: &BTreeMap<String, String>) -> Option<String> {
    SERVICE_LABELS
        .iter()
        .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()).cloned())
}

/// Labels that say what an alert is, not where: left out of similarity.
const NOT_IDENTIFYING: [&str; 7] = [
    "alertname",
    "severity",
    "service",
    "service_name",
    "service.name",
    "job",
    "rule",
];

/// Who calls whom, from traces (the store's `service_edges`).
#[derive(Debug, Clone, Default)]
pub struct ServiceGraph {
    callees: HashMap<String, HashSet<String>>,
    callers: HashMap<String, HashSet<String>>,
}

impl ServiceGraph {
    /// The graph of `(caller, callee)` edges.
    pub fn from_edges<I, A, B>(edges: I) -> Self
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        let mut g = Self::default();
        for (a, b) in edges {
            let (a, b) = (a.into(), b.into());
            if a == b {
                continue;
            }
            g.callees.entry(a.clone()).or_default().insert(b.clone());
            g.callers.entry(b).or_default().insert(a);
        }
        g
    }

    /// Number of services in the graph.
    pub fn len(&self) -> usize {
        let mut all: HashSet<&String> = self.callees.keys().collect();
        all.extend(self.callers.keys());
        all.len()
    }

    /// Whether there are no edges.
    pub fn is_empty(&self) -> bool {
        self.callees.is_empty()
    }

    /// Calls between `a` and `b` along a call path in either direction
    /// (`a` calls ... `b`, or `b` calls ... `a`), up to `max`. Services
    /// that only share a callee or a caller are not on one path: a fault
    /// travels from callee to callers.
    pub fn hops(&self, a: &str, b: &str, max: usize) -> Option<usize> {
        if a == b {
            return Some(0);
        }
        let down = |from: &str, to: &str| -> Option<usize> {
            let mut seen: HashSet<&str> = HashSet::from([from]);
            let mut queue = VecDeque::from([(from, 0usize)]);
            while let Some((s, d)) = queue.pop_front() {
                if d == max {
                    continue;
                }
                for n in self.callees.get(s).into_iter().flatten() {
                    if n == to {
                        return Some(d + 1);
                    }
                    if seen.insert(n) {
                        queue.push_back((n, d + 1));
                    }
                }
            }
            None
        };
        match (down(a, b), down(b, a)) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// Whether `to` is reachable from `from` along calls (`from` depends
    /// on `to`, directly or not).
    pub fn calls(&self, from: &str, to: &str) -> bool {
        if from == to {
            return false;
        }
        let mut seen: HashSet<&str> = HashSet::from([from]);
        let mut stack = vec![from];
        while let Some(s) = stack.pop() {
            for n in self.callees.get(s).into_iter().flatten() {
                if n == to {
                    return true;
                }
                if seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        false
    }
}

/// How alerts are correlated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorrelateConfig {
    /// Alerts further apart than this in start time are never related.
    pub window_secs: u64,
    /// Services at most this many hops apart in the service graph are
    /// related.
    pub max_hops: usize,
    /// Relatedness at one hop; each further hop multiplies it again.
    pub hop_decay: f64,
    /// Relatedness of alerts on different, unconnected services (or
    /// without a service) per unit of label similarity (Jaccard of their
    /// identifying labels).
    pub label_weight: f64,
    /// An alert joins the best incident scoring at least this.
    pub min_score: f64,
    /// An incident whose alerts have all resolved stays open this long
    /// (a flapping alert rejoins it) before it is resolved.
    pub quiet_secs: u64,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            window_secs: 300,
            max_hops: 1,
            hop_decay: 0.6,
            label_weight: 0.8,
            min_score: 0.5,
            quiet_secs: 300,
        }
    }
}

/// An open incident as [`assign`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    /// Its members (each alert once, with its last start).
    pub alerts: Vec<Alert>,
    /// When its last member resolved, if all have (ns); `None` while any
    /// fires.
    pub quiet_since_ns: Option<i64>,
}

fn identifying(labels: &BTreeMap<String, String>) -> HashSet<(&str, &str)> {
    labels
        .iter()
        .filter(|(k, _)| !NOT_IDENTIFYING.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn jaccard(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> f64 {
    let (a, b) = (identifying(a), identifying(b));
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

/// How related alert `a` is to alert `m` (0..1).
pub fn relatedness(cfg: &CorrelateConfig, graph: &ServiceGraph, a: &Alert, m: &Alert) -> f64 {
    if a.key == m.key {
        return 1.0;
    }
    let window = cfg.window_secs as i64 * 1_000_000_000;
    if (a.starts_ns - m.starts_ns).abs() > window {
        return 0.0;
    }
    let by_labels = cfg.label_weight * jaccard(&a.labels, &m.labels);
    let by_graph = match (&a.service, &m.service) {
        (Some(x), Some(y)) if x == y => 1.0,
        (Some(x), Some(y)) => graph
            .hops(x, y, cfg.max_hops)
            .map_or(0.0, |h| cfg.hop_decay.powi(h as i32)),
        _ => 0.0,
    };
    by_graph.max(by_labels)
}

/// Which of `open` (by index) alert `a` joins, or `None` for a new
/// incident. An incident quiet for longer than `quiet_secs` at
/// `a.starts_ns` takes no one.
pub fn assign(
    cfg: &CorrelateConfig,
    graph: &ServiceGraph,
    open: &[OpenIncident],
    a: &Alert,
) -> Option<usize> {
    let quiet = cfg.quiet_secs as i64 * 1_000_000_000;
    let mut best: Option<(usize, f64)> = None;
    for (i, inc) in open.iter().enumerate() {
        if inc.quiet_since_ns.is_some_and(|q| a.starts_ns - q > quiet) {
            continue;
        }
        let score = inc
            .alerts
            .iter()
            .map(|m| relatedness(cfg, graph, a, m))
            .fold(0.0, f64::max);
        if score >= cfg.min_score && best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// The order of `alerts` (indices), probable root cause first. `hint`
/// is a root-cause ranking of services from traces, best first, if any.
pub fn rank(graph: &ServiceGraph, alerts: &[Alert], hint: &[String]) -> Vec<usize> {
    let services: HashSet<&str> = alerts.iter().filter_map(|a| a.service.as_deref()).collect();
    let key = |a: &Alert| {
        let Some(s) = a.service.as_deref() else {
            // Without a service it cannot be placed: after those that can.
            return (1usize, usize::MAX, 0usize, usize::MAX);
        };
        // Alerting services this one depends on: a root has none.
        let below = services.iter().filter(|o| graph.calls(s, o)).count();
        // Alerting services that depend on this one.
        let above = services.iter().filter(|o| graph.calls(o, s)).count();
        let hinted = hint.iter().position(|h| h == s).unwrap_or(usize::MAX);
        (0, below, usize::MAX - above, hinted)
    };
    let mut order: Vec<usize> = (0..alerts.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&alerts[i], &alerts[j]);
        key(a)
            .cmp(&key(b))
            .then(b.severity.cmp(&a.severity))
            .then(a.starts_ns.cmp(&b.starts_ns))
            .then(a.key.cmp(&b.key))
    });
    order
}

/// Labels that mark an alert as business-critical: `business_critical`
/// true, `tier` critical/0/tier0/tier-0/gold, `priority` p0/p1.
pub fn business_critical(labels: &BTreeMap<String, String>) -> bool {
    let is = |k: &str, vs: &[&str]| {
        labels
            .get(k)
            .is_some_and(|v| vs.contains(&v.to_ascii_lowercase().as_str()))
    };
    is("business_critical", &["true", "yes", "1"])
        || is("tier", &["critical", "0", "tier0", "tier-0", "gold"])
        || is("priority", &["p0", "p1"])
}

/// The parts of a priority score, each in 0..1, and the total in 0..100.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Priority {
    /// 40 x the highest member severity (critical 1, warning 0.6, info 0.3).
    pub severity: f64,
    /// 25 x the share of known services affected (at least one of one).
    pub blast_radius: f64,
    /// 15 x whether the root-cause alert has not fired in the look-back.
    pub novelty: f64,
    /// 20 x whether a member carries business-critical labels.
    pub business: f64,
    /// The weighted sum, 0..100.
    pub score: f64,
}

/// The priority of an incident of `alerts`, over a graph of
/// `known_services` services; `novel` when its root-cause alert has not
/// fired before in the look-back.
pub fn priority(alerts: &[Alert], known_services: usize, novel: bool) -> Priority {
    let severity = alerts
        .iter()
        .map(|a| a.severity.weight())
        .fold(0.0, f64::max);
    let services: HashSet<&str> = alerts.iter().filter_map(|a| a.service.as_deref()).collect();
    let blast_radius = (services.len().max(1) as f64 / known_services.max(1) as f64).min(1.0);
    let novelty = if novel { 1.0 } else { 0.0 };
    let business = if alerts.iter().any(|a| business_critical(&a.labels)) {
        1.0
    } else {
        0.0
    };
    let score = 40.0 * severity + 25.0 * blast_radius + 15.0 * novelty + 20.0 * business;
    Priority {
        severity,
        blast_radius,
        novelty,
        business,
        score: (score * 10.0).round() / 10.0,
    }
}

/// When a group's notifications go out, as Alertmanager times them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Wait this long after a group opens before its first notification,
    /// so that alerts of the same fault arrive in one message.
    pub group_wait_secs: u64,
    /// At most one update per this interval while the group changes.
    pub group_interval_secs: u64,
    /// Send an unchanged firing group again after this long (0: never).
    pub repeat_interval_secs: u64,
    /// Low-priority incidents ([`low_priority`]) are not told one by one
    /// but together, in one digest group whose first message waits this
    /// long and whose updates come at most this often (0: off, the
    /// default). Opsgenie and PagerDuty bundle low-urgency alerts the same
    /// way; an incident that gains a critical alert leaves the digest.
    pub digest_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        // Alertmanager's defaults.
        Self {
            group_wait_secs: 30,
            group_interval_secs: 300,
            repeat_interval_secs: 4 * 3600,
            digest_secs: 0,
        }
    }
}

/// Whether an incident of `alerts` is low-priority: none is critical.
pub fn low_priority(alerts: &[Alert]) -> bool {
    alerts.iter().all(|a| a.severity < Severity::Critical)
}

/// What a group's last notification said, to decide the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// When the group opened, ns.
    pub opened_ns: i64,
    /// When its last notification went out, ns (`None`: never).
    pub sent_ns: Option<i64>,
    /// The firing members it named (their keys), sorted.
    pub sent_firing: Vec<String>,
    /// Whether it was the resolution.
    pub sent_resolved: bool,
}

/// What to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet; look again at this time (ns), if ever.
    Wait(Option<i64>),
    /// The group fires: send its current state.
    Firing,
    /// The group resolved: send the resolution.
    Resolved,
}

impl Policy {
    /// The timing of the digest group, when digests are on.
    pub fn digest(&self) -> Option<Policy> {
        (self.digest_secs > 0).then_some(Policy {
            group_wait_secs: self.digest_secs,
            group_interval_secs: self.digest_secs,
            repeat_interval_secs: self.repeat_interval_secs,
            digest_secs: 0,
        })
    }

    /// What is due at `now_ns` for a group whose firing members are
    /// `firing` (keys, sorted) and which is `resolved` (all its members
    /// resolved and its quiet time over).
    pub fn due(&self, s: &Schedule, firing: &[String], resolved: bool, now_ns: i64) -> Due {
        const S: i64 = 1_000_000_000;
        let Some(sent) = s.sent_ns else {
            if resolved {
                // Opened and closed before anyone was told: say nothing.
                return Due::Wait(None);
            }
            let at = s.opened_ns + self.group_wait_secs as i64 * S;
            return if now_ns >= at {
                Due::Firing
            } else {
                Due::Wait(Some(at))
            };
        };
        if s.sent_resolved {
            return Due::Wait(None);
        }
        if resolved {
            return Due::Resolved;
        }
        let next = sent + self.group_interval_secs as i64 * S;
        // New members since the last message: an update, at most once per
        // group interval (a member that left is said with the resolution).
        let grown = firing
            .iter()
            .any(|k| s.sent_firing.binary_search(k).is_err());
        if grown {
            return if now_ns >= next {
                Due::Firing
            } else {
                Due::Wait(Some(next))
            };
        }
        if self.repeat_interval_secs > 0 && !firing.is_empty() {
            let at = sent + self.repeat_interval_secs as i64 * S;
            return if now_ns >= at {
                Due::Firing
            } else {
                Due::Wait(Some(at))
            };
        }
        Due::Wait(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str, service: &str, t: i64) -> Alert {
        Alert {
            key: key.into(),
            service: Some(service.into()),
            labels: BTreeMap::from([("service".into(), service.into())]),
            severity: Severity::Warning,
            starts_ns: t * 1_000_000_000,
        }
    }

    fn shop() -> ServiceGraph {
        ServiceGraph::from_edges([
            ("frontend", "checkout"),
            ("checkout", "payment"),
            ("payment", "payment-db"),
            ("frontend", "search"),
        ])
    }

    #[test]
    fn callers_join_their_callee_and_strangers_do_not() {
        let cfg = CorrelateConfig::default();
        let g = shop();
        let open = vec![OpenIncident {
            alerts: vec![alert("a", "payment-db", 0)],
            quiet_since_ns: None,
        }];
        assert_eq!(assign(&cfg, &g, &open, &alert("b", "payment", 30)), Some(0));
        // Two calls up the path is too far by default; one is enough once
        // the caller in between fires.
        assert_eq!(assign(&cfg, &g, &open, &alert("c", "checkout", 60)), None);
        let mut chain = open.clone();
        chain[0].alerts.push(alert("b", "payment", 30));
        assert_eq!(
            assign(&cfg, &g, &chain, &alert("c", "checkout", 60)),
            Some(0)
        );
        assert_eq!(assign(&cfg, &g, &open, &alert("d", "search", 60)), None);
        // Too late to be the same fault.
        assert_eq!(assign(&cfg, &g, &open, &alert("e", "payment", 5_000)), None);
        // A flap rejoins while the incident is quiet, not after.
        let quiet = vec![OpenIncident {
            alerts: vec![alert("a", "payment-db", 0)],
            quiet_since_ns: Some(100 * 1_000_000_000),
        }];
        assert_eq!(
            assign(&cfg, &g, &quiet, &alert("a", "payment-db", 200)),
            Some(0)
        );
        assert_eq!(
            assign(&cfg, &g, &quiet, &alert("a", "payment-db", 1_000)),
            None
        );
    }

    #[test]
    fn the_deepest_alerting_service_ranks_first_even_when_it_fired_last() {
        let g = shop();
        let alerts = vec![
            alert("f", "frontend", 0),
            alert("c", "checkout", 5),
            alert("p", "payment", 10),
            alert("d", "payment-db", 40),
        ];
        let order = rank(&g, &alerts, &[]);
        assert_eq!(alerts[order[0]].key, "d");
        assert_eq!(alerts[order[3]].key, "f");
    }

    #[test]
    fn schedules_wait_batch_and_resolve_once() {
        let p = Policy {
            group_wait_secs: 10,
            group_interval_secs: 60,
            repeat_interval_secs: 0,
            digest_secs: 0,
        };
        let s0 = Schedule::default();
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        const S: i64 = 1_000_000_000;
        assert_eq!(
            p.due(&s0, &k(&["a"]), false, 5 * S),
            Due::Wait(Some(10 * S))
        );
        assert_eq!(p.due(&s0, &k(&["a"]), false, 10 * S), Due::Firing);
        let s1 = Schedule {
            sent_ns: Some(10 * S),
            sent_firing: k(&["a"]),
            ..s0
        };
        assert_eq!(p.due(&s1, &k(&["a"]), false, 20 * S), Due::Wait(None));
        assert_eq!(
            p.due(&s1, &k(&["a", "b"]), false, 20 * S),
            Due::Wait(Some(70 * S))
        );
        assert_eq!(p.due(&s1, &k(&["a", "b"]), false, 70 * S), Due::Firing);
        assert_eq!(p.due(&s1, &[], true, 30 * S), Due::Resolved);
        let s2 = Schedule {
            sent_resolved: true,
            ..s1
        };
        assert_eq!(p.due(&s2, &[], true, 90 * S), Due::Wait(None));
    }

    #[test]
    fn priority_weighs_severity_spread_novelty_and_business_labels() {
        let mut a = alert("a", "payment", 0);
        a.severity = Severity::Critical;
        a.labels.insert("tier".into(), "critical".into());
        let p = priority(&[a, alert("b", "checkout", 0)], 4, true);
        assert_eq!(p.score, 40.0 + 12.5 + 15.0 + 20.0);
        let q = priority(&[alert("c", "search", 0)], 4, false);
        assert!(q.score < p.score);
    }
}
