//! A seeded fault-injection generator for judging root-cause analysis: a
//! shop of 13 services, traces through it, and one injected fault per case
//! (latency, errors, resource saturation or a bad deployment) that
//! propagates to the callers, over background noise and a decoy service
//! that gets slightly slower at the same time.

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use crate::{rca::CauseKind, spans::SpanInfo};

/// An operation: service, name, own time in ms, and the operations it calls.
struct Op {
    /// The service, or for a database the `db.system`: database calls are
    /// client spans of the calling service, as OpenTelemetry records them.
    service: &'static str,
    db: bool,
    name: &'static str,
    own_ms: f64,
    calls: &'static [usize],
}

/// The shop's call graph (indices into this table).
const OPS: &[Op] = &[
    /* 0 */
    Op {
        service: "frontend",
        db: false,
        name: "GET /",
        own_ms: 4.0,
        calls: &[2, 7, 9, 4, 8],
    },
    /* 1 */
    Op {
        service: "frontend",
        db: false,
        name: "GET /product",
        own_ms: 3.0,
        calls: &[3, 7, 9, 8],
    },
    /* 2 */
    Op {
        service: "catalog",
        db: false,
        name: "ListProducts",
        own_ms: 2.0,
        calls: &[13],
    },
    /* 3 */
    Op {
        service: "catalog",
        db: false,
        name: "GetProduct",
        own_ms: 1.0,
        calls: &[13],
    },
    /* 4 */
    Op {
        service: "cart",
        db: false,
        name: "GetCart",
        own_ms: 1.0,
        calls: &[14],
    },
    /* 5 */
    Op {
        service: "frontend",
        db: false,
        name: "POST /checkout",
        own_ms: 5.0,
        calls: &[6],
    },
    /* 6 */
    Op {
        service: "checkout",
        db: false,
        name: "PlaceOrder",
        own_ms: 3.0,
        calls: &[4, 3, 8, 10, 11, 12, 15],
    },
    /* 7 */
    Op {
        service: "recommend",
        db: false,
        name: "Recommend",
        own_ms: 6.0,
        calls: &[2],
    },
    /* 8 */
    Op {
        service: "currency",
        db: false,
        name: "Convert",
        own_ms: 0.5,
        calls: &[],
    },
    /* 9 */
    Op {
        service: "ad",
        db: false,
        name: "GetAds",
        own_ms: 2.0,
        calls: &[],
    },
    /* 10 */
    Op {
        service: "shipping",
        db: false,
        name: "Quote",
        own_ms: 2.0,
        calls: &[8],
    },
    /* 11 */
    Op {
        service: "payment",
        db: false,
        name: "Charge",
        own_ms: 8.0,
        calls: &[16],
    },
    /* 12 */
    Op {
        service: "shipping",
        db: false,
        name: "Ship",
        own_ms: 3.0,
        calls: &[],
    },
    /* 13 */
    Op {
        service: "postgresql",
        db: true,
        name: "SELECT products",
        own_ms: 1.5,
        calls: &[],
    },
    /* 14 */
    Op {
        service: "redis",
        db: true,
        name: "GET cart",
        own_ms: 0.3,
        calls: &[],
    },
    /* 15 */
    Op {
        service: "email",
        db: false,
        name: "Send",
        own_ms: 4.0,
        calls: &[],
    },
    /* 16 */
    Op {
        service: "ledger",
        db: false,
        name: "Record",
        own_ms: 2.0,
        calls: &[],
    },
    /* 17 */
    Op {
        service: "frontend",
        db: false,
        name: "GET /search",
        own_ms: 2.0,
        calls: &[18],
    },
    /* 18 */
    Op {
        service: "search",
        db: false,
        name: "Query",
        own_ms: 5.0,
        calls: &[3],
    },
];

/// Entry operations and their shares of traffic.
const ENTRIES: &[(usize, f64)] = &[(0, 0.35), (1, 0.3), (5, 0.15), (17, 0.2)];

/// The services (root-cause candidates), in table order.
pub fn services() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for op in OPS {
        if !out.contains(&op.service) {
            out.push(op.service);
        }
    }
    out
}

