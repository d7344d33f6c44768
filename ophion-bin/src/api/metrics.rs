//! `GET /api/v1/metrics` (names with type, unit, description) and
//! `GET /api/v1/metrics/query` (one metric as time series, see
//! [`crate::read::metrics`]).

use crate::{
    auth::Principal,
    read::{
        json as to_json,
        metrics::{Agg, SeriesRequest, series},
        ts_text,
    },
};
use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiError, ApiState,
    time::{RangeParams, duration_ns, resolve},
};

pub(super) async fn list(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<RangeParams>,
) -> Result<Json<Value>, ApiError> {
    let range = q.resolve()?;
    let p = range.filter("timestamp");
    let sql = format!(
        "SELECT metric_name AS name, metric_type AS type, max(metric_unit) AS unit, \
         max(metric_description) AS description, count(*) AS points, \
         array_sort(array_distinct(array_agg(service_name))) AS services \
         FROM metrics WHERE {} GROUP BY metric_name, metric_type ORDER BY metric_name",
        p.conditions()
    );
    let out = s.reader.sql(&who.tenant, &sql, &p).await?;
    Ok(Json(json!({
        "metrics": to_json::objects(&out.batches),
        "from": ts_text(range.from),
        "to": ts_text(range.to),
    })))
}

/// Series query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeriesParams {
    name: String,
    /// `avg` (default), `sum`, `min`, `max`, `rate`, `p50`, `p95`, `p99`.
    aggregation: Option<String>,
    /// Step such as `60s` (default: the range in 60 steps).
    step: Option<String>,
    /// Comma-separated attribute keys to group by.
    group_by: Option<String>,
    service: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub(super) async fn query(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<SeriesParams>,
) -> Result<Json<Value>, ApiError> {
    let range = resolve(q.from.as_deref(), q.to.as_deref())?;
    let agg = Agg::parse(q.aggregation.as_deref().unwrap_or("avg"))?;
    let step = match &q.step {
        Some(v) => duration_ns(v)
            .filter(|s| *s > 0)
            .ok_or_else(|| ApiError::bad_request(format!("step `{v}`: use e.g. 30s, 5m")))?,
        None => ((range.to - range.from) / 60).max(1_000_000_000),
    };
    let keys: Vec<&str> = q
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    let req = SeriesRequest {
        name: &q.name,
        agg: Some(agg),
        step,
        range,
        group_by: &keys,
        service: q.service.as_deref(),
    };
    let found = series(&s.reader, &who.tenant, &req).await?;
    let series: Vec<Value> = found
        .series
        .into_iter()
        .map(|(group, points)| {
            let points: Vec<Value> = points
                .into_iter()
                .map(|(t, v)| json!([ts_text(t), v]))
                .collect();
            let group: serde_json::Map<String, Value> = keys
                .iter()
                .zip(group)
                .map(|(k, v)| ((*k).to_owned(), v))
                .collect();
            json!({"group": group, "points": points})
        })
        .collect();
    Ok(Json(json!({
        "metric": q.name,
        "type": found.kind,
        "aggregation": q.aggregation.as_deref().unwrap_or("avg"),
        "step_ns": step,
        "series": series,
        "from": ts_text(range.from),
        "to": ts_text(range.to),
    })))
}
