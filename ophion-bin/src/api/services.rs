//! `GET /api/v1/services`, `GET /api/v1/services/{name}/operations` and
//! `GET /api/v1/service-graph`.
//!
//! A service's requests are its entry spans: kind `server` or `consumer`,
//! or spans without a parent (a root `internal` span is a request too).
//! Rates are per second over the range; latencies are approximate
//! percentiles (t-digest) of the entry spans' durations in nanoseconds.

use crate::auth::Principal;
use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde_json::{Value, json};

use super::{ApiError, ApiState, time::RangeParams};
use crate::read::{Range, json as to_json, text, ts_text};

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

pub(super) async fn list(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<RangeParams>,
) -> Result<Json<Value>, ApiError> {
    let range = q.resolve()?;
    let p = range.filter("start_time");
    let sql = format!(
        "SELECT service_name AS name, {} FROM spans WHERE {} AND {ENTRY} \
         GROUP BY service_name ORDER BY service_name",
        latency_columns(),
        p.conditions()
    );
    let out = s.reader.sql(&who.tenant, &sql, &p).await?;
    let mut services = to_json::objects(&out.batches);
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
    let edges = to_json::objects(&out.batches);
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