/// One generated incident.
#[derive(Debug, Clone)]
pub struct Case {
    /// Every span: a baseline before `incident.0`, then the incident.
    pub spans: Vec<SpanInfo>,
    /// Incident window `[start, end)`, Unix nanoseconds.
    pub incident: (i64, i64),
    /// Where the fault was injected.
    pub root_service: &'static str,
    /// What was injected.
    pub kind: CauseKind,
}

struct Fault {
    service: &'static str,
    kind: CauseKind,
    slow: f64,
    error_rate: f64,
    /// Another service that gets slower or fails a little more at the same
    /// time: (service, slowdown, error rate).
    decoy: Option<(&'static str, f64, f64)>,
    /// Every service drifts a little during the incident.
    drift: Vec<(&'static str, f64)>,
}

struct Gen {
    rng: StdRng,
    spans: Vec<SpanInfo>,
    next_id: u64,
}

impl Gen {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:016x}", self.next_id)
    }

    /// Makes the span of `op` starting at `start` and its subtree; returns
    /// (duration, failed).
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        trace: &str,
        parent: Option<(&str, &'static str)>,
        op: usize,
        start: i64,
        fault: Option<&Fault>,
    ) -> (i64, bool) {
        let o = &OPS[op];
        let id = self.id();
        // Log-normal own time with 30% spread.
        let z: f64 = (0..4).map(|_| self.rng.random::<f64>()).sum::<f64>() - 2.0;
        let mut own = o.own_ms * (0.55 * z).exp() * 1e6;
        let mut error_rate = 0.002;
        let mut version = "1.4.2";
        if let Some(f) = fault {
            if f.service == o.service {
                own *= f.slow;
                if f.kind == CauseKind::Saturation {
                    // Queueing: long tails.
                    own *= 1.0 + 3.0 * self.rng.random::<f64>().powi(2);
                }
                error_rate = f.error_rate.max(error_rate);
                if f.kind == CauseKind::Deployment {
                    version = "1.5.0";
                }
            }
            if let Some((d, slow, errors)) = f.decoy
                && d == o.service
            {
                own *= slow;
                error_rate = error_rate.max(errors);
            }
            if let Some((_, k)) = f.drift.iter().find(|(s, _)| *s == o.service) {
                own *= k;
            }
            // Callers of the faulty service lose time too: held
            // connections, retries, timeouts.
            if o.calls.iter().any(|&c| OPS[c].service == f.service) && o.service != f.service {
                own *= 1.0 + 0.4 * self.rng.random::<f64>();
            }
        }
        // Database calls are recorded by the caller.
        let emitter = match parent {
            Some((_, caller)) if o.db => caller,
            _ => o.service,
        };
        // Half the own time before the calls, half after.
        let mut t = start + (own / 2.0) as i64;
        let mut child_failed = false;
        for &c in o.calls {
            let (d, failed) = self.span(trace, Some((&id, emitter)), c, t, fault);
            t += d;
            if failed {
                // A retry, sometimes; otherwise the failure goes up.
                if self.rng.random_bool(0.3) {
                    let (d2, failed2) = self.span(trace, Some((&id, emitter)), c, t, fault);
                    t += d2;
                    child_failed |= failed2;
                } else {
                    child_failed = true;
                }
            }
        }
        let duration = t + (own / 2.0) as i64 - start;
        let failed = self.rng.random_bool(error_rate.min(1.0))
            || (child_failed && self.rng.random_bool(0.8));
        self.spans.push(SpanInfo {
            trace_id: trace.to_owned(),
            span_id: id,
            parent_id: parent.map(|(p, _)| p.to_owned()),
            service: emitter.to_owned(),
            name: o.name.to_owned(),
            kind: if o.db { "client" } else { "server" }.into(),
            start_ns: start,
            duration_ns: duration,
            error: failed,
            version: Some(version.to_owned()),
            db_system: o.db.then(|| o.service.to_owned()),
            db_statement: o.db.then(|| o.name.to_owned()),
            ..Default::default()
        });
        (duration, failed)
    }
}

