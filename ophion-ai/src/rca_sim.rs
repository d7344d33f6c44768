//! A seeded fault-injection generator for judging root-cause analysis,
//! built to have what real traces have rather than what the ranker
//! assumes:
//!
//! - every call between services is a client span of the caller with the
//!   callee's server span under it; calls fan out **in parallel** as well
//!   as in sequence, and one is **asynchronous** (a producer span whose
//!   consumer runs after the request has answered);
//! - **entry services only wait** on their children (little own time);
//! - **databases** appear only as their callers' client spans with
//!   `db.system` and `server.address`; one service is **not
//!   instrumented** and appears only as client spans with
//!   `server.address`;
//! - each service's clock is **skewed** by up to a few milliseconds;
//! - **background errors** of 0.5% to 3% everywhere, and every service
//!   drifts by up to ±10% during the incident;
//! - faults propagate as **timeouts and retries**: a caller gives up on a
//!   slow call at its deadline (the callee's span goes on), and retries a
//!   failed call after a backoff;
//! - **decoys**: a healthy service is deployed (a new version, nothing
//!   else changes), and another gets slower or fails a little more, with
//!   sizes that **overlap** the faults' (faults: latency x1.5 to x4,
//!   errors 2% to 20%; decoys: latency x1.2 to x2, errors 1% to 6%).
//!
//! The ground truth of a case is the faulty service's name as the traces
//! show it: a database or the uninstrumented service by its
//! `server.address`.

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use crate::{rca::CauseKind, spans::SpanInfo};

/// How a call is made.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// A traced service: client span, then the callee's server span.
    Rpc,
    /// A database: a client span with `db.system` only.
    Db(&'static str),
    /// A service without instrumentation: a client span only.
    Untraced,
    /// A message: a producer span; the consumer runs after the request.
    Async,
}

/// An operation: who serves it, its own time in ms, and what it calls, as
/// steps run one after another, each step's calls in parallel.
struct Op {
    service: &'static str,
    name: &'static str,
    via: Via,
    own_ms: f64,
    steps: &'static [&'static [usize]],
}

const fn op(
    service: &'static str,
    name: &'static str,
    via: Via,
    own_ms: f64,
    steps: &'static [&'static [usize]],
) -> Op {
    Op {
        service,
        name,
        via,
        own_ms,
        steps,
    }
}

/// The shop (indices into this table).
const OPS: &[Op] = &[
    /* 0 */ op("frontend", "GET /", Via::Rpc, 0.3, &[&[2, 7, 9], &[8]]),
    /* 1 */ op("frontend", "GET /product", Via::Rpc, 0.3, &[&[3], &[7, 19]]),
    /* 2 */ op("catalog", "ListProducts", Via::Rpc, 1.5, &[&[13]]),
    /* 3 */ op("catalog", "GetProduct", Via::Rpc, 0.8, &[&[14], &[13]]),
    /* 4 */ op("cart", "GetCart", Via::Rpc, 0.6, &[&[14]]),
    /* 5 */ op("frontend", "POST /checkout", Via::Rpc, 0.4, &[&[6]]),
    /* 6 */
    op(
        "checkout",
        "PlaceOrder",
        Via::Rpc,
        2.0,
        &[&[4], &[10, 8], &[11], &[15]],
    ),
    /* 7 */ op("recommend", "Recommend", Via::Rpc, 4.0, &[&[2]]),
    /* 8 */ op("currency", "Convert", Via::Rpc, 0.5, &[]),
    /* 9 */ op("ad", "GetAds", Via::Rpc, 2.0, &[]),
    /* 10 */ op("shipping", "Quote", Via::Rpc, 1.5, &[]),
    /* 11 */ op("payment", "Charge", Via::Rpc, 3.0, &[&[12], &[16]]),
    /* 12 */ op("fraud-check", "POST /score", Via::Untraced, 6.0, &[]),
    /* 13 */
    op(
        "products-db",
        "SELECT products",
        Via::Db("postgresql"),
        1.2,
        &[],
    ),
    /* 14 */ op("cache", "GET", Via::Db("redis"), 0.2, &[]),
    /* 15 */ op("email", "orders publish", Via::Async, 3.0, &[]),
    /* 16 */ op("ledger", "Record", Via::Rpc, 1.5, &[&[17]]),
    /* 17 */
    op(
        "ledger-db",
        "INSERT entries",
        Via::Db("postgresql"),
        1.0,
        &[],
    ),
    /* 18 */ op("frontend", "GET /search", Via::Rpc, 0.3, &[&[20]]),
    /* 19 */ op("reviews", "ListReviews", Via::Rpc, 1.0, &[&[21]]),
    /* 20 */ op("search", "Query", Via::Rpc, 3.0, &[&[3]]),
    /* 21 */ op("reviews-db", "find reviews", Via::Db("mongodb"), 1.5, &[]),
];

