//! Realistic, mostly unique log lines ([`LineGen`]: eight real-world
//! formats with variables in every line, and three planted needles), and
//! loghub-2k's lines with their digits drawn again ([`Loghub`]), as OTLP
//! requests ([`request`]). The log search bench and the side-by-side bench
//! against Parseable send the same lines.

use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, any_value::Value},
    logs::v1::LogRecord,
};
use ophion_core::testing::{SplitMix64, service_logs_request};

/// The generator's randomness: [`SplitMix64`] with the draws lines need.
#[derive(Debug)]
pub struct Rng(pub SplitMix64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64(seed))
    }
    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0.bits()
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    /// One of `v`.
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
    /// `n` random hex digits (at most 32).
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = format!("{:016x}{:016x}", self.bits(), self.bits());
        s.truncate(n);
        s
    }
    /// A random private IPv4 address.
    pub fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.below(256),
            self.below(256),
            1 + self.below(254)
        )
    }
}

const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
];
const WORDS: &[&str] = &[
    "orders",
    "users",
    "payments",
    "sessions",
    "inventory",
    "carts",
    "invoices",
    "events",
];
const TOPICS: &[&str] = &[
    "orders",
    "payments",
    "clicks",
    "audit-log",
    "inventory-updates",
];
const PODS: &[&str] = &["api", "worker", "sidecar", "nginx", "redis", "migrate"];
/// The services lines are attributed to.
pub const SERVICES: &[&str] = &["frontend", "checkout", "payments", "db", "kafka", "cache"];

/// The planted needles.
/// An order id planted in three lines.
pub const ORDER: &str = "ord-83748213";
/// An error code planted in a burst of 0.02 % of the lines.
pub const CODE: &str = "E_QUOTA_7731";
/// A phrase planted in 0.05 % of the lines, evenly spread.
pub const PHRASE: &str = "lock wait timeout exceeded";

/// Realistic, mostly unique log lines.
#[derive(Debug)]
pub struct LineGen {
    r: Rng,
    n: u64,
    total: u64,
}

impl LineGen {
    /// A generator of `total` lines (the needles' places depend on it).
    pub fn new(seed: u64, total: u64) -> Self {
        Self {
            r: Rng::new(seed),
            n: 0,
            total,
        }
    }

