//! The copilot's built-in engine on a golden set of questions, against the
//! real server.
//!
//! The fixture is a small shop written here (its own generator, sharing
//! nothing with the engine): traces of six services and a database seen
//! only through client spans, errors with messages, and logs, placed in
//! time windows with gaps around every range boundary the questions use,
//! so "the last 30 minutes" means the same spans to the test and to the
//! server. Every expected number is computed here from the generated
//! spans, in plain Rust, not by SQL: request counts, error ratios,
//! exact percentiles (linear interpolation), rankings, callers, log
//! matches.
//!
//! The goal: of the questions the engine claims to cover, at least 90%
//! answered with exactly the expected rows and none answered wrongly (a
//! decline is not wrong); every question outside its scope declined.

mod common;

use std::collections::BTreeMap;

use common::{Server, call, client, export};
use opentelemetry_proto::tonic::{
    collector::{logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::{AnyValue, KeyValue, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode},
};
use serde_json::{Value, json};

const MIN: i64 = 60_000_000_000;

/// A span as the test knows it.
#[derive(Debug, Clone)]
struct S {
    trace: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    service: &'static str,
    name: String,
    kind: &'static str,
    start: i64,
    dur: i64,
    error: Option<String>,
    peer: Option<&'static str>,
}

/// A log record as the test knows it.
#[derive(Debug, Clone)]
struct L {
    service: &'static str,
    time: i64,
    severity: &'static str,
    body: String,
}

/// xorshift64*: the fixture's own randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    /// A duration around `ms` milliseconds with a long tail, in ns.
    fn dur(&mut self, ms: f64) -> i64 {
        let tail = if self.unit() < 0.05 {
            3.0 + 5.0 * self.unit()
        } else {
            0.5 + self.unit()
        };
        (ms * tail * 1e6) as i64 + (self.next() % 1000) as i64
    }
}

struct Fixture {
    now: i64,
    spans: Vec<S>,
    logs: Vec<L>,
}

/// The windows spans fall in, as minutes before now: every range a
/// question uses (15, 30, 60, 120 minutes) falls in a gap.
const WINDOWS: [(i64, i64, u32); 4] = [(12, 3, 3), (27, 18, 2), (55, 33, 4), (110, 65, 3)];