/// Entry operations and their shares of traffic.
const ENTRIES: &[(usize, f64)] = &[(0, 0.35), (1, 0.3), (5, 0.15), (18, 0.2)];

/// The services and the names of databases and untraced services: the
/// root-cause candidates, in table order.
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
    /// Its size: the slowdown of the faulty service's own time and its
    /// error rate.
    pub size: (f64, f64),
}

#[derive(Debug, Clone)]
struct Fault {
    service: &'static str,
    kind: CauseKind,
    slow: f64,
    error_rate: f64,
    /// A slower or failing bystander: (service, slowdown, error rate).
    decoy: Option<(&'static str, f64, f64)>,
    /// A healthy service deployed during the incident.
    decoy_deploy: Option<&'static str>,
    drift: Vec<(&'static str, f64)>,
}

struct Gen {
    rng: StdRng,
    spans: Vec<SpanInfo>,
    next_id: u64,
    /// Clock skew per service, ns.
    skew: Vec<(&'static str, i64)>,
    /// Background error rate per service.
    background: Vec<(&'static str, f64)>,
}

/// What a call returned to its caller.
struct Outcome {
    /// When the caller got the answer (or gave up).
    done: i64,
    failed: bool,
}

impl Gen {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:016x}", self.next_id)
    }

    fn skew(&self, service: &str) -> i64 {
        self.skew
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(0, |(_, k)| *k)
    }

    /// A log-normal own time around `ms`, in ns.
    fn own(&mut self, ms: f64) -> f64 {
        let z: f64 = (0..4).map(|_| self.rng.random::<f64>()).sum::<f64>() - 2.0;
        ms * (0.5 * z).exp() * 1e6
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        trace: &str,
        id: String,
        parent: Option<&str>,
        service: &str,
        name: &str,
        kind: &str,
        start: i64,
        end: i64,
        error: bool,
        version: Option<&str>,
        attrs: (Option<&str>, Option<&str>),
    ) {
        let skew = self.skew(service);
        self.spans.push(SpanInfo {
            trace_id: trace.to_owned(),
            span_id: id,
            parent_id: parent.map(str::to_owned),
            service: service.to_owned(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            start_ns: start + skew,
            duration_ns: end - start,
            version: version.map(str::to_owned),
            error,
            db_system: attrs.0.map(str::to_owned),
            db_statement: attrs.0.map(|_| name.to_owned()),
            peer: attrs.1.map(str::to_owned),
            ..Default::default()
        });
    }

    /// Whether `op` fails of itself this time, and its own time (ns).
    fn serve(&mut self, op: usize, fault: Option<&Fault>) -> (bool, f64) {
        let o = &OPS[op];
        let mut own = self.own(o.own_ms);
        let mut error_rate = self
            .background
            .iter()
            .find(|(s, _)| *s == o.service)
            .map_or(0.01, |(_, r)| *r);
        if let Some(f) = fault {
            if f.service == o.service {
                own *= f.slow;
                if f.kind == CauseKind::Saturation {
                    // Queueing: long tails.
                    own *= 1.0 + 2.0 * self.rng.random::<f64>().powi(3);
                }
                error_rate = error_rate.max(f.error_rate);
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
        }
        (self.rng.random_bool(error_rate.min(1.0)), own)
    }

    /// `op` called from the span `parent` of `caller` at `start`.
    fn call(
        &mut self,
        trace: &str,
        parent: &str,
        caller: &'static str,
        op: usize,
        start: i64,
        fault: Option<&Fault>,
    ) -> Outcome {
        let o = &OPS[op];
        let version = version_of(o.service, fault);
        let client_id = self.id();
        let peer = (o.via != Via::Rpc).then_some(o.service);
        let db = match o.via {
            Via::Db(system) => Some(system),
            _ => None,
        };
        // The deadline: ten times the callee's usual time, at least 40 ms.
        let deadline = (10.0 * o.own_ms * 1e6).max(40e6) as i64 * depth_budget(op);
        match o.via {
            Via::Db(_) | Via::Untraced => {
                let (failed, own) = self.serve(op, fault);
                let took = (own as i64).max(1_000);
                let (end, failed) = if took > deadline {
                    (start + deadline, true)
                } else {
                    (start + took, failed)
                };
                self.push(
                    trace,
                    client_id,
                    Some(parent),
                    caller,
                    o.name,
                    "client",
                    start,
                    end,
                    failed,
                    version_of(caller, fault),
                    (db, peer),
                );
                Outcome { done: end, failed }
            }
            Via::Async => {
                // Publish (a millisecond), answer; the consumer runs later.
                let end = start + 1_000_000;
                let producer = client_id.clone();
                self.push(
                    trace,
                    client_id,
                    Some(parent),
                    caller,
                    o.name,
                    "producer",
                    start,
                    end,
                    false,
                    version_of(caller, fault),
                    (None, None),
                );
                let later = end + self.rng.random_range(5_000_000..50_000_000);
                let (failed, own) = self.serve(op, fault);
                let id = self.id();
                self.push(
                    trace,
                    id,
                    Some(&producer),
                    o.service,
                    "orders process",
                    "consumer",
                    later,
                    later + own as i64,
                    failed,
                    version,
                    (None, None),
                );
                Outcome {
                    done: end,
                    failed: false,
                }
            }
            Via::Rpc => {
                // The network: a fraction of a millisecond each way.
                let hop = self.rng.random_range(100_000..400_000);
                let server_start = start + hop;
                let server_id = self.id();
                let (server_end, server_failed) =
                    self.run(trace, &server_id, op, server_start, fault);
                let answered = server_end + hop;
                let (end, failed) = if answered - start > deadline {
                    (start + deadline, true) // timed out; the server goes on
                } else {
                    (answered, server_failed)
                };
                self.push(
                    trace,
                    client_id.clone(),
                    Some(parent),
                    caller,
                    o.name,
                    "client",
                    start,
                    end,
                    failed,
                    version_of(caller, fault),
                    (None, None),
                );
                self.push(
                    trace,
                    server_id,
                    Some(&client_id),
                    o.service,
                    o.name,
                    "server",
                    server_start,
                    server_end,
                    server_failed,
                    version,
                    (None, None),
                );
                Outcome { done: end, failed }
            }
        }
    }

    /// The server side of `op`: half its own time, its steps (each step's
    /// calls in parallel, a failed call retried once after a backoff),
    /// the other half. Pushes nothing for itself (the caller pushes the
    /// server span with what this returns).
    fn run(
        &mut self,
        trace: &str,
        id: &str,
        op: usize,
        start: i64,
        fault: Option<&Fault>,
    ) -> (i64, bool) {
        let o = &OPS[op];
        let (own_failed, own) = self.serve(op, fault);
        let mut t = start + (own / 2.0) as i64;
        let mut child_failed = false;
        for step in o.steps {
            let mut step_end = t;
            for &c in *step {
                let mut out = self.call(trace, id, o.service, c, t, fault);
                if out.failed && self.rng.random_bool(0.5) {
                    // Retry after a backoff.
                    let backoff = self.rng.random_range(5_000_000..20_000_000);
                    out = self.call(trace, id, o.service, c, out.done + backoff, fault);
                }
                // A failed call fails the caller most of the time.
                child_failed |= out.failed && self.rng.random_bool(0.8);
                step_end = step_end.max(out.done);
            }
            t = step_end;
        }
        (t + (own / 2.0) as i64, own_failed || child_failed)
    }

    /// One request at `start` to entry `op`.
    fn request(&mut self, trace: &str, op: usize, start: i64, fault: Option<&Fault>) {
        let o = &OPS[op];
        let id = self.id();
        let (end, failed) = self.run(trace, &id, op, start, fault);
        let version = version_of(o.service, fault);
        self.push(
            trace,
            id,
            None,
            o.service,
            o.name,
            "server",
            start,
            end,
            failed,
            version,
            (None, None),
        );
    }
}

/// Deeper operations get more time before their caller gives up.
fn depth_budget(op: usize) -> i64 {
    if OPS[op].steps.is_empty() { 1 } else { 3 }
}

fn version_of(service: &str, fault: Option<&Fault>) -> Option<&'static str> {
    let deployed = fault.is_some_and(|f| {
        (f.kind == CauseKind::Deployment && f.service == service) || f.decoy_deploy == Some(service)
    });
    Some(if deployed { "2.1.0" } else { "2.0.3" })
}

/// The services with a version of their own (traced ones).
fn traced(service: &str) -> bool {
    OPS.iter()
        .any(|o| o.service == service && matches!(o.via, Via::Rpc | Via::Async))
}

/// How long a case runs, and whether it has decoys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Minutes before the fault.
    pub baseline_minutes: i64,
    /// Minutes of the fault.
    pub incident_minutes: i64,
    /// Bystanders that degrade and deploy at the same time (else only
    /// the background noise of every service).
    pub decoys: bool,
    /// Every service's own time shifts by up to ±10% when the incident
    /// starts (a small real change everywhere, not noise).
    pub drift: bool,
    /// Faults of latency x3 to x8 and errors of 10% to 30% (instead of
    /// x1.5 to x4 and 2% to 20%).
    pub large_faults: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            baseline_minutes: 10,
            incident_minutes: 3,
            decoys: true,
            drift: true,
            large_faults: false,
        }
    }
}