    /// The next line: (service index, severity number, body).
    fn draw(&mut self) -> (usize, i32, String) {
        let i = self.n;
        self.n += 1;
        let r = &mut self.r;
        // The order id: three lines, early, middle and late.
        if [self.total / 7, self.total / 2, self.total * 6 / 7].contains(&i) {
            return (
                1,
                9,
                format!(
                    "payment captured for order {ORDER} amount={}.{:02} EUR",
                    r.below(900),
                    r.below(100)
                ),
            );
        }
        // A burst of 0.02 % of the lines in a few minutes.
        let burst = self.total * 3 / 5;
        if i >= burst && i < burst + self.total / 500 && i.is_multiple_of(10) {
            return (
                2,
                17,
                format!(
                    "quota check failed code={CODE} tenant=t{} used={}",
                    r.below(500),
                    r.below(1 << 30)
                ),
            );
        }
        // A phrase in 0.05 % of the lines, evenly spread.
        if i % 2000 == 1999 {
            return (
                3,
                17,
                format!(
                    "ERROR:  {PHRASE}; try restarting transaction (pid {} xid {})",
                    r.below(99_999),
                    r.below(1 << 32)
                ),
            );
        }
        let (svc, sev, body) = match r.below(16) {
            0 | 1 => (
                0,
                9,
                format!(
                    "{} - - \"{} /api/{}/{} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0\" rt={}.{:03}",
                    r.ip(),
                    r.pick(&["GET", "POST", "PUT", "DELETE"]),
                    r.pick(WORDS),
                    r.below(1_000_000),
                    r.pick(&["200", "200", "201", "204", "404", "500", "503"]),
                    r.below(50_000),
                    r.below(3),
                    r.below(1000)
                ),
            ),
            2 => (
                3,
                9,
                format!(
                    "duration: {}.{:03} ms  statement: SELECT * FROM {} WHERE id = {}",
                    r.below(3000),
                    r.below(1000),
                    r.pick(WORDS),
                    r.below(10_000_000)
                ),
            ),
            3 => (
                3,
                9,
                format!(
                    "connection authorized: user={} database={} host={} port={}",
                    r.pick(NAMES),
                    r.pick(WORDS),
                    r.ip(),
                    1024 + r.below(60_000)
                ),
            ),
            4 => (
                2,
                13,
                format!(
                    "Back-off restarting failed container {} in pod {}-{}-{}",
                    r.pick(PODS),
                    r.pick(PODS),
                    r.hex(10),
                    r.hex(5)
                ),
            ),
            5 => (
                2,
                9,
                format!(
                    "Successfully pulled image \"registry.example.com/shop/{}:1.{}.{}\" in {}.{}s",
                    r.pick(PODS),
                    r.below(9),
                    r.below(20),
                    r.below(60),
                    r.below(1000)
                ),
            ),
            6 => (
                4,
                9,
                format!(
                    "[Consumer clientId=consumer-{}, groupId={}] Committed offset {} for partition {}-{}",
                    r.below(64),
                    r.pick(WORDS),
                    r.below(1 << 40),
                    r.pick(TOPICS),
                    r.below(32)
                ),
            ),
            7 => (
                4,
                13,
                format!(
                    "[ReplicaFetcher replicaId={}, leaderId={}, fetcherId=0] Error sending fetch request (sessionId={}, epoch={}) to node {}: timed out",
                    r.below(9),
                    r.below(9),
                    r.below(1 << 31),
                    r.below(100_000),
                    r.below(9)
                ),
            ),
            8 | 9 => (
                1,
                9,
                format!(
                    "o.s.web.servlet.DispatcherServlet : Completed {} for user {} session {} in {} ms",
                    r.pick(&["200 OK", "201 CREATED", "404 NOT_FOUND"]),
                    r.pick(NAMES),
                    r.hex(24),
                    r.below(5000)
                ),
            ),
            10 => (
                1,
                17,
                format!(
                    "c.e.shop.CheckoutService : Payment declined for cart {} user={} reason={}",
                    r.below(100_000_000),
                    r.pick(NAMES),
                    r.pick(&[
                        "insufficient_funds",
                        "expired_card",
                        "do_not_honor",
                        "fraud_suspected"
                    ])
                ),
            ),
            11 => (
                5,
                9,
                format!(
                    "{}:M {} * Background saving started by pid {}; {} changes in {} seconds",
                    r.below(99_999),
                    r.below(1 << 31),
                    r.below(99_999),
                    r.below(100_000),
                    r.below(3600)
                ),
            ),
            12 | 13 => (
                0,
                9,
                format!(
                    "{{\"level\":\"info\",\"msg\":\"request served\",\"method\":\"{}\",\"path\":\"/v2/{}/{}\",\"status\":{},\"latency_ms\":{},\"request_id\":\"{}-{}-{}\"}}",
                    r.pick(&["GET", "POST"]),
                    r.pick(WORDS),
                    r.below(1_000_000),
                    r.pick(&["200", "302", "404"]),
                    r.below(2000),
                    r.hex(8),
                    r.hex(4),
                    r.hex(12)
                ),
            ),
            14 => (
                5,
                13,
                format!(
                    "level=warn msg=\"slow command\" cmd={} key={}:{} took={}us client={}:{}",
                    r.pick(&["GET", "HGETALL", "ZRANGE", "SET"]),
                    r.pick(WORDS),
                    r.below(10_000_000),
                    r.below(1_000_000),
                    r.ip(),
                    1024 + r.below(60_000)
                ),
            ),
            _ => (
                4,
                13,
                format!(
                    "upstream timed out (110: Connection timed out) while reading response header from upstream, client: {}, server: shop, request: \"GET /api/{}/{} HTTP/1.1\"",
                    r.ip(),
                    r.pick(WORDS),
                    r.below(1_000_000)
                ),
            ),
        };
        (svc, sev, body)
    }
}

