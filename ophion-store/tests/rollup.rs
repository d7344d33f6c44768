//! The per-minute span rollups (`span_minutes`, `service_edges`) against
//! counts computed here from the OTLP requests themselves: exact counts,
//! percentiles within the stated error, calls between services, the same
//! after a restart (from Parquet and from the log), and a clear refusal
//! outside the window.

use std::{collections::HashMap, time::Duration};

use arrow_array::{Array, RecordBatch, cast::AsArray, types::Int64Type};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, any_value::Value},
    trace::v1::span::SpanKind,
};
use ophion_core::{Signal, TelemetryBatch, TelemetryQuery as _, TenantId, testing::Generator};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow},
};
use ophion_store::{Error, MemoryTables, QueryError, Store, StoreConfig, rollup::RELATIVE_ERROR};

const MINUTE: u64 = 60_000_000_000;

fn now() -> u64 {
    ophion_core::testing::now_ns()
}

/// Requests of a few thousand spans each, starting at different minutes of
/// the last half hour.
fn requests(seeds: std::ops::Range<u64>) -> Vec<ExportTraceServiceRequest> {
    let base = now() - 30 * MINUTE;
    seeds
        .map(|s| Generator::new(s, base + (s % 20) * MINUTE + s * 7_000_000_000).traces(3_000))
        .collect()
}

fn batch(req: &ExportTraceServiceRequest) -> TelemetryBatch {
    let c = convert::traces(req, &Limits::default(), TimeWindow::ALL);
    TelemetryBatch::new(Signal::Traces, c.batch.expect("rows")).expect("schema")
}

fn text(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// What the rollups should say, from the requests.
#[derive(Debug, Default)]
struct Expected {
    /// (service, name, minute) -> (spans, errors)
    ops: HashMap<(String, String, i64), (i64, i64)>,
    /// service -> durations of its entry spans
    entry_durations: HashMap<String, Vec<i64>>,
    /// (caller, callee) -> calls
    edges: HashMap<(String, String), i64>,
    /// (caller, callee) -> durations of the calls (the callee's spans)
    edge_durations: HashMap<(String, String), Vec<i64>>,
}

fn expected(reqs: &[ExportTraceServiceRequest]) -> Expected {
    let mut e = Expected::default();
    // (trace, span id) -> (service, kind, peer, duration)
    let mut spans = HashMap::new();
    let mut all = Vec::new();
    for req in reqs {
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| text(&a.value))
                .expect("service");
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                let minute = (s.start_time_unix_nano / MINUTE) as i64;
                let duration = (s.end_time_unix_nano - s.start_time_unix_nano) as i64;
                let error = s.status.as_ref().is_some_and(|st| st.code == 2);
                let c = e
                    .ops
                    .entry((service.clone(), s.name.clone(), minute))
                    .or_default();
                c.0 += 1;
                c.1 += i64::from(error);
                let kind = SpanKind::try_from(s.kind).unwrap_or(SpanKind::Unspecified);
                if matches!(kind, SpanKind::Server | SpanKind::Consumer)
                    || s.parent_span_id.is_empty()
                {
                    e.entry_durations
                        .entry(service.clone())
                        .or_default()
                        .push(duration);
                }
                let peer = s
                    .attributes
                    .iter()
                    .find(|a| a.key == "server.address")
                    .and_then(|a| text(&a.value));
                spans.insert(
                    (s.trace_id.clone(), s.span_id.clone()),
                    (service.clone(), kind, peer, duration),
                );
                all.push((
                    s.trace_id.clone(),
                    s.parent_span_id.clone(),
                    service.clone(),
                    kind,
                    duration,
                ));
            }
        }
    }
    let mut paired = std::collections::HashSet::new();
    for (trace, parent, service, kind, duration) in &all {
        if !matches!(kind, SpanKind::Server | SpanKind::Consumer) {
            continue;
        }
        if let Some((caller, pk, _, _)) = spans.get(&(trace.clone(), parent.clone()))
            && matches!(pk, SpanKind::Client | SpanKind::Producer)
        {
            paired.insert((trace.clone(), parent.clone()));
            if caller != service {
                let key = (caller.clone(), service.clone());
                *e.edges.entry(key.clone()).or_default() += 1;
                e.edge_durations.entry(key).or_default().push(*duration);
            }
        }
    }
    for ((trace, id), (service, kind, peer, duration)) in &spans {
        if matches!(kind, SpanKind::Client | SpanKind::Producer)
            && !paired.contains(&(trace.clone(), id.clone()))
            && let Some(peer) = peer
            && peer != service
        {
            let key = (service.clone(), peer.clone());
            *e.edges.entry(key.clone()).or_default() += 1;
            e.edge_durations.entry(key).or_default().push(*duration);
        }
    }
    e
}