fn fixture(now: i64) -> Fixture {
    let mut r = Rng(0x0b5e_55ed_c0ff_ee11);
    let mut f = Fixture {
        now,
        spans: Vec::new(),
        logs: Vec::new(),
    };
    let mut next_id = 1u64;
    let mut id = |r: &mut Rng| -> [u8; 8] {
        next_id += 1;
        (next_id ^ (r.next() & 0xffff_0000_0000_0000)).to_be_bytes()
    };
    let total_weight: u32 = WINDOWS.iter().map(|w| w.2).sum();
    let mut used_times = std::collections::HashSet::new();
    for t in 0..1600u64 {
        let mut pick = (r.next() % u64::from(total_weight)) as u32;
        let (a, b, _) = *WINDOWS
            .iter()
            .find(|w| {
                if pick < w.2 {
                    true
                } else {
                    pick -= w.2;
                    false
                }
            })
            .expect("a window");
        let span_ns = (a - b) * MIN - 10_000_000_000;
        let mut start = now - a * MIN + (r.unit() * span_ns as f64) as i64;
        while !used_times.insert(start) {
            start += 1;
        }
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&t.to_be_bytes());
        trace[8..].copy_from_slice(&r.next().to_be_bytes());
        let root = id(&mut r);
        let route = *r.pick(&["GET /home", "POST /checkout", "GET /cart", "GET /home"]);
        let mut spans = vec![S {
            trace,
            id: root,
            parent: None,
            service: "frontend",
            name: route.into(),
            kind: "server",
            start,
            dur: 0,
            error: None,
            peer: None,
        }];
        let mut logs = Vec::new();
        let mut at = start + 200_000;
        // A call from `parent` (index) to `service`'s `op`: a client span
        // in the caller and a server span in the callee.
        let mut call = |spans: &mut Vec<S>,
                        r: &mut Rng,
                        parent: usize,
                        service: &'static str,
                        op: &str,
                        own_ms: f64,
                        err: Option<String>,
                        at: &mut i64| {
            let client = id(r);
            let server = id(r);
            let d = r.dur(own_ms);
            spans.push(S {
                trace,
                id: client,
                parent: Some(spans[parent].id),
                service: spans[parent].service,
                name: op.into(),
                kind: "client",
                start: *at,
                dur: d + 300_000,
                error: None,
                peer: Some(service),
            });
            spans.push(S {
                trace,
                id: server,
                parent: Some(client),
                service,
                name: op.into(),
                kind: "server",
                start: *at + 100_000,
                dur: d,
                error: err,
                peer: None,
            });
            *at += d + 400_000;
            spans.len() - 1
        };
        let mut failed: Option<String> = None;
        match route {
            "POST /checkout" => {
                let c = call(
                    &mut spans,
                    &mut r,
                    0,
                    "checkout",
                    "POST /checkout",
                    40.0,
                    None,
                    &mut at,
                );
                let mut cat = spans[c].start + 100_000;
                let stock = (r.unit() < 0.05).then(|| "out of stock".to_owned());
                call(
                    &mut spans,
                    &mut r,
                    c,
                    "inventory",
                    "reserve",
                    8.0,
                    stock.clone(),
                    &mut cat,
                );
                if stock.is_none() {
                    let pay_err = if r.unit() < 0.08 {
                        Some(r.pick(&["card declined", "gateway timeout"]).to_string())
                    } else {
                        None
                    };
                    let p = call(
                        &mut spans,
                        &mut r,
                        c,
                        "payments",
                        "charge",
                        60.0,
                        pay_err.clone(),
                        &mut cat,
                    );
                    if let Some(e) = &pay_err {
                        logs.push(L {
                            service: "payments",
                            time: spans[p].start + 1_000,
                            severity: "ERROR",
                            body: format!("charge failed: {e} (order {})", t),
                        });
                        failed = Some("payment failed".into());
                    } else {
                        let db = id(&mut r);
                        let d = r.dur(5.0);
                        spans.push(S {
                            trace,
                            id: db,
                            parent: Some(spans[c].id),
                            service: "checkout",
                            name: "INSERT orders".into(),
                            kind: "client",
                            start: cat,
                            dur: d,
                            error: None,
                            peer: Some("orders-db"),
                        });
                        logs.push(L {
                            service: "checkout",
                            time: cat + 2_000,
                            severity: "INFO",
                            body: format!("order {t} placed"),
                        });
                    }
                } else {
                    logs.push(L {
                        service: "inventory",
                        time: cat + 3_000,
                        severity: "WARN",
                        body: format!("reservation refused: out of stock for order {t}"),
                    });
                    failed = Some("out of stock".into());
                }
                spans[c].error = failed.clone();
                spans[c].dur = spans[c].dur.max(cat - spans[c].start + 200_000);
            }
            "GET /cart" => {
                let e = (r.unit() < 0.03).then(|| "redis timeout".to_owned());
                if e.is_some() {
                    logs.push(L {
                        service: "cart-service",
                        time: at + 5_000,
                        severity: "ERROR",
                        body: "redis timeout after 250 ms: connection refused by cache-1".into(),
                    });
                    failed = Some("upstream error".into());
                }
                call(
                    &mut spans,
                    &mut r,
                    0,
                    "cart-service",
                    "GET /cart",
                    12.0,
                    e,
                    &mut at,
                );
            }
            _ => {
                if r.unit() < 0.5 {
                    call(
                        &mut spans,
                        &mut r,
                        0,
                        "recommendations",
                        "list",
                        20.0,
                        None,
                        &mut at,
                    );
                }
            }
        }
        spans[0].error = failed;
        spans[0].dur = at - start + r.dur(3.0);
        f.spans.extend(spans);
        f.logs.extend(logs);
    }
    f
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn otlp_spans(spans: &[S]) -> Vec<ExportTraceServiceRequest> {
    spans
        .chunks(1500)
        .map(|chunk| {
            let mut by: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
            for s in chunk {
                let mut attributes = Vec::new();
                if let Some(p) = s.peer {
                    attributes.push(kv("server.address", p));
                    if p == "orders-db" {
                        attributes.push(kv("db.system.name", "postgresql"));
                    }
                }
                if s.kind == "server" && s.name.starts_with('/') {
                    attributes.push(kv("http.route", &s.name));
                }
                by.entry(s.service).or_default().push(Span {
                    trace_id: s.trace.to_vec(),
                    span_id: s.id.to_vec(),
                    parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
                    name: s.name.clone(),
                    kind: match s.kind {
                        "server" => SpanKind::Server,
                        _ => SpanKind::Client,
                    } as i32,
                    start_time_unix_nano: s.start as u64,
                    end_time_unix_nano: (s.start + s.dur) as u64,
                    attributes,
                    status: Some(match &s.error {
                        Some(m) => Status {
                            code: StatusCode::Error as i32,
                            message: m.clone(),
                        },
                        None => Status::default(),
                    }),
                    ..Default::default()
                });
            }
            ExportTraceServiceRequest {
                resource_spans: by
                    .into_iter()
                    .map(|(service, spans)| ResourceSpans {
                        resource: Some(Resource {
                            attributes: vec![kv("service.name", service)],
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

fn otlp_logs(logs: &[L]) -> ExportLogsServiceRequest {
    let mut by: BTreeMap<&str, Vec<LogRecord>> = BTreeMap::new();
    for l in logs {
        by.entry(l.service).or_default().push(LogRecord {
            time_unix_nano: l.time as u64,
            severity_text: l.severity.into(),
            severity_number: match l.severity {
                "ERROR" => 17,
                "WARN" => 13,
                _ => 9,
            },
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(l.body.clone())),
            }),
            ..Default::default()
        });
    }
    ExportLogsServiceRequest {
        resource_logs: by
            .into_iter()
            .map(|(service, log_records)| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", service)],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

// ---- the independent computation ----

/// Linear-interpolation percentile of sorted values (SQL's
/// `percentile_cont`), and the gap between the two values it lies
/// between: DataFusion quantizes the interpolation weight to a millionth,
/// so its result may differ by a millionth of that gap.
fn percentile(sorted: &[i64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b) = (sorted[lo] as f64, sorted[hi] as f64);
    a + (b - a) * (pos - lo as f64)
}

/// The largest gap between neighbouring values, the bound on the
/// quantization of the interpolation weight.
fn max_gap(sorted: &[i64]) -> f64 {
    sorted
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64)
        .fold(0.0, f64::max)
}

impl Fixture {
    fn in_range(&self, t: i64, minutes: i64) -> bool {
        t >= self.now - minutes * MIN && t < self.now
    }

    fn entry(&self, s: &S) -> bool {
        s.kind == "server" || s.parent.is_none()
    }

    /// requests, errors, error_ratio, rate_per_sec, p50_ms, p95_ms, p99_ms
    fn red(&self, service: &str, op: Option<&str>, minutes: i64) -> BTreeMap<&'static str, f64> {
        let mut d: Vec<i64> = Vec::new();
        let mut errors = 0.0;
        for s in self.spans.iter().filter(|s| {
            s.service == service
                && self.in_range(s.start, minutes)
                && match op {
                    Some(o) => s.name == o,
                    None => self.entry(s),
                }
        }) {
            d.push(s.dur);
            errors += f64::from(u8::from(s.error.is_some()));
        }
        d.sort_unstable();
        let n = d.len() as f64;
        let mut m = BTreeMap::new();
        m.insert("requests", n);
        if d.is_empty() {
            return m;
        }
        m.insert("errors", errors);
        m.insert("error_ratio", errors / n);
        m.insert("rate_per_sec", n / (minutes * 60) as f64);
        m.insert("gap_ms", max_gap(&d) / 1e6);
        m.insert("p50_ms", percentile(&d, 0.5) / 1e6);
        m.insert("p95_ms", percentile(&d, 0.95) / 1e6);
        m.insert("p99_ms", percentile(&d, 0.99) / 1e6);
        m
    }

    /// (service, operation, requests, p95_ms) of the top 5 by p95.
    fn slowest(&self, service: Option<&str>, minutes: i64) -> Vec<Vec<Value>> {
        let mut by: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
        for s in self.spans.iter().filter(|s| {
            self.entry(s)
                && self.in_range(s.start, minutes)
                && service.is_none_or(|x| s.service == x)
        }) {
            by.entry((s.service, &s.name)).or_default().push(s.dur);
        }
        let mut rows: Vec<(f64, &str, &str, usize, f64)> = by
            .into_iter()
            .map(|((svc, op), mut d)| {
                d.sort_unstable();
                (
                    percentile(&d, 0.95) / 1e6,
                    svc,
                    op,
                    d.len(),
                    max_gap(&d) / 1e6,
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)).then(a.2.cmp(b.2)));
        rows.into_iter()
            .take(5)
            .map(|(p, s, o, n, gap)| {
                vec![
                    json!(s),
                    json!(o),
                    json!(n),
                    json!({"value": p, "within": gap * 1e-6}),
                ]
            })
            .collect()
    }

    /// (service, operation, message, errors) of the top 5.
    fn top_errors(&self, service: Option<&str>, minutes: i64) -> Vec<Vec<Value>> {
        let mut by: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
        for s in self.spans.iter().filter(|s| {
            s.error.is_some()
                && self.in_range(s.start, minutes)
                && service.is_none_or(|x| s.service == x)
        }) {
            *by.entry((s.service, &s.name, s.error.as_deref().unwrap_or("")))
                .or_default() += 1;
        }
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rows.into_iter()
            .take(5)
            .map(|((s, o, m), n)| vec![json!(s), json!(o), json!(m), json!(n)])
            .collect()
    }

    /// Bodies of the newest 20 logs containing `text`.
    fn logs_with(&self, text: &str, service: Option<&str>, minutes: i64) -> Vec<String> {
        let mut hits: Vec<&L> = self
            .logs
            .iter()
            .filter(|l| {
                self.in_range(l.time, minutes)
                    && l.body.to_lowercase().contains(&text.to_lowercase())
                    && service.is_none_or(|x| l.service == x)
            })
            .collect();
        hits.sort_by_key(|l| std::cmp::Reverse(l.time));
        hits.into_iter().take(20).map(|l| l.body.clone()).collect()
    }

    /// (service, calls) calling `service` or called by it.
    fn calls(&self, service: &str, callers: bool, minutes: i64) -> Vec<Vec<Value>> {
        let by_id: BTreeMap<([u8; 16], [u8; 8]), &S> =
            self.spans.iter().map(|s| ((s.trace, s.id), s)).collect();
        let has_child: std::collections::HashSet<([u8; 16], [u8; 8])> = self
            .spans
            .iter()
            .filter_map(|s| s.parent.map(|p| (s.trace, p)))
            .collect();
        let mut edges: Vec<(&str, &str)> = Vec::new();
        for s in self
            .spans
            .iter()
            .filter(|s| self.in_range(s.start, minutes))
        {
            if let Some(p) = s.parent.and_then(|p| by_id.get(&(s.trace, p)))
                && p.service != s.service
                && self.in_range(p.start, minutes)
            {
                edges.push((p.service, s.service));
            }
            if s.kind == "client"
                && let Some(peer) = s.peer
                && !has_child.contains(&(s.trace, s.id))
            {
                edges.push((s.service, peer));
            }
        }
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for (a, b) in edges {
            if callers && b == service {
                *by.entry(a).or_default() += 1;
            }
            if !callers && a == service {
                *by.entry(b).or_default() += 1;
            }
        }
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        rows.into_iter()
            .map(|(s, n)| vec![json!(s), json!(n)])
            .collect()
    }
}

// ---- the golden set ----

#[derive(Debug, Clone)]
enum Expect {
    /// One RED row: these columns.
    Red(
        &'static str,
        Option<&'static str>,
        i64,
        &'static [&'static str],
    ),
    /// Several services' RED rows, in order.
    RedMany(&'static [&'static str], i64, &'static [&'static str]),
    Slowest(Option<&'static str>, i64),
    TopErrors(Option<&'static str>, i64),
    Logs(&'static str, Option<&'static str>, i64),
    Callers(&'static str, i64),
    Callees(&'static str, i64),
    /// Outside the engine's scope: must be declined.
    Decline,
}

use Expect::*;

const RATE: &[&str] = &["requests", "errors", "error_ratio"];
const LAT: &[&str] = &["requests", "p50_ms", "p95_ms", "p99_ms"];
const TPUT: &[&str] = &["requests", "rate_per_sec"];

fn golden() -> Vec<(&'static str, Expect)> {
    vec![
        // Error rates, English.
        (
            "What is the error rate of checkout in the last hour?",
            Red("checkout", None, 60, RATE),
        ),
        (
            "error rate for payments over the last 30 minutes",
            Red("payments", None, 30, RATE),
        ),
        (
            "How many errors did cart-service have in the past 2 hours?",
            Red("cart-service", None, 120, RATE),
        ),
        (
            "Show me the failure rate of frontend in the last 15 minutes",
            Red("frontend", None, 15, RATE),
        ),
        (
            "What's the error ratio of inventory for the last 2 hours?",
            Red("inventory", None, 120, RATE),
        ),
        (
            "Is checkout failing? error rate last 30 min",
            Red("checkout", None, 30, RATE),
        ),
        ("errors in payments", Red("payments", None, 60, RATE)),
        (
            "error rate of the cart service in the last 60 minutes",
            Red("cart-service", None, 60, RATE),
        ),
        (
            "What percentage of frontend requests failed in the last hour?",
            Red("frontend", None, 60, RATE),
        ),
        (
            "error rate of recommendations, last 2h",
            Red("recommendations", None, 120, RATE),
        ),
        (
            "Compare the error rates of checkout and payments in the last hour",
            RedMany(&["checkout", "payments"], 60, RATE),
        ),
        (
            "error rate of POST /checkout on checkout in the last hour",
            Red("checkout", Some("POST /checkout"), 60, RATE),
        ),
        (
            "What is the error rate of the charge operation of payments in the last 2 hours?",
            Red("payments", Some("charge"), 120, RATE),
        ),
        // Latency, English.
        (
            "What is the p95 latency of checkout in the last hour?",
            Red("checkout", None, 60, LAT),
        ),
        (
            "p99 latency of payments over the last 30 minutes",
            Red("payments", None, 30, LAT),
        ),
        (
            "median latency of cart-service in the last 2 hours",
            Red("cart-service", None, 120, LAT),
        ),
        (
            "How slow is frontend in the last 15 minutes?",
            Red("frontend", None, 15, LAT),
        ),
        (
            "latency of inventory last hour",
            Red("inventory", None, 60, LAT),
        ),
        (
            "response time of recommendations in the past hour",
            Red("recommendations", None, 60, LAT),
        ),
        (
            "p50, p95 and p99 of checkout over the last 2 hours",
            Red("checkout", None, 120, LAT),
        ),
        (
            "latency of GET /cart on frontend in the last hour",
            Red("frontend", Some("GET /cart"), 60, LAT),
        ),
        (
            "What is the p95 of the charge operation in payments in the last 30 minutes?",
            Red("payments", Some("charge"), 30, LAT),
        ),
        (
            "latency of 'GET /home' for frontend, last 2 hours",
            Red("frontend", Some("GET /home"), 120, LAT),
        ),
        (
            "Compare latency of cart-service and inventory in the last hour",
            RedMany(&["cart-service", "inventory"], 60, LAT),
        ),
        // Throughput, English.
        (
            "What is the throughput of checkout in the last hour?",
            Red("checkout", None, 60, TPUT),
        ),
        (
            "requests per second of frontend in the last 30 minutes",
            Red("frontend", None, 30, TPUT),
        ),
        (
            "How many requests did payments get in the last 2 hours?",
            Red("payments", None, 120, TPUT),
        ),
        (
            "traffic of cart-service in the last 15 minutes",
            Red("cart-service", None, 15, TPUT),
        ),
        (
            "request rate of inventory over the past hour",
            Red("inventory", None, 60, TPUT),
        ),
        (
            "throughput of GET /home on frontend in the last hour",
            Red("frontend", Some("GET /home"), 60, TPUT),
        ),
        // Rankings, English.
        (
            "What are the slowest endpoints in the last hour?",
            Slowest(None, 60),
        ),
        (
            "slowest operations of frontend in the last 2 hours",
            Slowest(Some("frontend"), 120),
        ),
        (
            "Which endpoints of checkout are the slowest over the last 30 minutes?",
            Slowest(Some("checkout"), 30),
        ),
        ("top errors in the last hour", TopErrors(None, 60)),
        (
            "What are the most common errors of payments in the last 2 hours?",
            TopErrors(Some("payments"), 120),
        ),
        (
            "which errors does checkout have in the last 30 minutes?",
            TopErrors(Some("checkout"), 30),
        ),
        (
            "most frequent errors over the past 2 hours",
            TopErrors(None, 120),
        ),
        // Logs, English.
        (
            "show logs containing \"connection refused\" in the last hour",
            Logs("connection refused", None, 60),
        ),
        (
            "logs of payments with 'card declined' in the last 2 hours",
            Logs("card declined", Some("payments"), 120),
        ),
        (
            "Find logs mentioning \"out of stock\" in the last 30 minutes",
            Logs("out of stock", None, 30),
        ),
        (
            "logs containing 'gateway timeout' for payments over the last hour",
            Logs("gateway timeout", Some("payments"), 60),
        ),
        (
            "show me logs with \"placed\" from checkout in the last 15 minutes",
            Logs("placed", Some("checkout"), 15),
        ),
        // Calls, English.
        ("Which services call checkout?", Callers("checkout", 60)),
        (
            "who calls payments in the last 2 hours?",
            Callers("payments", 120),
        ),
        ("what calls cart-service?", Callers("cart-service", 60)),
        (
            "Which services does checkout call?",
            Callees("checkout", 60),
        ),
        (
            "what does frontend call in the last 2 hours?",
            Callees("frontend", 120),
        ),
        (
            "dependencies of checkout over the last 30 minutes",
            Callees("checkout", 30),
        ),
        ("who calls orders-db?", Callers("orders-db", 60)),
        // Portuguese.
        (
            "Qual a taxa de erros do checkout na última hora?",
            Red("checkout", None, 60, RATE),
        ),
        (
            "taxa de erro do payments nos últimos 30 minutos",
            Red("payments", None, 30, RATE),
        ),
        (
            "Quantos erros teve o cart-service nas últimas 2 horas?",
            Red("cart-service", None, 120, RATE),
        ),
        (
            "taxa de falhas do frontend nos últimos 15 minutos",
            Red("frontend", None, 15, RATE),
        ),
        (
            "Qual é a latência p95 do checkout na última hora?",
            Red("checkout", None, 60, LAT),
        ),
        (
            "latência do payments nos últimos 30 minutos",
            Red("payments", None, 30, LAT),
        ),
        (
            "tempo de resposta do inventory nas últimas 2 horas",
            Red("inventory", None, 120, LAT),
        ),
        (
            "mediana de latência do frontend na última hora",
            Red("frontend", None, 60, LAT),
        ),
        (
            "latência do GET /cart no frontend na última hora",
            Red("frontend", Some("GET /cart"), 60, LAT),
        ),
        (
            "Qual a vazão do checkout na última hora?",
            Red("checkout", None, 60, TPUT),
        ),
        (
            "requisições por segundo do frontend nos últimos 30 minutos",
            Red("frontend", None, 30, TPUT),
        ),
        (
            "Quantas requisições o payments recebeu nas últimas 2 horas?",
            Red("payments", None, 120, TPUT),
        ),
        (
            "Quais são os endpoints mais lentos na última hora?",
            Slowest(None, 60),
        ),
        (
            "operações mais lentas do frontend nas últimas 2 horas",
            Slowest(Some("frontend"), 120),
        ),
        (
            "Quais os principais erros na última hora?",
            TopErrors(None, 60),
        ),
        (
            "erros mais comuns do payments nas últimas 2 horas",
            TopErrors(Some("payments"), 120),
        ),
        (
            "mostre logs contendo \"connection refused\" na última hora",
            Logs("connection refused", None, 60),
        ),
        (
            "logs do payments com 'card declined' nas últimas 2 horas",
            Logs("card declined", Some("payments"), 120),
        ),
        ("Quem chama o checkout?", Callers("checkout", 60)),
        (
            "quais serviços chamam o payments nas últimas 2 horas?",
            Callers("payments", 120),
        ),
        ("Quais serviços o checkout chama?", Callees("checkout", 60)),
        (
            "dependências do frontend na última hora",
            Callees("frontend", 60),
        ),
        (
            "Compare a taxa de erros do checkout e do payments na última hora",
            RedMany(&["checkout", "payments"], 60, RATE),
        ),
        (
            "taxa de erros do inventory nas últimas 2 horas",
            Red("inventory", None, 120, RATE),
        ),
        (
            "latência p99 do cart-service nos últimos 15 minutos",
            Red("cart-service", None, 15, LAT),
        ),
        // Outside the engine's scope: declined, never guessed.
        ("tell me a joke", Decline),
        ("what is the error rate?", Decline),
        ("latency of billing-service in the last hour", Decline),
        ("who won the match yesterday?", Decline),
        ("delete all the logs", Decline),
        ("escreva um poema sobre o checkout", Decline),
        ("qual a previsão do tempo amanhã?", Decline),
        ("how do I configure TLS?", Decline),
        ("who calls?", Decline),
        ("please drop table spans", Decline),
    ]
}

/// The answer's query rows, as arrays.
fn rows_of(answer: &Value, i: usize) -> Vec<Value> {
    answer["queries"][i]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn col(answer: &Value, i: usize, row: usize, name: &str) -> Option<Value> {
    let cols = answer["queries"][i]["columns"].as_array()?;
    let c = cols.iter().position(|c| c == name)?;
    answer["queries"][i]["rows"][row].get(c).cloned()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn same_number(a: &Value, b: f64) -> bool {
    a.as_f64()
        .is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

fn same_rows(got: &[Value], want: &[Vec<Value>], cols: &[usize]) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            cols.iter().zip(w).all(|(&c, w)| match (g.get(c), w) {
                (Some(g), Value::Number(n)) => same_number(g, n.as_f64().unwrap_or(f64::NAN)),
                (Some(g), Value::Object(o)) => {
                    let (v, within) = (num(&o["value"]), num(&o["within"]));
                    g.as_f64()
                        .is_some_and(|g| (g - v).abs() <= within.max(1e-9 * v.abs()))
                }
                (Some(g), w) => g == w,
                (None, _) => false,
            })
        })
}

/// Whether `answer` holds exactly what `expect` says; `None` for right,
/// `Some(why)` for wrong.
fn judge(f: &Fixture, expect: &Expect, a: &Value) -> Option<String> {
    let red_ok = |qi: usize, svc: &str, op: Option<&str>, minutes: i64, cols: &[&str]| {
        let want = f.red(svc, op, minutes);
        let gap = want.get("gap_ms").copied().unwrap_or(0.0);
        for c in cols {
            let w = want.get(c).copied().unwrap_or(0.0);
            let ok = |g: &Value| {
                same_number(g, w)
                    || (c.starts_with('p')
                        && g.as_f64().is_some_and(|g| (g - w).abs() <= gap * 1e-6))
            };
            match col(a, qi, 0, c) {
                Some(g) if ok(&g) => {}
                g => return Some(format!("{svc} {c}: got {g:?}, want {w}")),
            }
        }
        None
    };
    match expect {
        Red(svc, op, m, cols) => red_ok(0, svc, *op, *m, cols),
        RedMany(svcs, m, cols) => svcs
            .iter()
            .enumerate()
            .find_map(|(i, s)| red_ok(i, s, None, *m, cols)),
        Slowest(svc, m) => {
            let want = f.slowest(*svc, *m);
            let cols: Vec<usize> = ["service", "operation", "requests", "p95_ms"]
                .iter()
                .map(|c| position(a, c))
                .collect();
            (!same_rows(&rows_of(a, 0), &want, &cols))
                .then(|| format!("got {:?}, want {want:?}", rows_of(a, 0)))
        }
        TopErrors(svc, m) => {
            let want = f.top_errors(*svc, *m);
            let cols: Vec<usize> = ["service", "operation", "message", "errors"]
                .iter()
                .map(|c| position(a, c))
                .collect();
            (!same_rows(&rows_of(a, 0), &want, &cols))
                .then(|| format!("got {:?}, want {want:?}", rows_of(a, 0)))
        }
        Logs(text, svc, m) => {
            let want = f.logs_with(text, *svc, *m);
            let b = position(a, "body");
            let got: Vec<String> = rows_of(a, 0)
                .iter()
                .filter_map(|r| r.get(b).and_then(Value::as_str).map(str::to_owned))
                .collect();
            (got != want).then(|| format!("got {got:?}, want {want:?}"))
        }
        Callers(svc, m) | Callees(svc, m) => {
            let want = f.calls(svc, matches!(expect, Callers(..)), *m);
            let cols = vec![position(a, "service"), position(a, "calls")];
            (!same_rows(&rows_of(a, 0), &want, &cols))
                .then(|| format!("got {:?}, want {want:?}", rows_of(a, 0)))
        }
        Decline => Some("answered a question outside its scope".into()),
    }
}

fn position(a: &Value, name: &str) -> usize {
    a["queries"][0]["columns"]
        .as_array()
        .and_then(|c| c.iter().position(|c| c == name))
        .unwrap_or(usize::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_engine_answers_the_golden_set_with_the_right_numbers() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    let now = common::now_ns() as i64;
    let f = fixture(now);
    for req in otlp_spans(&f.spans) {
        export(&http, &server, "/v1/traces", &req).await;
    }
    export(&http, &server, "/v1/logs", &otlp_logs(&f.logs)).await;
    // Everything is visible to queries.
    let want = f.spans.len() as i64;
    for _ in 0..100 {
        let rows = common::sql(&http, &server, "SELECT count(*) FROM spans").await;
        if rows.first().and_then(|r| r[0].as_i64()) == Some(want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let set = golden();
    let pt = set
        .iter()
        .filter(|(q, _)| {
            [
                "Qual",
                "taxa",
                "latência",
                "Quant",
                "Quais",
                "Quem",
                "quais",
                "mostre",
                "logs do",
                "operações",
                "erros",
                "requisições",
                "tempo",
                "mediana",
                "dependências",
                "Compare a",
                "escreva",
            ]
            .iter()
            .any(|p| q.starts_with(p))
        })
        .count();
    assert!(set.len() >= 80, "{} questions", set.len());
    assert!(pt >= 20, "{pt} questions in Portuguese");
    let (mut covered, mut right, mut declined) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (q, expect) in &set {
        let (status, a) = call(
            &http,
            &server,
            "POST",
            "/api/v1/ai/chat",
            Some(&server.token),
            Some(json!({"message": q})),
        )
        .await;
        assert_eq!(status, 200, "{q}: {a}");
        assert_eq!(a["engine"], "builtin");
        let is_declined = a["declined"] == true;
        if matches!(expect, Decline) {
            if !is_declined {
                wrong.push(format!("{q}: answered outside its scope: {}", a["answer"]));
            } else {
                assert!(
                    a["queries"].as_array().is_some_and(Vec::is_empty),
                    "{q}: a decline runs nothing"
                );
            }
            continue;
        }
        covered += 1;
        if is_declined {
            declined += 1;
            eprintln!("declined: {q}");
            continue;
        }
        match judge(&f, expect, &a) {
            None => right += 1,
            Some(why) => wrong.push(format!("{q}: {why}\n  answer: {}", a["answer"])),
        }
    }
    eprintln!(
        "golden set: {} questions ({pt} in Portuguese), {covered} covered: {right} right, {declined} declined, {} wrong",
        set.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert!(
        right as f64 >= 0.9 * covered as f64,
        "{right} of {covered} covered questions answered"
    );

    // The CLI asks the same way and prints the answer, the SQL and rows.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ophion"))
        .args([
            "ask",
            "What is the error rate of checkout in the last hour?",
        ])
        .env("OPHION_SERVER", &server.api)
        .env("OPHION_TOKEN", &server.token)
        .output()
        .expect("ophion ask");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let red = f.red("checkout", None, 60);
    assert!(text.contains("checkout: error rate"), "{text}");
    assert!(text.contains("SQL: SELECT"), "{text}");
    assert!(text.contains(&format!("{}", red["requests"])), "{text}");
    assert!(text.contains("builtin engine"), "{text}");

    // A dashboard for a service: a spec whose panels run, saved and read
    // back; a panel that is not a read-only query is refused.
    let ask = |q: &'static str| {
        let (http, server) = (&http, &server);
        async move {
            let (status, a) = call(
                http,
                server,
                "POST",
                "/api/v1/ai/chat",
                Some(&server.token),
                Some(json!({"message": q})),
            )
            .await;
            assert_eq!(status, 200, "{q}: {a}");
            a
        }
    };
    for q in ["dashboard for checkout", "crie um painel para o payments"] {
        let a = ask(q).await;
        let spec = a["dashboard"].clone();
        let panels = spec["panels"].as_array().expect("panels").clone();
        assert!(panels.len() >= 4, "{q}: {spec}");
        for p in &panels {
            let sql = p["sql"]
                .as_str()
                .expect("sql")
                .replace("$from", "(now() - INTERVAL '2 hours')")
                .replace("$to", "now()");
            let (status, v) = call(
                &http,
                &server,
                "POST",
                "/api/v1/query",
                Some(&server.token),
                Some(json!({"sql": sql})),
            )
            .await;
            assert_eq!(status, 200, "{q}: panel {}: {v}", p["title"]);
        }
        let (status, saved) = call(
            &http,
            &server,
            "POST",
            "/api/v1/dashboards",
            Some(&server.token),
            Some(spec.clone()),
        )
        .await;
        assert_eq!(status, 201, "{saved}");
        let path = format!("/api/v1/dashboards/{}", saved["id"]);
        let (status, back) = call(&http, &server, "GET", &path, Some(&server.token), None).await;
        assert_eq!(status, 200);
        assert_eq!(back["panels"], spec["panels"]);
    }
    let mut bad = ask("dashboard for checkout").await["dashboard"].clone();
    bad["panels"][0]["sql"] = json!("DROP TABLE spans");
    let (status, v) = call(
        &http,
        &server,
        "POST",
        "/api/v1/dashboards",
        Some(&server.token),
        Some(bad),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (_, list) = call(
        &http,
        &server,
        "GET",
        "/api/v1/dashboards",
        Some(&server.token),
        None,
    )
    .await;
    assert_eq!(list["dashboards"].as_array().map(Vec::len), Some(2));

    // What's wrong with a service: ordered steps, each with evidence; the
    // first compares the window with the one before, with the right numbers.
    for q in [
        "what's wrong with checkout?",
        "o que há de errado com o checkout?",
    ] {
        let a = ask(q).await;
        let steps = a["steps"].as_array().expect("steps").clone();
        assert!(steps.len() >= 3, "{q}: {a}");
        for (i, st) in steps.iter().enumerate() {
            assert_eq!(st["step"], i + 1);
            assert!(
                st["evidence"].as_array().is_some_and(|e| !e.is_empty()),
                "{q}: {st}"
            );
        }
        let red = f.red("checkout", None, 60);
        let first = steps[0]["action"].as_str().expect("action");
        assert!(
            first.contains(&format!("-> {}", red["requests"])),
            "{q}: {first}"
        );
        assert!(a["analysis"]["root_causes"].is_array(), "{q}");
    }
    // The root cause of a recent problem: the analysis, summarised.
    let a = ask("what is the root cause of the problem in the last 30 minutes?").await;
    assert_eq!(a["declined"], false, "{a}");
    assert!(a["analysis"]["root_causes"].is_array(), "{a}");
}