/// Where lines come from: (service, severity number, body) each.
/// A source of log lines.
pub trait Lines {
    /// The next line: (service name, severity number, body).
    fn line(&mut self) -> (&'static str, i32, String);
}

impl Lines for LineGen {
    fn line(&mut self) -> (&'static str, i32, String) {
        let (svc, sev, body) = self.draw();
        (SERVICES[svc], sev, body)
    }
}

/// loghub-2k's lines, picked at random, with every digit drawn again and
/// the severity of their `Level` column (0 where a system has none).
#[derive(Debug)]
pub struct Loghub {
    r: Rng,
    systems: Vec<(&'static str, Vec<(i32, String)>)>,
    /// Every `keep_every`-th line written (severity number, body), to cut
    /// searches from.
    pub kept: Vec<(i32, String)>,
    keep_every: u64,
    n: u64,
}

impl Loghub {
    /// Reads loghub-2k from `dir`; every `keep_every`-th line written is kept.
    pub fn read(dir: &std::path::Path, seed: u64, keep_every: u64) -> Self {
        let systems = crate::LOGHUB_SYSTEMS
            .iter()
            .map(|name| {
                let csv = dir.join(name).join(format!("{name}_2k.log_structured.csv"));
                assert!(csv.exists(), "loghub-2k: {} is missing", csv.display());
                let mut columns = crate::loghub_columns(&csv, &["Content", "Level"]).into_iter();
                let contents = columns.next().flatten().expect("Content column");
                let levels = columns
                    .next()
                    .flatten()
                    .unwrap_or_else(|| vec![String::new(); contents.len()]);
                let lines = levels
                    .iter()
                    .map(|l| crate::severity_number(l))
                    .zip(contents)
                    .collect();
                (*name, lines)
            })
            .collect();
        Self {
            r: Rng::new(seed),
            systems,
            kept: Vec::new(),
            keep_every: keep_every.max(1),
            n: 0,
        }
    }
}

impl Lines for Loghub {
    fn line(&mut self) -> (&'static str, i32, String) {
        let (name, lines) = &self.systems[self.r.below(self.systems.len() as u64) as usize];
        let (sev, line) = &lines[self.r.below(lines.len() as u64) as usize];
        let body: String = line
            .chars()
            .map(|c| {
                if c.is_ascii_digit() {
                    char::from(b'0' + self.r.below(10) as u8)
                } else {
                    c
                }
            })
            .collect();
        if self.n.is_multiple_of(self.keep_every) {
            self.kept.push((*sev, body.clone()));
        }
        self.n += 1;
        (name, *sev, body)
    }
}

/// `n` lines as one request, the `first`-th line first, 2,000 lines a
/// second from `t0` (Unix nanoseconds).
pub fn request(g: &mut dyn Lines, t0: u64, first: u64, n: usize) -> ExportLogsServiceRequest {
    let mut by_service: Vec<(&str, Vec<LogRecord>)> = Vec::new();
    for i in first..first + n as u64 {
        let (svc, sev, body) = g.line();
        let record = LogRecord {
            // 2,000 lines a second.
            time_unix_nano: t0 + i * 500_000,
            severity_number: sev,
            body: Some(AnyValue {
                value: Some(Value::StringValue(body)),
            }),
            ..Default::default()
        };
        match by_service.iter_mut().find(|(s, _)| *s == svc) {
            Some((_, records)) => records.push(record),
            None => by_service.push((svc, vec![record])),
        }
    }
    // One resource per service, as an SDK batches them.
    let resource_logs = by_service
        .into_iter()
        .flat_map(|(s, records)| service_logs_request(s, records).resource_logs)
        .collect();
    ExportLogsServiceRequest { resource_logs }
}