fn strings(b: &RecordBatch, i: usize) -> Vec<String> {
    let c = b.column(i);
    match c.data_type() {
        arrow_schema::DataType::Utf8View => c
            .as_string_view()
            .iter()
            .map(|s| s.unwrap_or("").to_owned())
            .collect(),
        _ => c
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap_or("").to_owned())
            .collect(),
    }
}

fn ints(b: &RecordBatch, i: usize) -> Vec<i64> {
    b.column(i).as_primitive::<Int64Type>().values().to_vec()
}

const OPS: &str = "SELECT service_name, name, CAST(minute AS BIGINT) / 60000000000 AS m, \
     CAST(sum(spans) AS BIGINT), CAST(sum(errors) AS BIGINT) FROM span_minutes \
     WHERE minute >= now() - INTERVAL '2 hours' GROUP BY 1, 2, 3";
const EDGES: &str = "SELECT caller, callee, CAST(sum(calls) AS BIGINT) FROM service_edges \
     WHERE minute >= now() - INTERVAL '2 hours' GROUP BY 1, 2";
const EDGE_P95: &str = "SELECT caller, callee, \
     CAST(approx_percentile_cont_with_weight(duration_ns, calls, 0.95, 1000) AS BIGINT) \
     FROM service_edges WHERE minute >= now() - INTERVAL '2 hours' GROUP BY 1, 2";
const P95: &str = "SELECT service_name, \
     CAST(approx_percentile_cont_with_weight(duration_ns, spans, 0.95, 1000) AS BIGINT) \
     FROM span_minutes WHERE minute >= now() - INTERVAL '2 hours' AND entry GROUP BY 1";

type Ops = HashMap<(String, String, i64), (i64, i64)>;

fn ops(batches: &[RecordBatch]) -> Ops {
    let mut out = HashMap::new();
    for b in batches {
        let (s, n, m, c, e) = (
            strings(b, 0),
            strings(b, 1),
            ints(b, 2),
            ints(b, 3),
            ints(b, 4),
        );
        for i in 0..b.num_rows() {
            out.insert((s[i].clone(), n[i].clone(), m[i]), (c[i], e[i]));
        }
    }
    out
}

fn pairs(batches: &[RecordBatch]) -> HashMap<(String, String), i64> {
    let mut out = HashMap::new();
    for b in batches {
        let (a, c, n) = (strings(b, 0), strings(b, 1), ints(b, 2));
        for i in 0..b.num_rows() {
            out.insert((a[i].clone(), c[i].clone()), n[i]);
        }
    }
    out
}

/// Exact nearest-rank-interpolated p95 (what `percentile_cont` computes).
fn p95(v: &mut [i64]) -> f64 {
    v.sort_unstable();
    let rank = 0.95 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] as f64 + (v[hi] - v[lo]) as f64 * (rank - lo as f64)
}

