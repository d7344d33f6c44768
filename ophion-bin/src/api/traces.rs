//! `GET /api/v1/traces/{trace_id}` (every span and the trace's logs) and
//! `GET /api/v1/traces` (search).

use crate::auth::Principal;
use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use ophion_core::semconv::{Level, PROMOTED};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ApiError, ApiState,
    time::{duration_ns, resolve},
};
use crate::read::{Params, attribute_filter, hex_id, json as to_json, text, ts, ts_text};
use ophion_core::Param;

const HOUR_NS: i64 = 3_600_000_000_000;

/// Moves promoted columns (`http_route`, `service_version`, ...) back into
/// the attribute objects under their attribute keys, as text like every
/// other attribute value; `service_name` also stays a field.
pub(super) fn fold_promoted(row: &mut Map<String, Value>) {
    for p in PROMOTED {
        let Some(v) = row.get(p.column).cloned() else {
            continue;
        };
        if p.column != "service_name" {
            row.remove(p.column);
        }
        let v = match v {
            Value::Null => continue,
            Value::String(s) => s,
            other => other.to_string(),
        };
        let target = match p.level {
            Level::Resource => "resource_attributes",
            Level::Span => "attributes",
        };
        if let Some(Value::Object(m)) = row.get_mut(target) {
            m.insert(p.keys[0].to_owned(), Value::String(v));
        }
    }
}

/// `GET /api/v1/traces/{trace_id}` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TraceParams {
    /// `waterfall`: only what a waterfall draws (ids, parent, name, kind,
    /// service, times, status) and no logs: a fifth of the bytes of a big
    /// trace, for the first paint. `logs`: the trace's logs and its
    /// summary, no spans. `full` (default): everything.
    view: Option<String>,
}

/// The columns of the `waterfall` view.
const WATERFALL: &str =
    "span_id, parent_span_id, name, kind, service_name, duration_ns, status_code, status_message";

pub(super) async fn get(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(trace_id): Path<String>,
    Query(q): Query<TraceParams>,
) -> Result<Json<Value>, ApiError> {
    // Validated to 32 hex digits, so it can be written into the SQL.
    let id = hex_id(&trace_id, 16, "trace id")?;
    let (waterfall, logs_only) = match q.view.as_deref() {
        None | Some("full") => (false, false),
        Some("waterfall") => (true, false),
        Some("logs") => (false, true),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_view",
                format!("view `{other}` is not one of full, waterfall, logs"),
            ));
        }
    };
    let columns = match (waterfall, logs_only) {
        (true, _) => WATERFALL,
        (_, true) => "span_id, parent_span_id, service_name, status_code",
        _ => "*",
    };
    // The spans and the trace's logs are read at once: a page waits for
    // the slower of the two, not their sum.
    let spans_sql = format!(
        "SELECT {columns}, CAST(start_time AS BIGINT) AS start_time_unix_nano, \
         CAST(end_time AS BIGINT) AS end_time_unix_nano \
         FROM spans WHERE trace_id = '{id}' ORDER BY start_time"
    );
    // The waterfall view reads no logs (a query that finds none).
    let logs_sql = format!(
        "SELECT *, CAST(timestamp AS BIGINT) AS timestamp_unix_nano \
         FROM logs WHERE trace_id = '{id}'{} ORDER BY timestamp",
        if waterfall { " AND FALSE" } else { "" }
    );
    let none = Params::default();
    let (spans, logs) = tokio::try_join!(
        s.reader.sql(&who.tenant, &spans_sql, &none),
        s.reader.sql(&who.tenant, &logs_sql, &none),
    )?;
    if spans.rows == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "trace_not_found",
            format!(
                "no spans with trace id {id} (yet: spans become visible within a second of being acknowledged)"
            ),
        ));
    }
    let mut spans = to_json::objects(&spans.batches);
    spans.iter_mut().for_each(fold_promoted);
    let mut logs = to_json::objects(&logs.batches);
    logs.iter_mut().for_each(fold_promoted);
    let nanos = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_i64);
    let start = spans
        .iter()
        .filter_map(|m| nanos(m, "start_time_unix_nano"))
        .min();
    let end = spans
        .iter()
        .filter_map(|m| nanos(m, "end_time_unix_nano"))
        .max();
    let mut services: Vec<&str> = spans
        .iter()
        .filter_map(|m| m.get("service_name").and_then(Value::as_str))
        .collect();
    services.sort_unstable();
    services.dedup();
    let ids: std::collections::HashSet<&str> = spans
        .iter()
        .filter_map(|m| m.get("span_id").and_then(Value::as_str))
        .collect();
    // Roots: no parent, or a parent that is not (yet) in the trace.
    let roots: Vec<&str> = spans
        .iter()
        .filter(|m| {
            m.get("parent_span_id")
                .and_then(Value::as_str)
                .is_none_or(|p| !ids.contains(p))
        })
        .filter_map(|m| m.get("span_id").and_then(Value::as_str))
        .collect();
    Ok(Json(json!({
        "trace_id": id,
        "start_time_unix_nano": start,
        "duration_ns": start.zip(end).and_then(|(s, e)| e.checked_sub(s)),
        "span_count": spans.len(),
        "error_count": spans.iter().filter(|m| m.get("status_code").and_then(Value::as_str) == Some("error")).count(),
        "services": services,
        "view": if waterfall { "waterfall" } else if logs_only { "logs" } else { "full" },
        "root_span_ids": roots,
        "spans": if logs_only { Vec::new() } else { spans },
        "logs": logs,
    })))
}

