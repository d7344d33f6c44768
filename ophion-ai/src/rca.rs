//! Root-cause ranking for an incident window.
//!
//! Symptoms travel up the call graph: when a database slows down, every
//! caller's request gets longer, and when a payment service fails,
//! checkout and the front end fail with it. [`rank`] therefore asks, for
//! each service, how much of the *requests'* degradation it accounts for,
//! comparing the incident window with the time before it:
//!
//! - **critical-path time**: each trace's duration is split among its
//!   spans along the critical path (the chain of work the request waited
//!   on, as Jaeger draws it). Time a span waited on children is theirs;
//!   parallel children off the critical path cost the request nothing;
//!   children that outlive their parent (asynchronous work, clock skew)
//!   are clipped to it. A caller that only waits is never charged for its
//!   callee's slowness; a wait before a retry is charged to the callee
//!   that failed;
//! - **origin errors**: a failed span none of whose children failed is
//!   where the failure started. A failed call whose callee span did not
//!   fail (a timeout) is charged to the callee;
//! - **who a span belongs to**: server, consumer and internal spans to
//!   their service; client and producer spans to whom they call — the
//!   callee's service when it is traced, else its `peer.service` or
//!   `server.address` (databases, uninstrumented services), so a database
//!   is a candidate of its own under the name its callers give it;
//! - **versions**: a `service.version` seen in the incident but not
//!   before (a deployment) strengthens a candidate that also degraded;
//!   alone it proves nothing.
//!
//! Per service, the change per request of its critical-path time and of
//! its origin-error rate is tested against the baseline's spread (a
//! z-score, so background noise and drift count for nothing), and the
//! significant increases become shares of the total. The score mixes the
//! latency and error shares in proportion to how clearly the requests'
//! latency and error rate moved. Each candidate names its worst
//! operation, a kind (latency, errors, saturation, deployment) and its
//! evidence: the numbers that moved and example trace ids.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use ophion_core::query::sql_literal;

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
    /// The service (for a database or an uninstrumented service, the name
    /// its callers give it).
    pub service: String,
    /// Its operation that moved most.
    pub operation: String,
    /// What went wrong.
    pub kind: CauseKind,
    /// Confidence in `[0, 1]`: the share of the requests' degradation
    /// this candidate accounts for (for ranking; not a probability).
    pub score: f64,
    /// Example trace ids and the numbers behind the score.
    pub evidence: Vec<String>,
}

/// Ranking settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RcaConfig {
    /// Fewest requests each window needs for a ranking.
    pub min_requests: usize,
    /// z-score of a service's change below which it counts for nothing.
    pub z_low: f64,
    /// z-score from which a service's change counts in full.
    pub z_high: f64,
    /// Factor on the score of a degraded service with a new version.
    pub deployment_factor: f64,
    /// Relative slowdown of a service's own time that counts in full
    /// (1.0: twice as slow).
    pub doubling: f64,
    /// Rise of the share of a service's requests failing there that
    /// counts as much as `doubling`.
    pub errors_per_doubling: f64,
    /// Weight of the impact on the requests against the service's own
    /// change, in the score.
    pub impact_weight: f64,
}

impl Default for RcaConfig {
    fn default() -> Self {
        Self {
            min_requests: 10,
            z_low: 1.5,
            z_high: 4.0,
            deployment_factor: 1.25,
            doubling: 1.0,
            errors_per_doubling: 0.1,
            impact_weight: 0.3,
        }
    }
}

/// One trace's spans, as indices into the input.
struct Trace {
    spans: Vec<usize>,
    /// Children of each span (positions in `spans`).
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

fn trace_of(all: &[SpanInfo], idx: Vec<usize>) -> Trace {
    let pos: HashMap<&str, usize> = idx
        .iter()
        .enumerate()
        .map(|(p, &i)| (all[i].span_id.as_str(), p))
        .collect();
    let mut children = vec![Vec::new(); idx.len()];
    let mut roots = Vec::new();
    for (p, &i) in idx.iter().enumerate() {
        match all[i].parent_id.as_deref().and_then(|pid| pos.get(pid)) {
            Some(&parent) if parent != p => children[parent].push(p),
            _ => roots.push(p),
        }
    }
    Trace {
        spans: idx,
        children,
        roots,
    }
}

fn end(s: &SpanInfo) -> i64 {
    s.start_ns.saturating_add(s.duration_ns.max(0))
}

/// Who each span of `t` belongs to (see the module documentation).
fn owners<'a>(all: &'a [SpanInfo], t: &Trace) -> Vec<&'a str> {
    (0..t.spans.len())
        .map(|p| {
            let s = &all[t.spans[p]];
            if s.kind != "client" && s.kind != "producer" {
                return s.service.as_str();
            }
            let callee = t.children[p]
                .iter()
                .map(|&c| &all[t.spans[c]])
                .find(|c| c.kind == "server" || c.kind == "consumer");
            match callee {
                Some(c) => c.service.as_str(),
                None => s
                    .peer
                    .as_deref()
                    .or(s.db_system.as_deref())
                    .unwrap_or(&s.service),
            }
        })
        .collect()
}