async fn sql(store: &Store, q: &str) -> Vec<RecordBatch> {
    store
        .sql(&TenantId::default(), q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .batches
}

/// (service, latency bucket) -> requests, from `service_minutes`.
const BY_BUCKET: &str = "SELECT service_name, duration_ns, CAST(sum(spans) AS BIGINT) \
     FROM service_minutes WHERE minute >= now() - INTERVAL '2 hours' GROUP BY 1, 2";

/// The same from every stored span, bucketed in SQL by `bucket_sql`.
fn by_bucket_from_spans() -> String {
    format!(
        "SELECT service_name, {}, CAST(count(*) AS BIGINT) FROM spans \
         WHERE kind IN ('server', 'consumer') OR parent_span_id IS NULL GROUP BY 1, 2",
        ophion_store::rollup::bucket_sql("duration_ns")
    )
}

fn bucket_counts(batches: &[RecordBatch]) -> HashMap<(String, i64), i64> {
    let mut out = HashMap::new();
    for b in batches {
        let (s, d, n) = (strings(b, 0), ints(b, 1), ints(b, 2));
        for i in 0..b.num_rows() {
            out.insert((s[i].clone(), d[i]), n[i]);
        }
    }
    out
}

async fn check(store: &Store, want: &Expected) {
    assert_eq!(ops(&sql(store, OPS).await), want.ops);
    // service_minutes: the requests of every service in the same latency
    // buckets as the raw spans bucketed in SQL.
    let buckets = bucket_counts(&sql(store, BY_BUCKET).await);
    assert_eq!(
        buckets,
        bucket_counts(&sql(store, &by_bucket_from_spans()).await)
    );
    for (service, durations) in &want.entry_durations {
        let n: i64 = buckets
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(n, durations.len() as i64, "{service}");
    }
    let edges = pairs(&sql(store, EDGES).await);
    assert!(!want.edges.is_empty());
    assert_eq!(edges, want.edges);
    // Each edge's latency: the callee's durations, bucketed.
    let edge_p95 = pairs(&sql(store, EDGE_P95).await);
    for (edge, durations) in &want.edge_durations {
        let exact = p95(&mut durations.clone());
        let err = (edge_p95[edge] as f64 - exact).abs() / exact;
        assert!(
            err <= RELATIVE_ERROR + 0.01,
            "{edge:?}: p95 {} vs exact {exact}",
            edge_p95[edge]
        );
    }
    let mut got = HashMap::new();
    for b in sql(store, P95).await {
        let (s, v) = (strings(&b, 0), ints(&b, 1));
        for i in 0..b.num_rows() {
            got.insert(s[i].clone(), v[i] as f64);
        }
    }
    assert_eq!(got.len(), want.entry_durations.len());
    for (service, durations) in &want.entry_durations {
        let exact = p95(&mut durations.clone());
        let err = (got[service] - exact).abs() / exact;
        // The bucket's error plus a little for the weighted t-digest.
        assert!(
            err <= RELATIVE_ERROR + 0.01,
            "{service}: p95 {} vs exact {exact}",
            got[service]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_match_counts_from_the_requests_and_survive_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let reqs = requests(0..6);
    let want = expected(&reqs);
    let mut store = Store::open(StoreConfig::in_dir(dir.path()))
        .await
        .expect("open");
    for (i, r) in reqs.iter().enumerate() {
        store
            .write(&TenantId::default(), batch(r))
            .await
            .expect("write");
        if i == 2 {
            store.flush().await.expect("flush");
        }
    }
    check(&store, &want).await;

    // A crash (the last writes are in the log only), then a clean
    // restart (everything is in Parquet).
    for clean in [false, true] {
        if clean {
            store.close().await.expect("close");
        }
        drop(store);
        store = Store::open(StoreConfig::in_dir(dir.path()))
            .await
            .expect("reopen");
        wait_ready(&store).await;
        check(&store, &want).await;
    }
}

/// Waits for the rebuild after a restart; until then the rollups refuse.
async fn wait_ready(store: &Store) {
    for _ in 0..600 {
        match store.sql(&TenantId::default(), EDGES).await {
            Err(Error::Query(QueryError::NotCovered(_))) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => return,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the rollups were not rebuilt in 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_tables_keep_the_same_rollups() {
    let reqs = requests(10..13);
    let want = expected(&reqs);
    let tables = MemoryTables::default();
    for r in &reqs {
        tables.insert(&TenantId::default(), batch(r));
    }
    let q = |s: &'static str| {
        let tables = tables.clone();
        async move {
            tables
                .query(&TenantId::default(), s, vec![])
                .await
                .expect("query")
                .batches
        }
    };
    assert_eq!(ops(&q(OPS).await), want.ops);
    assert_eq!(pairs(&q(EDGES).await), want.edges);
    // Another tenant sees nothing.
    let other = tables
        .query(&TenantId::new("other").expect("tenant"), OPS, vec![])
        .await
        .expect("query");
    assert_eq!(other.rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_outside_the_window_are_refused_not_partial() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = StoreConfig::in_dir(dir.path());
    c.query.rollup_hours = 1;
    let store = Store::open(c).await.expect("open");
    let t = TenantId::default();
    for q in [
        "SELECT count(*) FROM span_minutes",
        "SELECT count(*) FROM span_minutes WHERE minute >= now() - INTERVAL '3 hours'",
        "SELECT count(*) FROM service_edges WHERE minute > now() - INTERVAL '1 day'",
    ] {
        let r = store.sql(&t, q).await;
        let Err(Error::Query(QueryError::NotCovered(msg))) = r else {
            panic!("{q}: {r:?}");
        };
        assert!(
            msg.contains("last 1 hours") && msg.contains("spans"),
            "{msg}"
        );
    }
    let out = store
        .sql(
            &t,
            "SELECT count(*) FROM span_minutes WHERE minute >= now() - INTERVAL '30 minutes'",
        )
        .await
        .expect("inside the window");
    assert_eq!(out.rows, 1);

    let dir = tempfile::tempdir().expect("tmp");
    let mut c = StoreConfig::in_dir(dir.path());
    c.query.rollup_hours = 0;
    let off = Store::open(c).await.expect("open");
    let r = off
        .sql(
            &t,
            "SELECT count(*) FROM span_minutes WHERE minute >= now() - INTERVAL '1 minute'",
        )
        .await;
    assert!(
        matches!(r, Err(Error::Query(QueryError::NotCovered(_)))),
        "{r:?}"
    );
}
