//! Per-minute rollups of spans, aggregated as spans are written, so that
//! rate, errors and latency over hours of traffic are read from thousands
//! of rows instead of millions (what Prometheus' recording rules, Tempo's
//! metrics generator and SigNoz's materialized views do).
//!
//! Three tables sit beside `spans` in every query session:
//!
//! - `span_minutes`: per minute (`minute`, its start), service, operation
//!   (`name`, `http_route`), `kind` and `entry` (a server or consumer span,
//!   or a root: what a request is), and latency bucket `duration_ns`: how
//!   many `spans` and how many `errors`. Buckets grow by 4 %, and
//!   `duration_ns` is the bucket's middle, within 2 % of every duration in
//!   it: `approx_percentile_cont_with_weight(duration_ns, spans, 0.95,
//!   1000)` is a p95 within about 2 %; counts are exact. (With the
//!   t-digest's default 100 centroids, it merges buckets, and the order
//!   DataFusion's partitions merge in can move the answer by 3 %.)
//! - `service_minutes`: `span_minutes`' requests (`entry`) summed over
//!   operations: per minute, service and latency bucket, `spans` and
//!   `errors`. A services overview of an hour of 100 services reads
//!   thousands of its rows where `span_minutes` has millions.
//! - `service_edges`: per minute, `caller` and `callee` services and their
//!   `calls` and `errors` (the callee's) per latency bucket `duration_ns`
//!   (the callee's duration, as `span_minutes` buckets it). A call is a client or producer
//!   span whose child is a server or consumer span (or a span with a
//!   remote parent) of another service, paired as they arrive; a client
//!   span with no such child (within two minutes of its arrival, among
//!   the last 200,000 waiting spans) is a call to its `server_address`,
//!   an untraced peer, when it has one; while it waits it is shown so.
//!
//! The store keeps `[store.query] rollup_hours` (default 24) and refuses
//! a query reaching further back, so an answer is never silently partial;
//! after a restart the rollups are rebuilt from the stored spans in the
//! background and refuse every query until that is done. Callers fall
//! back to `spans` on [`QueryError::NotCovered`].
//!
//! This module aggregates and renders rows; `query.rs` serves them as
//! tables and `store.rs` plans and runs the rebuild. Every row is counted
//! once: live writes are counted as they are
//! acknowledged, and the rebuild reads exactly what was stored before the
//! store accepted its first write. Pairs split by a restart (one side
//! before, one after) are lost.

mod tables;

pub use tables::{service_edges_schema, service_minutes_schema, span_minutes_schema};

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
};

use arrow_array::{
    Array, FixedSizeBinaryArray, Int64Array, RecordBatch, StringArray, StringViewArray,
    TimestampNanosecondArray, UInt32Array,
};
use ophion_core::{QueryError, TenantId, schema::col};

/// The table of per-minute operation latency buckets.
pub const SPAN_MINUTES: &str = "span_minutes";
/// The table of per-minute requests per service and latency bucket.
pub const SERVICE_MINUTES: &str = "service_minutes";
/// The table of per-minute calls between services.
pub const SERVICE_EDGES: &str = "service_edges";
/// The column both tables are keyed by in time.
pub const MINUTE: &str = "minute";

/// Nanoseconds in a minute.
pub(crate) const MINUTE_NS: i64 = 60_000_000_000;
/// Ratio between successive latency buckets.
const GAMMA: f64 = 1.04;
/// Largest relative error of a bucket's `duration_ns`: (γ − 1) / (γ + 1).
pub const RELATIVE_ERROR: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);
/// Operations kept per tenant and minute; more are counted under
/// [`OTHER`] (a runaway span name must not eat the memory).
const MAX_OPERATIONS: usize = 20_000;
/// The operation name counted once a tenant has 20,000 operations in a
/// minute.
pub const OTHER: &str = "<other>";
/// Spans waiting for the other side of a call, per tenant.
const MAX_PENDING: usize = 200_000;
/// How long (of arrival time) a span waits for the other side of a call.
const PENDING_NS: i64 = 2 * MINUTE_NS;
/// The OTLP span flags saying the parent is remote
/// (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`).
const REMOTE_PARENT: u32 = 0x300;

/// The bucket of a duration: `d` in (γ^(b−1), γ^b]; durations ≤ 0 share
/// `i16::MIN`.
fn bucket(d: i64) -> i16 {
    if d <= 0 {
        return i16::MIN;
    }
    ((d as f64).ln() / GAMMA.ln()).ceil() as i16
}

