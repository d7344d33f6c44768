//! Rate, errors and latency over hours of traffic from the store's
//! per-minute rollups (`span_minutes`, `service_minutes`, `service_edges`; see
//! `ophion_store::rollup`) instead of every span: the whole minutes of a
//! range come from the rollups, the partial minutes at each end from
//! `spans`, so counts are exactly what `spans` alone would give.
//! Percentiles merge latency buckets (within 2 %) and say so in a
//! `percentiles` column.
//!
//! The rollups refuse ranges they do not cover (older than they keep, or
//! while they are rebuilt after a restart) with
//! [`QueryError::NotCovered`]; callers then ask `spans` ([`not_covered`]).

use ophion_core::QueryError;

use super::{ENTRY_SPANS, Params, Range, ReadError, ts};

/// Nanoseconds in a minute.
pub const MINUTE_NS: i64 = 60_000_000_000;

/// What the `percentiles` column says of percentiles from the rollups.
pub const APPROXIMATE: &str = "approximate (per-minute latency buckets, within 2%)";

/// Whether `e` says the rollups do not cover a query.
pub fn not_covered(e: &ReadError) -> bool {
    matches!(e, ReadError::Query(QueryError::NotCovered(_)))
}

/// Binds `range` split at whole minutes: `$from`, `$m0` (the first whole
/// minute), `$m1` (the end of the last), `$to`, `$mf` (the start of the
/// minute holding `$from`) and `$secs`. `None` (nothing bound) when the
/// range holds no whole minute.
pub fn bind(range: Range, p: &mut Params) -> Option<()> {
    let mf = range.from.div_euclid(MINUTE_NS) * MINUTE_NS;
    let m0 = if mf == range.from { mf } else { mf + MINUTE_NS };
    let m1 = range.to.div_euclid(MINUTE_NS) * MINUTE_NS;
    if m0 >= m1 {
        return None;
    }
    p.bind("from", ts(range.from))
        .bind("m0", ts(m0))
        .bind("m1", ts(m1))
        .bind("to", ts(range.to))
        .bind("mf", ts(mf))
        .bind("secs", ophion_core::query::Param::Float64(range.secs()));
    Some(())
}

/// The rows of `span_minutes` (whole minutes) and of `spans` (the partial
/// minutes) that pass `common` (a condition both tables can check) and,
/// with `entry`, are requests: `minute`, `service_name`, `name`,
/// `http_route`, `duration_ns`, and `spans` and `errors` counts.
pub fn rows(common: &str, entry: bool) -> String {
    let cols = "service_name, name, http_route, duration_ns";
    let (er, es) = if entry {
        (" AND entry".to_owned(), format!(" AND {ENTRY_SPANS}"))
    } else {
        (String::new(), String::new())
    };
    let raw = |lo: &str, hi: &str| {
        format!(
            "SELECT date_trunc('minute', start_time) AS minute, {cols}, 1 AS spans, \
             CASE WHEN status_code = 'error' THEN 1 ELSE 0 END AS errors \
             FROM spans WHERE start_time >= {lo} AND start_time < {hi} AND {common}{es}"
        )
    };
    format!(
        "SELECT minute, {cols}, spans, errors FROM span_minutes \
         WHERE minute >= $m0 AND minute < $m1 AND {common}{er} \
         UNION ALL {} UNION ALL {}",
        raw("$from", "$m0"),
        raw("$m1", "$to")
    )
}

/// Requests per service and latency bucket over a range bound by
/// [`bind`]: `service_minutes` for the whole minutes, `spans` bucketed the
/// same way for the partial ones. Columns `service_name`, `duration_ns`
/// (the bucket's value), `spans` and `errors`; a few thousand rows for
/// an hour of a hundred services, however many spans it holds.
pub fn requests_by_bucket() -> String {
    let bucket = ophion_store::rollup::bucket_sql("duration_ns");
    let raw = |lo: &str, hi: &str| {
        format!(
            "SELECT service_name, {bucket} AS duration_ns, 1 AS spans, \
             CASE WHEN status_code = 'error' THEN 1 ELSE 0 END AS errors \
             FROM spans WHERE start_time >= {lo} AND start_time < {hi} AND {ENTRY_SPANS}"
        )
    };
    format!(
        "SELECT service_name, duration_ns, CAST(sum(spans) AS BIGINT) AS spans, \
         CAST(sum(errors) AS BIGINT) AS errors FROM (\
         SELECT service_name, duration_ns, spans, errors FROM service_minutes \
         WHERE minute >= $m0 AND minute < $m1 UNION ALL {} UNION ALL {}) r \
         GROUP BY service_name, duration_ns",
        raw("$from", "$m0"),
        raw("$m1", "$to")
    )
}