/// Splits the trace's time along its critical path: the time each span
/// is charged for, by position (see the module documentation).
fn critical(all: &[SpanInfo], t: &Trace, owner: &[&str]) -> Vec<(usize, f64)> {
    let mut charged: Vec<(usize, f64)> = Vec::new();
    // (span position, window start, window end)
    // The roots, and consumers that start after their producer ended
    // (asynchronous work: a unit of work of its own).
    let detached = (0..t.spans.len()).filter(|&p| {
        let s = &all[t.spans[p]];
        s.kind == "consumer"
            && t.children
                .iter()
                .position(|kids| kids.contains(&p))
                .is_some_and(|parent| s.start_ns >= end(&all[t.spans[parent]]))
    });
    let mut stack: Vec<(usize, i64, i64)> = t
        .roots
        .iter()
        .copied()
        .chain(detached)
        .map(|r| {
            let s = &all[t.spans[r]];
            (r, s.start_ns, end(s))
        })
        .collect();
    while let Some((p, lo, hi)) = stack.pop() {
        if hi <= lo {
            continue;
        }
        let mut kids: Vec<usize> = t.children[p].clone();
        kids.sort_by_key(|&c| std::cmp::Reverse(end(&all[t.spans[c]])));
        let mut at = hi;
        // The child processed last (it starts where `at` is now).
        let mut later: Option<usize> = None;
        for c in kids {
            let cs = &all[t.spans[c]];
            if cs.start_ns >= at {
                continue; // overlaps what is already charged
            }
            let c_end = end(cs).min(at);
            if c_end <= lo {
                break;
            }
            let gap = (at - c_end) as f64;
            if gap > 0.0 {
                charged.push((retry_wait(all, t, owner, p, later, c).unwrap_or(p), gap));
            }
            let c_lo = cs.start_ns.max(lo);
            stack.push((c, c_lo, c_end));
            later = Some(c);
            at = c_lo;
        }
        if at > lo {
            charged.push((p, (at - lo) as f64));
        }
    }
    charged
}

/// Each span's own time: its interval less the union of its children's
/// (clipped to it), by position; a wait before a retry goes to the
/// callee, as on the critical path.
fn exclusive(all: &[SpanInfo], t: &Trace, owner: &[&str]) -> Vec<(usize, f64)> {
    let mut out = Vec::with_capacity(t.spans.len());
    for p in 0..t.spans.len() {
        let s = &all[t.spans[p]];
        let (lo, hi) = (s.start_ns, end(s));
        let mut kids: Vec<usize> = t.children[p].clone();
        kids.sort_by_key(|&c| all[t.spans[c]].start_ns);
        let mut at = lo;
        let mut before: Option<usize> = None;
        for c in kids {
            let cs = &all[t.spans[c]];
            let (c_lo, c_hi) = (cs.start_ns.clamp(lo, hi), end(cs).clamp(lo, hi));
            if c_lo > at {
                let to = before
                    .and_then(|b| retry_wait(all, t, owner, p, Some(c), b))
                    .unwrap_or(p);
                out.push((to, (c_lo - at) as f64));
            }
            if c_hi > at {
                at = c_hi;
                before = Some(c);
            }
        }
        if hi > at {
            out.push((p, (hi - at) as f64));
        }
    }
    out
}

/// A wait between a failed call (`before`) and its retry (`later`, the
/// same operation of the same callee) belongs to the callee.
fn retry_wait(
    all: &[SpanInfo],
    t: &Trace,
    owner: &[&str],
    parent: usize,
    later: Option<usize>,
    before: usize,
) -> Option<usize> {
    let later = later?;
    let (a, b) = (&all[t.spans[before]], &all[t.spans[later]]);
    (a.error && a.name == b.name && owner[before] == owner[later] && owner[later] != owner[parent])
        .then_some(later)
}

/// Per request, per window: mean and variance of a per-trace quantity.
#[derive(Debug, Default, Clone, Copy)]
struct Moments {
    n: f64,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        self.n += 1.0;
        self.sum += x;
        self.sum_sq += x * x;
    }
    fn mean(&self) -> f64 {
        if self.n > 0.0 { self.sum / self.n } else { 0.0 }
    }
    fn var(&self) -> f64 {
        if self.n > 1.0 {
            ((self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1.0)).max(0.0)
        } else {
            0.0
        }
    }
}

