//! `GET /api/v1/services`, `GET /api/v1/services/{name}/operations` and
//! `GET /api/v1/service-graph`.
//!
//! A service's requests are its entry spans: kind `server` or `consumer`,
//! or spans without a parent (a root `internal` span is a request too).
//! Rates are per second over the range; latencies are percentiles of the
//! entry spans' durations in nanoseconds. The services list reads every
//! request (t-digest) up to [`EXACT_UP_TO`] requests in the range, and
//! above it merges the store's per-minute latency buckets
//! (`service_minutes`, within 2 %, counts exact), so it stays fast over
//! tens of millions of spans; its `percentiles` field says which. The
//! service map likewise joins spans with their parents up to
//! [`GRAPH_EXACT_UP_TO`] requests and reads `service_edges` above it.

use crate::auth::Principal;
use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde_json::{Value, json};

use super::{ApiError, ApiState, time::RangeParams};
use crate::read::{Params, Range, json as to_json, rollup, text, ts_text};

use crate::read::ENTRY_SPANS as ENTRY;

fn latency_columns() -> &'static str {
    "count(*) AS requests, \
     sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors, \
     approx_percentile_cont(duration_ns, 0.5) AS p50_ns, \
     approx_percentile_cont(duration_ns, 0.95) AS p95_ns, \
     approx_percentile_cont(duration_ns, 0.99) AS p99_ns"
}

/// Adds `rate` and `error_ratio` to rows with `requests` and `errors`.
fn rates(rows: &mut [serde_json::Map<String, Value>], range: &Range) {
    for r in rows {
        let requests = r.get("requests").and_then(Value::as_f64).unwrap_or(0.0);
        let errors = r.get("errors").and_then(Value::as_f64).unwrap_or(0.0);
        r.insert("rate_per_sec".into(), json!(requests / range.secs()));
        r.insert(
            "error_ratio".into(),
            json!(if requests > 0.0 {
                errors / requests
            } else {
                0.0
            }),
        );
    }
}

/// Up to this many requests in a range, the services list reads every
/// entry span; above it, the per-minute buckets.
pub(super) const EXACT_UP_TO: i64 = 1_000_000;

/// What `percentiles` says of percentiles over every request.
const EXACT: &str = "t-digest over every request";