/// The value a bucket stands for: within [`RELATIVE_ERROR`] of all of it.
fn representative(b: i16) -> i64 {
    if b == i16::MIN {
        return 0;
    }
    (2.0 * GAMMA.powi(i32::from(b)) / (GAMMA + 1.0)).round() as i64
}

/// The value a bucket stands for of `duration` (SQL of an `Int64` of
/// nanoseconds): what a query groups raw spans by to merge them with the
/// rollups' buckets (`representative(bucket(d))`, in SQL).
pub fn bucket_sql(duration: &str) -> String {
    format!(
        "CASE WHEN {duration} <= 0 THEN CAST(0 AS BIGINT) ELSE CAST(round(2.0 * power({GAMMA:?}, \
         ceil(ln(CAST({duration} AS DOUBLE)) / ln({GAMMA:?}))) / {:?}) AS BIGINT) END",
        GAMMA + 1.0
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OpKey {
    service: Arc<str>,
    name: Arc<str>,
    route: Option<Arc<str>>,
    kind: Arc<str>,
    entry: bool,
}

/// Spans and errors per latency bucket.
type Buckets = BTreeMap<i16, [u64; 2]>;

#[derive(Debug, Default)]
struct Minute {
    ops: HashMap<OpKey, Buckets>,
    /// Requests (entry spans) per service, whatever their operation.
    requests: HashMap<Arc<str>, Buckets>,
    /// Calls per caller and callee, by the latency bucket of the call.
    edges: HashMap<(Arc<str>, Arc<str>), Buckets>,
}

/// A span waiting for the other side of a call.
#[derive(Debug)]
struct Waiting {
    service: Arc<str>,
    minute: i64,
    error: bool,
    /// Latency bucket of its duration.
    bucket: i16,
    /// `server_address` of a client span.
    peer: Option<Arc<str>>,
    seq: u64,
}

type SpanKey = ([u8; 16], [u8; 8]);

#[derive(Debug, Default)]
struct Pending {
    /// Client and producer spans, by (trace, span id).
    parents: HashMap<SpanKey, Waiting>,
    /// Server, consumer and remote-parent spans, by (trace, parent id).
    children: HashMap<SpanKey, Waiting>,
    /// Arrival order: (is a parent, key, seq, arrival time).
    order: VecDeque<(bool, SpanKey, u64, i64)>,
    seq: u64,
}

#[derive(Debug, Default)]
struct TenantRollup {
    minutes: BTreeMap<i64, Minute>,
    strings: HashSet<Arc<str>>,
    pending: Pending,
}

impl TenantRollup {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(Arc::clone(&a));
        a
    }

    fn edge(&mut self, minute: i64, caller: Arc<str>, callee: Arc<str>, error: bool, bucket: i16) {
        if caller == callee {
            return;
        }
        let cell = self
            .minutes
            .entry(minute)
            .or_default()
            .edges
            .entry((caller, callee))
            .or_default()
            .entry(bucket)
            .or_default();
        cell[0] += 1;
        cell[1] += u64::from(error);
    }

    /// Drops waiting spans past their time or the cap; an unpaired client
    /// span with a `server_address` is a call to that peer.
    fn expire(&mut self, now: i64, all: bool) {
        while let Some(&(is_parent, key, seq, at)) = self.pending.order.front() {
            let over = self.pending.order.len() > MAX_PENDING;
            if !(all || over || at < now - PENDING_NS) {
                break;
            }
            self.pending.order.pop_front();
            let map = if is_parent {
                &mut self.pending.parents
            } else {
                &mut self.pending.children
            };
            if map.get(&key).is_some_and(|w| w.seq == seq)
                && let Some(w) = map.remove(&key)
                && let Some(peer) = w.peer
            {
                self.edge(w.minute, w.service, peer, w.error, w.bucket);
            }
        }
    }
}

/// Every tenant's rollups; see the module docs.
#[derive(Debug)]
pub struct Rollups {
    /// Minutes kept; `None` keeps every minute; `Some(0)`: turned off.
    window_minutes: Option<i64>,
    tenants: Mutex<HashMap<TenantId, TenantRollup>>,
    ready: AtomicBool,
}

/// Adds `more`'s counts to `to`.
fn add(to: &mut Buckets, more: &Buckets) {
    for (&b, &[s, e]) in more {
        let c = to.entry(b).or_default();
        c[0] += s;
        c[1] += e;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A string column as either Arrow layout (the write path has `Utf8`,
/// queries `Utf8View`).
enum Text<'a> {
    Plain(&'a StringArray),
    View(&'a StringViewArray),
    Missing,
}

impl<'a> Text<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Self {
        let Some(a) = batch.column_by_name(name) else {
            return Text::Missing;
        };
        if let Some(a) = a.as_any().downcast_ref::<StringArray>() {
            Text::Plain(a)
        } else if let Some(a) = a.as_any().downcast_ref::<StringViewArray>() {
            Text::View(a)
        } else {
            Text::Missing
        }
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Text::Plain(a) => (!a.is_null(i)).then(|| a.value(i)),
            Text::View(a) => (!a.is_null(i)).then(|| a.value(i)),
            Text::Missing => None,
        }
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch.column_by_name(name)?.as_any().downcast_ref::<T>()
}

fn id<const N: usize>(a: Option<&FixedSizeBinaryArray>, i: usize) -> Option<[u8; N]> {
    let a = a?;
    if a.is_null(i) {
        return None;
    }
    a.value(i).try_into().ok()
}

/// Calls of client spans still waiting: (minute, caller, peer) -> calls
/// and errors.
type Waited<'a> = HashMap<(i64, &'a Arc<str>, &'a Arc<str>, i16), [u64; 2]>;

/// One batch's counts before they are merged under the lock:
/// (minute, service, name, route, kind, entry) -> buckets.
type Local<'a> = HashMap<(i64, &'a str, &'a str, Option<&'a str>, &'a str, bool), Buckets>;

impl Rollups {
    /// Rollups keeping `window_minutes` (`None`: all), ready for queries
    /// at once or only after [`Rollups::set_ready`].
    pub(crate) fn new(window_minutes: Option<i64>, ready: bool) -> Self {
        Self {
            window_minutes,
            tenants: Mutex::default(),
            // Turned off, there is nothing to rebuild (queries are refused
            // by `check` all the same).
            ready: AtomicBool::new(ready || window_minutes == Some(0)),
        }
    }

    /// Marks the rebuild done: queries are answered from now on.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Relaxed);
    }

    /// Whether queries are answered.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// The first minute kept at `now_ns`.
    pub(crate) fn cutoff(&self, now_ns: i64) -> i64 {
        match self.window_minutes {
            Some(w) => now_ns.div_euclid(MINUTE_NS) - w,
            None => i64::MIN,
        }
    }

    /// Counts a batch of spans (any layout with the spans table's columns)
    /// of `tenant`, arriving at `now_ns`.
    pub(crate) fn observe(&self, tenant: &TenantId, batch: &RecordBatch, now_ns: i64) {
        if self.window_minutes == Some(0) {
            return;
        }
        let n = batch.num_rows();
        let (Some(start), Some(duration)) = (
            column::<TimestampNanosecondArray>(batch, col::START_TIME),
            column::<Int64Array>(batch, col::DURATION_NS),
        ) else {
            return;
        };
        let service = Text::of(batch, col::SERVICE_NAME);
        let name = Text::of(batch, col::NAME);
        let route = Text::of(batch, "http_route");
        let kind = Text::of(batch, col::KIND);
        let status = Text::of(batch, col::STATUS_CODE);
        let peer = Text::of(batch, "server_address");
        let trace = column::<FixedSizeBinaryArray>(batch, col::TRACE_ID);
        let span = column::<FixedSizeBinaryArray>(batch, col::SPAN_ID);
        let parent = column::<FixedSizeBinaryArray>(batch, col::PARENT_SPAN_ID);
        let flags = column::<UInt32Array>(batch, col::FLAGS);
        let cutoff = self.cutoff(now_ns);

        let mut local: Local<'_> = HashMap::new();
        // (is a parent, key, service, minute, error, bucket, peer)
        let mut calls = Vec::new();
        for i in 0..n {
            let minute = start.value(i).div_euclid(MINUTE_NS);
            if minute < cutoff {
                continue;
            }
            let svc = service
                .get(i)
                .unwrap_or(ophion_core::semconv::UNKNOWN_SERVICE);
            let k = kind.get(i).unwrap_or("");
            let parent_id = id::<8>(parent, i);
            let entry = matches!(k, "server" | "consumer") || parent_id.is_none();
            let error = status.get(i) == Some("error");
            let b = bucket(duration.value(i));
            let cell = local
                .entry((
                    minute,
                    svc,
                    name.get(i).unwrap_or(""),
                    route.get(i),
                    k,
                    entry,
                ))
                .or_default()
                .entry(b)
                .or_default();
            cell[0] += 1;
            cell[1] += u64::from(error);
            let Some(t) = id::<16>(trace, i) else {
                continue;
            };
            let remote = flags.is_some_and(|f| f.value(i) & REMOTE_PARENT == REMOTE_PARENT);
            if matches!(k, "client" | "producer")
                && let Some(s) = id::<8>(span, i)
            {
                calls.push((true, (t, s), svc, minute, error, b, peer.get(i)));
            }
            if (matches!(k, "server" | "consumer") || remote)
                && let Some(p) = parent_id
            {
                calls.push((false, (t, p), svc, minute, error, b, None));
            }
        }

        let mut tenants = lock(&self.tenants);
        let r = tenants.entry(tenant.clone()).or_default();
        if cutoff != i64::MIN {
            let kept = r.minutes.split_off(&cutoff);
            r.minutes = kept;
        }
        for ((minute, svc, op, rt, k, entry), buckets) in local {
            let mut key = OpKey {
                service: r.intern(svc),
                name: r.intern(op),
                route: rt.map(|s| r.intern(s)),
                kind: r.intern(k),
                entry,
            };
            let m = r.minutes.entry(minute).or_default();
            if !m.ops.contains_key(&key) && m.ops.len() >= MAX_OPERATIONS {
                key.name = Arc::from(OTHER);
                key.route = None;
            }
            if entry {
                let cells = m.requests.entry(Arc::clone(&key.service)).or_default();
                add(cells, &buckets);
            }
            add(m.ops.entry(key).or_default(), &buckets);
        }
        for (is_parent, key, svc, minute, error, b, peer) in calls {
            let svc = r.intern(svc);
            let other = if is_parent {
                r.pending.children.remove(&key)
            } else {
                r.pending.parents.remove(&key)
            };
            match other {
                // The child's minute, status and duration: the call as the
                // callee saw it.
                Some(child) if is_parent => {
                    r.edge(child.minute, svc, child.service, child.error, child.bucket)
                }
                Some(client) => r.edge(minute, client.service, svc, error, b),
                None => {
                    r.pending.seq += 1;
                    let seq = r.pending.seq;
                    let w = Waiting {
                        service: svc,
                        minute,
                        error,
                        bucket: b,
                        peer: peer.map(|p| r.intern(p)),
                        seq,
                    };
                    let map = if is_parent {
                        &mut r.pending.parents
                    } else {
                        &mut r.pending.children
                    };
                    map.insert(key, w);
                    r.pending.order.push_back((is_parent, key, seq, now_ns));
                }
            }
        }
        r.expire(now_ns, false);
    }

    /// Refuses a scan from `from_ns` unless it is covered.
    pub(crate) fn check(&self, table: &str, from_ns: i64, now_ns: i64) -> Result<(), QueryError> {
        if self.window_minutes == Some(0) {
            return Err(QueryError::NotCovered(format!(
                "{table} is turned off ([store.query] rollup_hours = 0); query spans"
            )));
        }
        if !self.is_ready() {
            return Err(QueryError::NotCovered(format!(
                "{table} is being rebuilt from stored spans after a restart; query spans meanwhile"
            )));
        }
        let cutoff = self.cutoff(now_ns);
        if cutoff != i64::MIN && from_ns < cutoff.saturating_mul(MINUTE_NS) {
            return Err(QueryError::NotCovered(format!(
                "{table} holds the last {} hours only; bound `{MINUTE}` (minute >= now() - INTERVAL '1 hour') \
                 or query spans for older data",
                self.window_minutes.unwrap_or(0) / 60
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_stand_for_their_durations_within_the_stated_error() {
        for d in [1_i64, 7, 999, 1_000_000, 123_456_789, 3_600_000_000_000] {
            let r = representative(bucket(d)) as f64;
            let err = (r - d as f64).abs() / d as f64;
            assert!(err <= RELATIVE_ERROR + 1e-9, "{d}: {r} is {err} off");
        }
        assert_eq!(representative(bucket(0)), 0);
        assert!(bucket(1_000) < bucket(1_100));
    }
}