/// The case for `seed`: 12 minutes of baseline and 4 of incident, about
/// 4 requests a second.
pub fn generate(seed: u64) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let names = services();
    let kinds = [
        CauseKind::Latency,
        CauseKind::Errors,
        CauseKind::Saturation,
        CauseKind::Deployment,
    ];
    let service = names[rng.random_range(0..names.len())];
    // A database shows no version of its own, so no deployments there.
    let is_db = OPS.iter().any(|o| o.db && o.service == service);
    let kind = kinds[rng.random_range(0..if is_db { 3 } else { kinds.len() })];
    let (slow, error_rate) = match kind {
        CauseKind::Latency => (rng.random_range(1.8..6.0), 0.0),
        CauseKind::Errors => (1.0, rng.random_range(0.05..0.4)),
        CauseKind::Saturation => (rng.random_range(1.5..3.0), rng.random_range(0.05..0.2)),
        CauseKind::Deployment => {
            if rng.random_bool(0.5) {
                (rng.random_range(2.0..5.0), 0.0)
            } else {
                (1.0, rng.random_range(0.1..0.4))
            }
        }
    };
    // Most cases have a decoy: another service a little slower or failing
    // a little more at the same time.
    let decoy = rng.random_bool(0.7).then(|| {
        let others: Vec<&str> = names.iter().copied().filter(|s| *s != service).collect();
        let other = others[rng.random_range(0..others.len())];
        if rng.random_bool(0.5) {
            (other, rng.random_range(1.2..1.8), 0.0)
        } else {
            (other, 1.0, rng.random_range(0.01..0.05))
        }
    });
    let drift = names
        .iter()
        .map(|s| (*s, rng.random_range(0.9..1.12)))
        .collect();
    let fault = Fault {
        service,
        kind,
        slow,
        error_rate,
        decoy,
        drift,
    };
    let t0: i64 = 1_700_000_000_000_000_000;
    let start = t0 + 12 * 60 * 1_000_000_000;
    let end = start + 4 * 60 * 1_000_000_000;
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed ^ 0x5eed),
        spans: Vec::new(),
        next_id: seed << 32,
    };
    let mut t = t0;
    let mut n = 0u64;
    while t < end {
        t += g.rng.random_range(50_000_000..450_000_000);
        let pick: f64 = g.rng.random();
        let mut acc = 0.0;
        let entry = ENTRIES
            .iter()
            .find(|(_, share)| {
                acc += share;
                pick < acc
            })
            .map_or(0, |(op, _)| *op);
        n += 1;
        let trace = format!("{seed:08x}{n:024x}");
        let during = (start..end).contains(&t);
        g.span(&trace, None, entry, t, during.then_some(&fault));
    }
    Case {
        spans: g.spans,
        incident: (start, end),
        root_service: service,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rca::{RcaConfig, rank};

    #[test]
    fn the_shop_has_enough_services_and_cases_repeat_by_seed() {
        assert!(services().len() >= 10, "{:?}", services());
        let (a, b) = (generate(3), generate(3));
        assert_eq!(a.spans, b.spans);
        assert!(a.spans.len() > 1000);
    }

    /// AC@k: share of cases whose root service is among the top k.
    fn accuracy(ranks: &[Option<usize>], k: usize) -> f64 {
        ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count() as f64 / ranks.len() as f64
    }

    #[test]
    fn root_causes_rank_first_in_most_of_a_hundred_cases() {
        let cfg = RcaConfig::default();
        let mut ranks = Vec::new();
        let mut kind_right = 0;
        for seed in 0..100 {
            let case = generate(seed);
            let ranked = rank(&case.spans, case.incident.0, case.incident.1, &cfg);
            let pos = ranked.iter().position(|c| c.service == case.root_service);
            if pos == Some(0) && ranked[0].kind == case.kind {
                kind_right += 1;
            }
            ranks.push(pos);
        }
        let ac1 = accuracy(&ranks, 1);
        let avg5 = (1..=5).map(|k| accuracy(&ranks, k)).sum::<f64>() / 5.0;
        println!("AC@1 {ac1:.2}, Avg@5 {avg5:.2}, kind right with the service {kind_right}/100");
        assert!(ac1 >= 0.7, "AC@1 {ac1:.2}: {ranks:?}");
        assert!(avg5 >= 0.85, "Avg@5 {avg5:.2}");
    }
}