/// Search parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchParams {
    service: Option<String>,
    operation: Option<String>,
    /// `key=value`.
    attribute: Option<String>,
    /// A duration such as `250ms` or `2s`.
    min_duration: Option<String>,
    max_duration: Option<String>,
    /// `error`, `ok` or `unset`.
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn search(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let range = resolve(q.from.as_deref(), q.to.as_deref())?;
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    let mut p = range.filter("start_time");
    if let Some(v) = &q.service {
        p.filter("service_name = $service", "service", text(v));
    }
    if let Some(v) = &q.operation {
        p.filter("name = $operation", "operation", text(v));
    }
    if let Some(a) = &q.attribute {
        let (k, v) = attribute_filter(a)?;
        p.filter(&format!("attributes['{k}'] = $attr"), "attr", text(v));
    }
    let duration = |v: &str| {
        duration_ns(v)
            .ok_or_else(|| ApiError::bad_request(format!("duration `{v}`: use e.g. 250ms, 2s, 1m")))
    };
    if let Some(v) = &q.min_duration {
        p.filter("duration_ns >= $min_d", "min_d", Param::Int64(duration(v)?));
    }
    if let Some(v) = &q.max_duration {
        p.filter("duration_ns <= $max_d", "max_d", Param::Int64(duration(v)?));
    }
    if let Some(v) = &q.status {
        let v = v.to_ascii_lowercase();
        if !["error", "ok", "unset"].contains(&v.as_str()) {
            return Err(ApiError::bad_request("status: use error, ok or unset"));
        }
        p.filter("status_code = $status", "status", text(&v));
    }
    // A trace's other spans may start a little outside the range.
    p.bind("wide_from", ts(range.from - HOUR_NS))
        .bind("wide_to", ts(range.to + HOUR_NS));
    // Traces with a matching span, newest first; then each one's summary
    // over all its spans in the range.
    let sql = format!(
        "WITH hits AS (SELECT trace_id, max(start_time) AS latest FROM spans WHERE {} \
           GROUP BY trace_id ORDER BY latest DESC LIMIT {limit}) \
         SELECT s.trace_id, min(s.start_time) AS start_time, \
           CAST(max(s.end_time) AS BIGINT) - CAST(min(s.start_time) AS BIGINT) AS duration_ns, \
           count(*) AS span_count, \
           sum(CASE WHEN s.status_code = 'error' THEN 1 ELSE 0 END) AS error_count, \
           array_sort(array_distinct(array_agg(s.service_name))) AS services, \
           first_value(s.service_name ORDER BY s.parent_span_id IS NULL DESC, s.start_time) AS root_service, \
           first_value(s.name ORDER BY s.parent_span_id IS NULL DESC, s.start_time) AS root_name, \
           max(h.latest) AS latest \
         FROM spans s JOIN hits h ON s.trace_id = h.trace_id \
         WHERE s.start_time >= $wide_from AND s.start_time < $wide_to \
         GROUP BY s.trace_id ORDER BY latest DESC",
        p.conditions()
    );
    let out = s.reader.sql(&who.tenant, &sql, &p).await?;
    let mut traces = to_json::objects(&out.batches);
    for t in &mut traces {
        t.remove("latest");
    }
    Ok(Json(json!({
        "traces": traces,
        "from": ts_text(range.from),
        "to": ts_text(range.to),
    })))
}