/// The `q` quantile of a histogram of `(value, count)` pairs sorted by
/// value: the value at rank `q · (n − 1)`, interpolated between ranks
/// (what `percentile_cont` computes over the values themselves). `None`
/// when it is empty.
pub fn quantile(histogram: &[(i64, i64)], q: f64) -> Option<f64> {
    let n: i64 = histogram.iter().map(|&(_, c)| c.max(0)).sum();
    if n == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let at = |k: i64| {
        let mut seen = 0;
        for &(v, c) in histogram {
            seen += c.max(0);
            if seen > k {
                return v as f64;
            }
        }
        histogram.last().map_or(0.0, |&(v, _)| v as f64)
    };
    let (lo, hi) = (rank.floor() as i64, rank.ceil() as i64);
    Some(at(lo) + (at(hi) - at(lo)) * (rank - lo as f64))
}

/// Rate and errors over [`rows`].
const RATE: &str = "CAST(coalesce(sum(spans), 0) AS BIGINT) AS requests, \
     CAST(coalesce(sum(errors), 0) AS BIGINT) AS errors, \
     CAST(sum(errors) AS DOUBLE) / sum(spans) AS error_ratio, \
     CAST(coalesce(sum(spans), 0) AS DOUBLE) / $secs AS rate_per_sec";

/// A weighted percentile of [`rows`]' latency buckets, in ns. The
/// t-digest keeps up to 1,000 centroids: more than the buckets a range
/// has (about 60 per decade of latency), so it hardly merges them, and
/// the answer stays within the buckets' 2 % whatever order DataFusion's
/// partitions merge in (with the default 100, that order moved a p95 by
/// up to 3 %).
pub fn percentile(q: f64) -> String {
    format!("approx_percentile_cont_with_weight(duration_ns, spans, {q}, 1000)")
}

/// `SELECT {select} <RED columns> FROM <rows> {rest}`: `select` ends with
/// a comma when it is not empty; `rest` groups, orders and limits. With
/// `latency`, p50/p95/p99 in ms and the `percentiles` column.
pub fn red(select: &str, common: &str, entry: bool, latency: bool, rest: &str) -> String {
    let columns = if latency {
        format!(
            "{RATE}, {} / 1e6 AS p50_ms, {} / 1e6 AS p95_ms, {} / 1e6 AS p99_ms, \
             '{APPROXIMATE}' AS percentiles",
            percentile(0.5),
            percentile(0.95),
            percentile(0.99)
        )
    } else {
        RATE.into()
    };
    format!(
        "SELECT {select} {columns} FROM ({}) r {rest}",
        rows(common, entry)
    )
}

/// Calls to (`callers`) or from `$service` over the minutes the range
/// touches, from `service_edges`.
pub fn calls(callers: bool) -> String {
    let (other, me) = if callers {
        ("caller", "callee")
    } else {
        ("callee", "caller")
    };
    format!(
        "SELECT {other} AS service, CAST(sum(calls) AS BIGINT) AS calls FROM service_edges \
         WHERE minute >= $mf AND minute < $to AND {me} = $service \
         GROUP BY {other} ORDER BY calls DESC, service"
    )
}

#[cfg(test)]
mod tests {
    //! The SQL above against plain Rust over the same spans: random
    //! services, kinds, statuses and durations at random nanoseconds, and
    //! ranges that start and end mid-minute.