/// z-score of the rise in mean from `b` to `i` (Welch), with a floor on
/// the spread so a constant series does not make noise infinitely sure.
fn z_rise(b: &Moments, i: &Moments, floor: f64) -> f64 {
    let se = (b.var() / b.n.max(1.0) + i.var() / i.n.max(1.0)).sqrt();
    (i.mean() - b.mean()) / se.max(floor)
}

/// What one candidate gathered.
#[derive(Default)]
struct Owner<'a> {
    /// Per request (every trace of the window): critical-path time and
    /// whether a failure started here.
    impact: [Moments; 2],
    impact_errors: [Moments; 2],
    /// Per request it took part in: own time and whether a failure
    /// started here.
    own: [Moments; 2],
    own_errors: [Moments; 2],
    /// Per operation: critical-path ns and origin errors, per window.
    ops: HashMap<&'a str, [(f64, f64); 2]>,
    versions: [HashSet<&'a str>; 2],
    db_system: Option<&'a str>,
    /// Incident traces with the most critical-path time here, and with an
    /// origin error here.
    slowest: Vec<(f64, &'a str)>,
    failing: Vec<&'a str>,
}

/// What one trace says of one owner: critical-path ns, own ns, whether a
/// failure started there.
#[derive(Default, Clone, Copy)]
struct InTrace {
    critical: f64,
    own: f64,
    failed: bool,
}

/// Ranks candidate root causes of the trouble in `[start_ns, end_ns)`,
/// using the spans before `start_ns` as the baseline. Best first; empty
/// when either window has fewer than `min_requests` traces.
pub fn rank(spans: &[SpanInfo], start_ns: i64, end_ns: i64, cfg: &RcaConfig) -> Vec<Candidate> {
    let mut by_trace: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        by_trace.entry(&s.trace_id).or_default().push(i);
    }
    let mut traces: Vec<(&str, Vec<usize>)> = by_trace.into_iter().collect();
    traces.sort_unstable_by(|a, b| a.0.cmp(b.0));

    let mut seen: HashMap<&str, Owner<'_>> = HashMap::new();
    let mut requests = [Moments::default(); 2];
    let mut failed_requests = [Moments::default(); 2];
    let mut per_trace: Vec<(usize, HashMap<&str, InTrace>)> = Vec::new();
    for (trace_id, idx) in traces {
        let t = trace_of(spans, idx);
        let Some(begin) = t.roots.iter().map(|&r| spans[t.spans[r]].start_ns).min() else {
            continue;
        };
        let w = if begin < start_ns {
            0
        } else if begin < end_ns {
            1
        } else {
            continue;
        };
        let owner = owners(spans, &t);
        let mut here: HashMap<&str, InTrace> = HashMap::new();
        for (p, ns) in critical(spans, &t, &owner) {
            here.entry(owner[p]).or_default().critical += ns;
            let o = seen.entry(owner[p]).or_default();
            o.ops.entry(spans[t.spans[p]].name.as_str()).or_default()[w].0 += ns;
        }
        for (p, ns) in exclusive(spans, &t, &owner) {
            here.entry(owner[p]).or_default().own += ns;
        }
        for (p, &i) in t.spans.iter().enumerate() {
            let s = &spans[i];
            let o = seen.entry(owner[p]).or_default();
            if s.kind != "client" && s.kind != "producer" {
                if let Some(v) = s.version.as_deref() {
                    o.versions[w].insert(v);
                }
            } else if s.db_system.is_some() && owner[p] != s.service {
                o.db_system = s.db_system.as_deref();
            }
            let child_failed = t.children[p].iter().any(|&c| spans[t.spans[c]].error);
            if s.error && !child_failed {
                here.entry(owner[p]).or_default().failed = true;
                o.ops.entry(s.name.as_str()).or_default()[w].1 += 1.0;
            }
        }
        let duration = t
            .roots
            .iter()
            .map(|&r| end(&spans[t.spans[r]]))
            .max()
            .unwrap_or(begin)
            - begin;
        requests[w].add(duration as f64);
        let root_failed = t.roots.iter().any(|&r| spans[t.spans[r]].error);
        failed_requests[w].add(f64::from(u8::from(root_failed)));
        for (o, x) in &here {
            let entry = seen.entry(o).or_default();
            entry.own[w].add(x.own);
            entry.own_errors[w].add(f64::from(u8::from(x.failed)));
            if w == 1 {
                entry.slowest.push((x.own, trace_id));
                if x.failed {
                    entry.failing.push(trace_id);
                }
            }
        }
        per_trace.push((w, here));
    }
    if requests[0].n < cfg.min_requests as f64 || requests[1].n < cfg.min_requests as f64 {
        return Vec::new();
    }
    // The impact counts every request (zero where the owner did nothing).
    for (w, here) in &per_trace {
        for (name, o) in seen.iter_mut() {
            let x = here.get(name).copied().unwrap_or_default();
            o.impact[*w].add(x.critical);
            o.impact_errors[*w].add(f64::from(u8::from(x.failed)));
        }
    }

    let gate = |z: f64| ((z - cfg.z_low) / (cfg.z_high - cfg.z_low)).clamp(0.0, 1.0);
    // A microsecond and one error in a thousand: the least spread a
    // window is credited with.
    let (ns_floor, err_floor) = (1_000.0, 1e-3);
    // How clearly the requests got slower and failed more.
    let w_latency = gate(z_rise(&requests[0], &requests[1], ns_floor));
    let w_errors = gate(z_rise(&failed_requests[0], &failed_requests[1], err_floor));
    struct Moved<'a> {
        name: &'a str,
        /// Own behaviour: relative slowdown, rise of the failure rate,
        /// each counted only when significant.
        slower: f64,
        failing: f64,
        /// Impact on the requests: added critical-path time and failures
        /// per request, when significant.
        added_time: f64,
        added_failures: f64,
    }
    let moved: Vec<Moved<'_>> = seen
        .iter()
        .map(|(name, o)| {
            let own_z = z_rise(&o.own[0], &o.own[1], ns_floor);
            let err_z = z_rise(&o.own_errors[0], &o.own_errors[1], err_floor);
            let base = o.own[0].mean();
            Moved {
                name,
                slower: if base > 0.0 {
                    (o.own[1].mean() / base - 1.0).max(0.0) * gate(own_z)
                } else {
                    0.0
                },
                failing: (o.own_errors[1].mean() - o.own_errors[0].mean()).max(0.0) * gate(err_z),
                added_time: (o.impact[1].mean() - o.impact[0].mean()).max(0.0)
                    * gate(z_rise(&o.impact[0], &o.impact[1], ns_floor)),
                added_failures: (o.impact_errors[1].mean() - o.impact_errors[0].mean()).max(0.0)
                    * gate(z_rise(&o.impact_errors[0], &o.impact_errors[1], err_floor)),
            }
        })
        .collect();
    let total = |f: &dyn Fn(&Moved<'_>) -> f64| moved.iter().map(f).sum::<f64>();
    let (total_time, total_failures) = (total(&|m| m.added_time), total(&|m| m.added_failures));
    let share = |x: f64, of: f64| if of > 0.0 { x / of } else { 0.0 };

    let mut out = Vec::new();
    for m in moved {
        // Own behaviour, on a common scale: doubling the own time weighs
        // as much as failing `errors_per_doubling` more of the requests.
        let own_latency = (m.slower / cfg.doubling).min(1.0);
        let own_errors = (m.failing / cfg.errors_per_doubling).min(1.0);
        let impact_latency = w_latency * share(m.added_time, total_time);
        let impact_errors = w_errors * share(m.added_failures, total_failures);
        let latency = own_latency.max(impact_latency);
        let errors = own_errors.max(impact_errors);
        let mut score = (1.0 - cfg.impact_weight) * own_latency.max(own_errors)
            + cfg.impact_weight * impact_latency.max(impact_errors);
        if score <= 0.0 {
            continue;
        }
        let o = seen.get_mut(m.name).expect("an owner of the map");
        let deployed =
            !o.versions[0].is_empty() && o.versions[1].iter().any(|v| !o.versions[0].contains(v));
        if deployed {
            score = (score * cfg.deployment_factor).min(1.0);
        }
        let kind = if deployed {
            CauseKind::Deployment
        } else if latency >= 0.3 && errors >= 0.3 {
            CauseKind::Saturation
        } else if errors > latency {
            CauseKind::Errors
        } else {
            CauseKind::Latency
        };
        out.push(candidate(o, m.name, kind, score, &requests, deployed));
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    out
}

fn candidate(
    o: &mut Owner<'_>,
    name: &str,
    kind: CauseKind,
    score: f64,
    requests: &[Moments; 2],
    deployed: bool,
) -> Candidate {
    let (nb, ni) = (requests[0].n.max(1.0), requests[1].n.max(1.0));
    // The operation that moved most, by the kind's measure.
    let by_errors = kind == CauseKind::Errors;
    let operation = o
        .ops
        .iter()
        .map(|(op, w)| {
            let moved = if by_errors {
                w[1].1 / ni - w[0].1 / nb
            } else {
                w[1].0 / ni - w[0].0 / nb
            };
            (moved, *op)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(a.1)))
        .map(|(_, op)| op.to_owned())
        .unwrap_or_default();
    let mut evidence = vec![
        format!(
            "own time per request it serves {:.2} ms -> {:.2} ms ({} and {} such requests)",
            o.own[0].mean() / 1e6,
            o.own[1].mean() / 1e6,
            o.own[0].n,
            o.own[1].n
        ),
        format!(
            "its requests failing here {:.1}% -> {:.1}%",
            o.own_errors[0].mean() * 100.0,
            o.own_errors[1].mean() * 100.0
        ),
        format!(
            "critical-path time per request of all {} and {} {:.2} ms -> {:.2} ms",
            requests[0].n,
            requests[1].n,
            o.impact[0].mean() / 1e6,
            o.impact[1].mean() / 1e6
        ),
    ];
    if let Some(db) = o.db_system {
        evidence.push(format!(
            "a {db} database, seen through its callers' client spans"
        ));
    }
    if deployed {
        let mut new: Vec<&str> = o.versions[1].difference(&o.versions[0]).copied().collect();
        new.sort_unstable();
        evidence.push(format!("new version {}", new.join(", ")));
    }
    evidence.push(format!(
        "SELECT * FROM spans WHERE service_name = {} AND name = {}",
        sql_literal(name),
        sql_literal(&operation)
    ));
    o.slowest
        .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let examples: Vec<&str> = match kind {
        CauseKind::Errors => o.failing.clone(),
        _ => o.slowest.iter().map(|(_, t)| *t).collect(),
    };
    let mut traces: Vec<&str> = Vec::new();
    for t in examples {
        if !traces.contains(&t) {
            traces.push(t);
        }
        if traces.len() == 3 {
            break;
        }
    }
    evidence.extend(traces.into_iter().map(|t| format!("trace {t}")));
    Candidate {
        service: name.to_owned(),
        operation,
        kind,
        score,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        trace: &str,
        id: &str,
        parent: Option<&str>,
        service: &str,
        kind: &str,
        start: i64,
        dur: i64,
    ) -> SpanInfo {
        SpanInfo {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            service: service.into(),
            name: format!("{service}-op"),
            kind: kind.into(),
            start_ns: start,
            duration_ns: dur,
            ..Default::default()
        }
    }

    #[test]
    fn the_critical_path_charges_waits_to_the_callee_and_skips_parallel_work() {
        // Root 0..100 calls A (client 10..90 -> server 12..88) and, in
        // parallel, B (client 10..40 -> server 11..39).
        let spans = vec![
            span("t", "r", None, "front", "server", 0, 100),
            span("t", "ca", Some("r"), "front", "client", 10, 80),
            span("t", "sa", Some("ca"), "a", "server", 12, 76),
            span("t", "cb", Some("r"), "front", "client", 10, 30),
            span("t", "sb", Some("cb"), "b", "server", 11, 28),
        ];
        let t = trace_of(&spans, (0..spans.len()).collect());
        let owner = owners(&spans, &t);
        assert_eq!(owner, ["front", "a", "a", "b", "b"]);
        let mut by: HashMap<&str, f64> = HashMap::new();
        for (p, ns) in critical(&spans, &t, &owner) {
            *by.entry(owner[p]).or_default() += ns;
        }
        assert_eq!(by.get("front"), Some(&20.0), "{by:?}");
        assert_eq!(by.get("a"), Some(&80.0), "{by:?}");
        assert_eq!(by.get("b"), None, "off the critical path: {by:?}");
    }

    #[test]
    fn a_child_that_outlives_its_parent_is_clipped() {
        let spans = vec![
            span("t", "r", None, "front", "server", 0, 100),
            span("t", "p", Some("r"), "front", "producer", 90, 5),
            span("t", "c", Some("p"), "mail", "consumer", 200, 50),
        ];
        let t = trace_of(&spans, (0..spans.len()).collect());
        let owner = owners(&spans, &t);
        let mut by: HashMap<&str, f64> = HashMap::new();
        for (p, ns) in critical(&spans, &t, &owner) {
            *by.entry(owner[p]).or_default() += ns;
        }
        // The request: its own 100 ns, of which 5 publishing (the
        // consumer's side); the consumer's 50 are a unit of work of their
        // own, not the request's.
        assert_eq!(by.get("front"), Some(&95.0), "{by:?}");
        assert_eq!(by.get("mail"), Some(&55.0), "{by:?}");
    }
}