/// The services that call `service`, directly or through others.
pub fn callers_of(service: &str) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = Vec::new();
    let mut frontier = vec![service.to_owned()];
    while let Some(s) = frontier.pop() {
        for o in OPS {
            let calls_it = o
                .steps
                .iter()
                .flat_map(|step| step.iter())
                .any(|&c| OPS[c].service == s);
            if calls_it && o.service != s && !found.contains(&o.service) {
                found.push(o.service);
                frontier.push(o.service.to_owned());
            }
        }
    }
    found
}

/// The case for `seed`: 10 minutes of baseline and 3 of incident, about
/// 3 requests a second, with decoys.
pub fn generate(seed: u64) -> Case {
    generate_shaped(seed, &Shape::default())
}

/// The case for `seed` in `shape`.
pub fn generate_shaped(seed: u64, shape: &Shape) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let names = services();
    let service = names[rng.random_range(0..names.len())];
    let kinds = [
        CauseKind::Latency,
        CauseKind::Errors,
        CauseKind::Saturation,
        CauseKind::Deployment,
    ];
    // Only traced services show a version of their own.
    let kind = kinds[rng.random_range(0..if traced(service) { 4 } else { 3 })];
    let (slow, error_rate) = match kind {
        _ if shape.large_faults => {
            let slow = rng.random_range(3.0..8.0);
            let errors = rng.random_range(0.1..0.3);
            match kind {
                CauseKind::Latency => (slow, 0.0),
                CauseKind::Errors => (1.0, errors),
                _ => (slow, errors),
            }
        }
        CauseKind::Latency => (rng.random_range(1.5..4.0), 0.0),
        CauseKind::Errors => (1.0, rng.random_range(0.02..0.2)),
        CauseKind::Saturation => (rng.random_range(1.5..3.0), rng.random_range(0.02..0.1)),
        CauseKind::Deployment => {
            if rng.random_bool(0.5) {
                (rng.random_range(1.5..4.0), 0.0)
            } else {
                (1.0, rng.random_range(0.02..0.2))
            }
        }
    };
    let others: Vec<&'static str> = names.iter().copied().filter(|s| *s != service).collect();
    let decoy = rng.random_bool(0.7).then(|| {
        let other = others[rng.random_range(0..others.len())];
        if rng.random_bool(0.5) {
            (other, rng.random_range(1.2..2.0), 0.0)
        } else {
            (other, 1.0, rng.random_range(0.01..0.06))
        }
    });
    let deployable: Vec<&'static str> = others.iter().copied().filter(|s| traced(s)).collect();
    let decoy_deploy = rng
        .random_bool(0.5)
        .then(|| deployable[rng.random_range(0..deployable.len())]);
    // The draws are made either way, so a seed's fault is the same with
    // and without decoys.
    let (decoy, decoy_deploy) = if shape.decoys {
        (decoy, decoy_deploy)
    } else {
        (None, None)
    };
    let drift = names
        .iter()
        .map(|s| (*s, rng.random_range(0.9..1.1)))
        .filter(|_| shape.drift)
        .collect();
    let fault = Fault {
        service,
        kind,
        slow,
        error_rate,
        decoy,
        decoy_deploy,
        drift,
    };
    let skew = names
        .iter()
        .map(|s| (*s, rng.random_range(-3_000_000..3_000_000)))
        .collect();
    let background = names
        .iter()
        .map(|s| (*s, rng.random_range(0.005..0.03)))
        .collect();
    let t0: i64 = 1_700_000_000_000_000_000;
    let start = t0 + shape.baseline_minutes * 60 * 1_000_000_000;
    let end = start + shape.incident_minutes * 60 * 1_000_000_000;
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed ^ 0x5eed),
        spans: Vec::new(),
        next_id: seed << 32,
        skew,
        background,
    };
    let mut t = t0;
    let mut n = 0u64;
    while t < end {
        t += g.rng.random_range(100_000_000..560_000_000);
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
        g.request(&trace, entry, t, Some(&fault).filter(|_| during));
    }
    Case {
        spans: g.spans,
        incident: (start, end),
        root_service: service,
        kind,
        size: (slow, error_rate),
    }
}