    use std::sync::Arc;

    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind},
    };
    use ophion_core::testing::SplitMix64 as Rng;
    use ophion_core::{Signal, TelemetryBatch, TenantId};
    use ophion_receiver::{
        Limits,
        convert::{self, TimeWindow},
    };
    use ophion_store::MemoryTables;
    use serde_json::Value;

    use super::*;
    use crate::read::{Reader, json, text};

    /// (service, is a request, error, start, duration)
    type Row = (String, bool, bool, i64, i64);

    fn spans(rng: &mut Rng, t0: i64, n: usize) -> (Vec<Row>, ExportTraceServiceRequest) {
        let mut rows = Vec::new();
        let mut resource_spans = Vec::new();
        for svc in ["web", "api", "db-proxy"] {
            let mut out = Vec::new();
            for _ in 0..n {
                let start = t0 + rng.below(90 * MINUTE_NS as u64) as i64;
                // Log-uniform from 50 µs to 5 s.
                let exp = rng.below(1_000_000) as f64 / 1_000_000.0 * 5.0;
                let dur = (50_000.0 * 10f64.powf(exp)) as i64;
                let kind =
                    [SpanKind::Server, SpanKind::Client, SpanKind::Internal][rng.below(3) as usize];
                let root = rng.below(4) == 0;
                let error = rng.below(10) == 0;
                rows.push((
                    svc.to_owned(),
                    kind == SpanKind::Server || root,
                    error,
                    start,
                    dur,
                ));
                let mut id = [0u8; 8];
                id.copy_from_slice(&rng.bits().to_le_bytes());
                let mut trace = [0u8; 16];
                trace[..8].copy_from_slice(&rng.bits().to_le_bytes());
                trace[8..].copy_from_slice(&rng.bits().to_le_bytes());
                out.push(Span {
                    trace_id: trace.to_vec(),
                    span_id: id.to_vec(),
                    parent_span_id: if root {
                        vec![]
                    } else {
                        rng.bits().to_le_bytes().to_vec()
                    },
                    name: format!("op{}", rng.below(3)),
                    kind: kind as i32,
                    start_time_unix_nano: start as u64,
                    end_time_unix_nano: (start + dur) as u64,
                    status: error.then(|| Status {
                        code: 2,
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(svc.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: out,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        (rows, ExportTraceServiceRequest { resource_spans })
    }

    fn percentile_cont(mut v: Vec<i64>, q: f64) -> f64 {
        v.sort_unstable();
        let rank = q * (v.len() - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        v[lo] as f64 + (v[hi] - v[lo]) as f64 * (rank - lo as f64)
    }

    #[tokio::test]
    async fn rollup_red_matches_spans_on_ranges_that_start_and_end_mid_minute() {
        let mut rng = Rng(7);
        let t0 = 1_800_000_000_000_000_000 + 17_123_456_789;
        let (rows, req) = spans(&mut rng, t0, 60_000);
        let tables = MemoryTables::default();
        let c = convert::traces(&req, &Limits::default(), TimeWindow::ALL);
        tables.insert(
            &TenantId::default(),
            TelemetryBatch::new(Signal::Traces, c.batch.expect("rows")).expect("batch"),
        );
        let reader = Reader::new(Arc::new(tables));
        let mut approx_errors = Vec::new();
        for _ in 0..12 {
            let from = t0 + rng.below(40 * MINUTE_NS as u64) as i64;
            let to = from + MINUTE_NS * 2 + rng.below(48 * MINUTE_NS as u64) as i64;
            let range = Range { from, to };
            let mut p = Params::default();
            bind(range, &mut p).expect("whole minutes");
            p.bind("service", text("api"));
            let sql = red("", "service_name = $service", true, true, "");
            let out = reader
                .sql(&TenantId::default(), &sql, &p)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let got = &json::objects(&out.batches)[0];
            let mine: Vec<&Row> = rows
                .iter()
                .filter(|r| r.0 == "api" && r.1 && r.3 >= from && r.3 < to)
                .collect();
            let errors = mine.iter().filter(|r| r.2).count();
            assert_eq!(got["requests"].as_f64(), Some(mine.len() as f64));
            // Every span, requests or not (what analyze counts).
            let all = format!(
                "SELECT CAST(sum(spans) AS BIGINT) AS n FROM ({}) r",
                super::rows("service_name = $service", false)
            );
            let out = reader
                .sql(&TenantId::default(), &all, &p)
                .await
                .expect(&all);
            let spans = rows
                .iter()
                .filter(|r| r.0 == "api" && r.3 >= from && r.3 < to);
            assert_eq!(
                json::objects(&out.batches)[0]["n"].as_u64(),
                Some(spans.count() as u64)
            );
            assert_eq!(got["errors"].as_f64(), Some(errors as f64));
            let p95 = percentile_cont(mine.iter().map(|r| r.4).collect(), 0.95) / 1e6;
            let approx = got["p95_ms"].as_f64().expect("p95");
            // The copilot uses these percentiles above 10,000 requests
            // only (exact ones below): the stated error holds there.
            if mine.len() > 10_000 {
                approx_errors.push((approx - p95).abs() / p95);
            }
            assert_eq!(got["percentiles"], Value::from(APPROXIMATE));
        }
        assert!(approx_errors.len() >= 3, "too few large ranges drawn");
        // The bucket error (2 %) and the weighted t-digest's own.
        let worst = approx_errors.iter().cloned().fold(0.0, f64::max);
        println!(
            "p95 from buckets vs exact: worst {worst:.4} over {} ranges",
            approx_errors.len()
        );
        assert!(worst <= 0.03, "p95 off by up to {worst}");
    }

    #[tokio::test]
    async fn requests_by_bucket_give_exact_counts_and_close_percentiles() {
        let mut rng = Rng(11);
        let t0 = 1_800_000_000_000_000_000 + 29_876_543_210;
        let (rows, req) = spans(&mut rng, t0, 40_000);
        let tables = MemoryTables::default();
        let c = convert::traces(&req, &Limits::default(), TimeWindow::ALL);
        tables.insert(
            &TenantId::default(),
            TelemetryBatch::new(Signal::Traces, c.batch.expect("rows")).expect("batch"),
        );
        let reader = Reader::new(Arc::new(tables));
        let mut worst: f64 = 0.0;
        for _ in 0..8 {
            let from = t0 + rng.below(30 * MINUTE_NS as u64) as i64;
            let to = from + MINUTE_NS * 2 + rng.below(58 * MINUTE_NS as u64) as i64;
            let mut p = Params::default();
            bind(Range { from, to }, &mut p).expect("whole minutes");
            let out = reader
                .sql(&TenantId::default(), &requests_by_bucket(), &p)
                .await
                .expect("requests by bucket");
            for svc in ["web", "api", "db-proxy"] {
                let mut cells: Vec<(i64, i64, i64)> = json::rows(&out.batches)
                    .iter()
                    .filter(|r| r[0] == svc)
                    .map(|r| {
                        (
                            r[1].as_i64().expect("bucket"),
                            r[2].as_i64().expect("spans"),
                            r[3].as_i64().expect("errors"),
                        )
                    })
                    .collect();
                cells.sort_unstable();
                let mine: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.0 == svc && r.1 && r.3 >= from && r.3 < to)
                    .collect();
                let n: i64 = cells.iter().map(|c| c.1).sum();
                let errors: i64 = cells.iter().map(|c| c.2).sum();
                assert_eq!(n, mine.len() as i64, "{svc} requests");
                assert_eq!(
                    errors,
                    mine.iter().filter(|r| r.2).count() as i64,
                    "{svc} errors"
                );
                let histogram: Vec<(i64, i64)> = cells.iter().map(|c| (c.0, c.1)).collect();
                for q in [0.5, 0.95, 0.99] {
                    let exact = percentile_cont(mine.iter().map(|r| r.4).collect(), q);
                    let got = quantile(&histogram, q).expect("requests");
                    // Bucket error (2 %) plus the gap between neighbours
                    // the interpolation may straddle.
                    let err = (got - exact).abs() / exact;
                    worst = worst.max(err);
                    assert!(err <= 0.025, "{svc} q{q}: {got} vs exact {exact}");
                }
            }
        }
        println!("percentiles from buckets vs exact: worst {worst:.4}");
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[(5, 1)], 0.99), Some(5.0));
        assert_eq!(quantile(&[(10, 1), (20, 1)], 0.5), Some(15.0));
    }
}