/// The services of `range` from the rollups, when they cover it and it
/// holds more than [`EXACT_UP_TO`] requests.
async fn from_rollups(
    s: &ApiState,
    who: &Principal,
    range: Range,
) -> Result<Option<Vec<serde_json::Map<String, Value>>>, ApiError> {
    let mut p = Params::default();
    if rollup::bind(range, &mut p).is_none() {
        return Ok(None);
    }
    let out = match s
        .reader
        .sql(&who.tenant, &rollup::requests_by_bucket(), &p)
        .await
    {
        Ok(out) => out,
        Err(ophion_core::QueryError::NotCovered(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // service -> (bucket value, requests, errors)
    let mut by_service: std::collections::BTreeMap<String, Vec<[i64; 3]>> = Default::default();
    for row in to_json::rows(&out.batches) {
        let int = |i: usize| row[i].as_i64().unwrap_or(0);
        if let Some(name) = row[0].as_str() {
            by_service
                .entry(name.to_owned())
                .or_default()
                .push([int(1), int(2), int(3)]);
        }
    }
    let total: i64 = by_service.values().flatten().map(|c| c[1]).sum();
    if total <= EXACT_UP_TO {
        return Ok(None);
    }
    let services = by_service
        .into_iter()
        .map(|(name, cells)| {
            let mut row = summary("requests", cells);
            row.insert("name".into(), json!(name));
            row
        })
        .collect();
    Ok(Some(services))
}

/// Counts and p50/p95/p99 of latency buckets `[value, count, errors]`:
/// `count` (the total under that name), `errors` and `percentiles`.
fn summary(count: &str, mut cells: Vec<[i64; 3]>) -> serde_json::Map<String, Value> {
    cells.sort_unstable();
    let histogram: Vec<(i64, i64)> = cells.iter().map(|c| (c[0], c[1])).collect();
    let q = |q: f64| rollup::quantile(&histogram, q);
    let mut row = serde_json::Map::new();
    row.insert(count.into(), json!(cells.iter().map(|c| c[1]).sum::<i64>()));
    row.insert(
        "errors".into(),
        json!(cells.iter().map(|c| c[2]).sum::<i64>()),
    );
    row.insert("p50_ns".into(), json!(q(0.5)));
    row.insert("p95_ns".into(), json!(q(0.95)));
    row.insert("p99_ns".into(), json!(q(0.99)));
    row.insert("percentiles".into(), json!(rollup::APPROXIMATE));
    row
}

/// Up to this many requests in a range, the service map joins every span
/// with its parent; above it, it reads the calls the store paired as
/// spans arrived (`service_edges`, over the minutes the range touches),
/// which a join over tens of millions of spans cannot do in a query's
/// memory.
pub(super) const GRAPH_EXACT_UP_TO: i64 = 200_000;

/// The map's edges from `service_edges`, when the rollups cover `range`
/// and it holds more than [`GRAPH_EXACT_UP_TO`] requests.
async fn edges_from_rollups(
    s: &ApiState,
    who: &Principal,
    range: Range,
) -> Result<Option<Vec<serde_json::Map<String, Value>>>, ApiError> {
    let mut p = Params::default();
    if rollup::bind(range, &mut p).is_none() {
        return Ok(None);
    }
    let count = "SELECT CAST(coalesce(sum(spans), 0) AS BIGINT) FROM service_minutes \
                 WHERE minute >= $mf AND minute < $to";
    let edges = "SELECT caller, callee, duration_ns, CAST(sum(calls) AS BIGINT), \
                 CAST(sum(errors) AS BIGINT) FROM service_edges \
                 WHERE minute >= $mf AND minute < $to GROUP BY 1, 2, 3";
    let rows = |sql: &'static str| {
        let p = &p;
        async move {
            match s.reader.sql(&who.tenant, sql, p).await {
                Ok(out) => Ok(Some(to_json::rows(&out.batches))),
                Err(ophion_core::QueryError::NotCovered(_)) => Ok(None),
                Err(e) => Err(ApiError::from(e)),
            }
        }
    };
    let Some(n) = rows(count).await? else {
        return Ok(None);
    };
    if n.first().and_then(|r| r[0].as_i64()).unwrap_or(0) <= GRAPH_EXACT_UP_TO {
        return Ok(None);
    }
    let Some(rows) = rows(edges).await? else {
        return Ok(None);
    };
    let mut by_edge: std::collections::BTreeMap<(String, String), Vec<[i64; 3]>> =
        Default::default();
    for row in rows {
        let int = |i: usize| row[i].as_i64().unwrap_or(0);
        if let (Some(a), Some(b)) = (row[0].as_str(), row[1].as_str()) {
            by_edge
                .entry((a.to_owned(), b.to_owned()))
                .or_default()
                .push([int(2), int(3), int(4)]);
        }
    }
    Ok(Some(
        by_edge
            .into_iter()
            .map(|((caller, callee), cells)| {
                let mut row = summary("calls", cells);
                row.insert("caller".into(), json!(caller));
                row.insert("callee".into(), json!(callee));
                row
            })
            .collect(),
    ))
}

pub(super) async fn list(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<RangeParams>,
) -> Result<Json<Value>, ApiError> {
    let range = q.resolve()?;
    let mut services = match from_rollups(&s, &who, range).await? {
        Some(rows) => rows,
        None => {
            let p = range.filter("start_time");
            let sql = format!(
                "SELECT service_name AS name, {}, '{EXACT}' AS percentiles FROM spans \
                 WHERE {} AND {ENTRY} GROUP BY service_name ORDER BY service_name",
                latency_columns(),
                p.conditions()
            );
            let out = s.reader.sql(&who.tenant, &sql, &p).await?;
            to_json::objects(&out.batches)
        }
    };
    rates(&mut services, &range);
    Ok(Json(json!({
        "services": services,
        "from": ts_text(range.from),
        "to": ts_text(range.to),
    })))
}

pub(super) async fn operations(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(name): Path<String>,
    Query(q): Query<RangeParams>,
) -> Result<Json<Value>, ApiError> {
    let range = q.resolve()?;
    let mut p = range.filter("start_time");
    p.filter("service_name = $service", "service", text(&name));
    let sql = format!(
        "SELECT name, kind, {} FROM spans WHERE {} \
         GROUP BY name, kind ORDER BY requests DESC, name",
        latency_columns(),
        p.conditions()
    );
    let out = s.reader.sql(&who.tenant, &sql, &p).await?;
    let mut ops = to_json::objects(&out.batches);
    rates(&mut ops, &range);
    Ok(Json(json!({
        "service": name,
        "operations": ops,
        "from": ts_text(range.from),
        "to": ts_text(range.to),
    })))
}

pub(super) async fn graph(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<RangeParams>,
) -> Result<Json<Value>, ApiError> {
    let range = q.resolve()?;
    let edges = match edges_from_rollups(&s, &who, range).await? {
        Some(edges) => edges,
        None => joined_edges(&s, &who, range).await?,
    };
    let mut nodes: Vec<&str> = edges
        .iter()
        .flat_map(|e| [e.get("caller"), e.get("callee")])
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    Ok(Json(json!({
        "nodes": nodes,
        "edges": edges,
        "from": ts_text(range.from),
        "to": ts_text(range.to),
    })))
}

/// The map's edges by joining every span of `range` with its parent.
async fn joined_edges(
    s: &ApiState,
    who: &Principal,
    range: Range,
) -> Result<Vec<serde_json::Map<String, Value>>, ApiError> {
    let p = range.filter("start_time");
    // An edge is a span whose parent belongs to another service; its
    // latency is the child's duration (the callee's view of the call).
    let sql = format!(
        "WITH s AS (SELECT trace_id, span_id, parent_span_id, service_name, status_code, duration_ns \
                 FROM spans WHERE {}) \
               SELECT p.service_name AS caller, c.service_name AS callee, count(*) AS calls, \
                 sum(CASE WHEN c.status_code = 'error' THEN 1 ELSE 0 END) AS errors, \
                 approx_percentile_cont(c.duration_ns, 0.5) AS p50_ns, \
                 approx_percentile_cont(c.duration_ns, 0.95) AS p95_ns, \
                 approx_percentile_cont(c.duration_ns, 0.99) AS p99_ns \
               FROM s c JOIN s p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
               WHERE c.service_name <> p.service_name \
               GROUP BY p.service_name, c.service_name ORDER BY caller, callee",
        p.conditions()
    );
    let out = s.reader.sql(&who.tenant, &sql, &p).await?;
    Ok(to_json::objects(&out.batches))
}