/// The spans as OTLP export requests (one per 2000 spans, one resource
/// per service and version), shifted by `offset` nanoseconds: what an
/// OpenTelemetry SDK would send. Databases and the untraced service are
/// `server.address` of client spans, with `db.system.name` for databases.
pub fn to_otlp(
    spans: &[SpanInfo],
    offset: i64,
) -> Vec<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest> {
    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode},
    };
    let kv = |key: &str, v: &str| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let id = |hex: &str| -> Vec<u8> {
        (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect()
    };
    spans
        .chunks(2000)
        .map(|chunk| {
            let mut groups: std::collections::BTreeMap<(&str, &str), Vec<Span>> =
                Default::default();
            for s in chunk {
                let mut attributes = Vec::new();
                if let Some(db) = &s.db_system {
                    attributes.push(kv("db.system.name", db));
                }
                if let Some(q) = &s.db_statement {
                    attributes.push(kv("db.query.text", q));
                }
                if let Some(p) = &s.peer {
                    attributes.push(kv("server.address", p));
                }
                let start = s.start_ns.saturating_add(offset).max(0) as u64;
                groups
                    .entry((&s.service, s.version.as_deref().unwrap_or_default()))
                    .or_default()
                    .push(Span {
                        trace_id: id(&s.trace_id),
                        span_id: id(&s.span_id),
                        parent_span_id: s.parent_id.as_deref().map(id).unwrap_or_default(),
                        name: s.name.clone(),
                        kind: match s.kind.as_str() {
                            "client" => SpanKind::Client,
                            "server" => SpanKind::Server,
                            "producer" => SpanKind::Producer,
                            "consumer" => SpanKind::Consumer,
                            _ => SpanKind::Internal,
                        } as i32,
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + s.duration_ns.max(0) as u64,
                        attributes,
                        status: s.error.then(|| Status {
                            message: "failed".into(),
                            code: StatusCode::Error as i32,
                        }),
                        ..Default::default()
                    });
            }
            ExportTraceServiceRequest {
                resource_spans: groups
                    .into_iter()
                    .map(|((service, version), spans)| ResourceSpans {
                        resource: Some(Resource {
                            attributes: vec![
                                kv("service.name", service),
                                kv("service.version", version),
                            ],
                            ..Default::default()
                        }),
                        scope_spans: vec![ScopeSpans {
                            spans,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Seeds the ranker's settings were developed on.
pub const DEVELOPMENT_SEEDS: std::ops::Range<u64> = 0..100;
/// Seeds held out: scored, never looked at case by case.
pub const HELD_OUT_SEEDS: std::ops::Range<u64> = 10_000..10_100;

/// AC@1 and Avg@5 of `rank` over `seeds`, and how often the kind was
/// right when the service was.
pub fn score(
    seeds: std::ops::Range<u64>,
    cfg: &crate::rca::RcaConfig,
) -> (f64, f64, usize, Vec<Option<usize>>) {
    let mut ranks = Vec::new();
    let mut kind_right = 0;
    for seed in seeds {
        let case = generate(seed);
        let ranked = crate::rca::rank(&case.spans, case.incident.0, case.incident.1, cfg);
        let pos = ranked.iter().position(|c| c.service == case.root_service);
        if pos == Some(0) && ranked[0].kind == case.kind {
            kind_right += 1;
        }
        ranks.push(pos);
    }
    let at = |k: usize| {
        ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count() as f64 / ranks.len().max(1) as f64
    };
    let avg5 = (1..=5).map(at).sum::<f64>() / 5.0;
    (at(1), avg5, kind_right, ranks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rca::RcaConfig;

    #[test]
    fn the_shop_has_what_real_traces_have_and_cases_repeat_by_seed() {
        assert!(services().len() >= 15, "{:?}", services());
        let (a, b) = (generate(3), generate(3));
        assert_eq!(a.spans, b.spans);
        assert!(a.spans.len() > 5000);
        let has = |f: &dyn Fn(&SpanInfo) -> bool| a.spans.iter().any(f);
        assert!(has(&|s| s.kind == "consumer"), "async consumers");
        assert!(
            has(&|s| s.db_system.is_some() && s.peer.is_some()),
            "databases"
        );
        assert!(
            has(&|s| s.peer.as_deref() == Some("fraud-check")),
            "untraced"
        );
        // A consumer starts after its request's root ended.
        let root_end: std::collections::HashMap<&str, i64> = a
            .spans
            .iter()
            .filter(|s| s.parent_id.is_none())
            .map(|s| (s.trace_id.as_str(), s.start_ns + s.duration_ns))
            .collect();
        assert!(has(
            &|s| s.kind == "consumer" && s.start_ns > root_end[s.trace_id.as_str()]
        ));
    }

    #[test]
    fn root_causes_rank_first_on_development_and_held_out_seeds() {
        let cfg = RcaConfig::default();
        for (name, seeds) in [
            ("development", DEVELOPMENT_SEEDS),
            ("held-out", HELD_OUT_SEEDS),
        ] {
            let n = seeds.end - seeds.start;
            let (ac1, avg5, kind_right, _) = score(seeds, &cfg);
            println!(
                "{name} seeds: AC@1 {ac1:.2}, Avg@5 {avg5:.2}, kind right with the service {kind_right}/{n}"
            );
            assert!(ac1 >= 0.7, "{name}: AC@1 {ac1:.2}");
            assert!(avg5 >= 0.85, "{name}: Avg@5 {avg5:.2}");
        }
    }
}
