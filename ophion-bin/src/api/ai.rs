//! `POST /api/v1/ai/analyze` and `GET /api/v1/ai/insights`: the AI engine
//! (`ophion-ai`) over the tenant's own telemetry.
//!
//! Analysis reads the window's spans and logs, plus a baseline of three
//! times the window's length (at least 15 minutes) before it, and returns:
//!
//! - anomalies on each service's RED series (requests, error ratio, p95
//!   latency per minute), from the streaming detector run over baseline and
//!   window;
//! - the window's top log templates;
//! - ranked root-cause candidates (`ophion_ai::rca`);
//! - optimisation tips (`ophion_ai::tips`).
//!
//! Insights are the analysis of the last 15 minutes, flattened into one
//! list.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use axum::{
    Json,
    extract::{Query, State},
};
use ophion_ai::{
    anomaly::{Detector, DetectorConfig},
    patterns::{MinerState, TemplateMiner},
    rca::{self, RcaConfig},
    tips::{self, SpanInfo, TipConfig},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ApiError, ApiState, json as to_json,
    time::{Range, RangeParams},
    traces::ts_text,
};
use crate::auth::Principal;
use ophion_core::TenantId;

/// Each tenant's log-template miner. It is loaded from the metadata
/// database on first use and saved after each analysis, so a template keeps
/// its id across requests and restarts.
#[derive(Debug, Default)]
pub struct Miners(tokio::sync::Mutex<HashMap<TenantId, TemplateMiner>>);

fn miner_key(tenant: &TenantId) -> String {
    format!("ai.log_templates.{tenant}")
}

/// The saved miner of `tenant`, or a new one.
async fn load_miner(s: &ApiState, tenant: &TenantId) -> Result<TemplateMiner, ApiError> {
    use rusqlite::OptionalExtension as _;
    let key = miner_key(tenant);
    let saved: Option<String> = s
        .store
        .metadata()
        .call(move |c| {
            c.query_row("SELECT value FROM settings WHERE key = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()
        })
        .await?;
    Ok(saved
        .and_then(|json: String| serde_json::from_str::<MinerState>(&json).ok())
        .map_or_else(TemplateMiner::default, TemplateMiner::restore))
}

async fn save_miner(
    s: &ApiState,
    tenant: &TenantId,
    miner: &TemplateMiner,
) -> Result<(), ApiError> {
    let key = miner_key(tenant);
    let json = serde_json::to_string(&miner.state()).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("saving log templates: {e}"),
        )
    })?;
    s.store
        .metadata()
        .call(move |c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&key, &json],
            )
        })
        .await?;
    Ok(())
}

/// Runs `f` on the tenant's miner (loading it on first use) and saves the
/// miner when `f` taught it anything.
pub(crate) async fn with_miner<R>(
    s: &ApiState,
    tenant: &TenantId,
    f: impl FnOnce(&mut TemplateMiner) -> R,
) -> Result<R, ApiError> {
    let mut miners = s.miners.0.lock().await;
    let miner = match miners.entry(tenant.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(load_miner(s, tenant).await?),
    };
    let before = miner.messages();
    let out = f(miner);
    if miner.messages() != before {
        save_miner(s, tenant, miner).await?;
    }
    Ok(out)
}

/// Spans read per analysis; more are left out and the answer says so.
const MAX_SPANS: usize = 100_000;
/// Log lines mined per analysis.
const MAX_LOGS: usize = 20_000;
const MINUTE_NS: i64 = 60_000_000_000;

/// The body of `POST /api/v1/ai/analyze`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnalyzeRequest {
    service: Option<String>,
    trace_id: Option<String>,
    start: String,
    end: String,
}

fn text(row: &Map<String, Value>, key: &str) -> Option<String> {
    row.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn int(row: &Map<String, Value>, key: &str) -> i64 {
    row.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn span_info(row: &Map<String, Value>) -> SpanInfo {
    let size = |k: &str| {
        row.get(k)
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
    };
    SpanInfo {
        trace_id: text(row, "trace_id").unwrap_or_default(),
        span_id: text(row, "span_id").unwrap_or_default(),
        parent_id: text(row, "parent_span_id"),
        service: text(row, "service_name").unwrap_or_default(),
        name: text(row, "name").unwrap_or_default(),
        kind: text(row, "kind").unwrap_or_default(),
        start_ns: int(row, "start_ns"),
        duration_ns: int(row, "duration_ns"),
        version: text(row, "service_version"),
        error: text(row, "status_code").as_deref() == Some("error"),
        db_system: text(row, "db_system"),
        db_statement: text(row, "db_statement"),
        request_bytes: size("request_bytes"),
        response_bytes: size("response_bytes"),
    }
}

struct Analysis {
    range: Range,
    truncated: bool,
    anomalies: Vec<Value>,
    patterns: Vec<Value>,
    root_causes: Vec<rca::Candidate>,
    tips: Vec<tips::Tip>,
}

/// One minute of a service's entry spans: requests, errors, durations.
type Minute = (u64, u64, Vec<i64>);

/// Per-minute RED series of each service's entry spans, scored with the
/// streaming detector; the flagged minutes inside `range`.
fn red_anomalies(spans: &[SpanInfo], range: &Range, service: Option<&str>) -> Vec<Value> {
    let mut series: BTreeMap<&str, BTreeMap<i64, Minute>> = BTreeMap::new();
    for s in spans {
        let entry = s.kind == "server" || s.kind == "consumer" || s.parent_id.is_none();
        if !entry || service.is_some_and(|want| want != s.service) {
            continue;
        }
        let e = series
            .entry(&s.service)
            .or_default()
            .entry(s.start_ns.div_euclid(MINUTE_NS))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(s.error);
        e.2.push(s.duration_ns);
    }
    let mut out = Vec::new();
    for (svc, minutes) in series {
        let (Some(&first), Some(&last)) = (minutes.keys().next(), minutes.keys().last()) else {
            continue;
        };
        // Short series: settle after a third of the baseline.
        let cfg = DetectorConfig {
            warmup: (((range.from / MINUTE_NS) - first).max(3) / 3) as usize,
            hold: 5,
            hold_fraction: 0.0,
            ..DetectorConfig::default()
        };
        let mut detectors = crate::ai_watch::METRICS.map(|m| (m, Detector::new(cfg.clone())));
        for m in first..=last {
            let (n, errors, mut d) = minutes.get(&m).cloned().unwrap_or_default();
            d.sort_unstable();
            let p95_ns = d
                .get(((d.len() as f64 - 1.0) * 0.95).round().max(0.0) as usize)
                .map_or(f64::NAN, |v| *v as f64);
            let values = crate::ai_watch::red_values(n as f64, errors as f64, p95_ns);
            for ((metric, det), v) in detectors.iter_mut().zip(values) {
                let p = det.update(m * 60, v);
                let at = m * MINUTE_NS;
                if p.anomalous && at >= range.from && at < range.to {
                    out.push(json!({
                        "service": svc,
                        "metric": metric,
                        "time": ts_text(at),
                        "value": v,
                        "expected": [p.expected_low, p.expected_high],
                        "score": p.score,
                    }));
                }
            }
        }
    }
    out
}

async fn analyze_range(
    s: &ApiState,
    who: &Principal,
    range: Range,
    service: Option<&str>,
    trace_id: Option<&str>,
) -> Result<Analysis, ApiError> {
    let window = range.to - range.from;
    let baseline = Range {
        from: range.from - (3 * window).max(15 * MINUTE_NS),
        to: range.to,
    };
    let mut p = baseline.filter("start_time");
    if let Some(id) = trace_id {
        let id = super::hex_id(id, 16, "trace id")?;
        p.when(format!("trace_id = '{id}'"));
    }
    let sql = format!(
        "SELECT trace_id, span_id, parent_span_id, service_name, name, kind, \
         CAST(start_time AS BIGINT) AS start_ns, duration_ns, status_code, \
         service_version, db_system, \
         coalesce(attributes['db.query.text'], attributes['db.statement']) AS db_statement, \
         coalesce(attributes['http.request.body.size'], attributes['http.request_content_length']) AS request_bytes, \
         coalesce(attributes['http.response.body.size'], attributes['http.response_content_length']) AS response_bytes \
         FROM spans WHERE {} ORDER BY start_time LIMIT {}",
        p.conditions(),
        MAX_SPANS + 1
    );
    let out = s.sql(&who.tenant, &sql, &p).await?;
    let mut spans: Vec<SpanInfo> = to_json::objects(&out.batches)
        .iter()
        .map(span_info)
        .collect();
    let truncated = spans.len() > MAX_SPANS;
    spans.truncate(MAX_SPANS);

    let anomalies = red_anomalies(&spans, &range, service);
    let root_causes = rca::rank(&spans, range.from, range.to, &RcaConfig::default());
    let in_window: Vec<SpanInfo> = spans
        .into_iter()
        .filter(|s| s.start_ns >= range.from && service.is_none_or(|want| want == s.service))
        .collect();
    let tip_cfg = TipConfig::default();
    let mut tips = tips::span_tips(&in_window, &tip_cfg);

    // Log templates of the window.
    let mut lp = range.filter("timestamp");
    if let Some(svc) = service {
        lp.filter(
            "service_name = $service",
            "service",
            datafusion::common::ScalarValue::Utf8(Some(svc.to_owned())),
        );
    }
    let logs = s
        .sql(
            &who.tenant,
            &format!(
                "SELECT body FROM logs WHERE {} LIMIT {MAX_LOGS}",
                lp.conditions()
            ),
            &lp,
        )
        .await?;
    let bodies: Vec<String> = to_json::objects(&logs.batches)
        .into_iter()
        .filter_map(|row| row.get("body").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let templates = with_miner(s, &who.tenant, |miner| {
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for body in &bodies {
            *counts.entry(miner.add(body)).or_default() += 1;
        }
        let mut top: Vec<(u32, u64)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.iter()
            .map(|(id, n)| (u64::from(*id), miner.template(*id), *n))
            .collect::<Vec<(u64, String, u64)>>()
    })
    .await?;
    tips.extend(tips::log_tips(&templates, &tip_cfg));
    let patterns = templates
        .iter()
        .take(20)
        .map(|(id, t, n)| json!({"template_id": id, "template": t, "count": n}))
        .collect();
    Ok(Analysis {
        range,
        truncated,
        anomalies,
        patterns,
        root_causes,
        tips,
    })
}

pub(super) async fn analyze(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Json(req): Json<AnalyzeRequest>,
) -> Result<Json<Value>, ApiError> {
    let range = RangeParams {
        from: Some(req.start),
        to: Some(req.end),
    }
    .resolve()?;
    let a = analyze_range(
        &s,
        &who,
        range,
        req.service.as_deref(),
        req.trace_id.as_deref(),
    )
    .await?;
    Ok(Json(json!({
        "from": ts_text(a.range.from),
        "to": ts_text(a.range.to),
        "truncated": a.truncated,
        "anomalies": a.anomalies,
        "patterns": a.patterns,
        "root_causes": a.root_causes,
        "tips": a.tips,
    })))
}

/// `?service=` for insights.
#[derive(Debug, Default, Deserialize)]
pub(super) struct InsightParams {
    service: Option<String>,
}

pub(super) async fn insights(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<InsightParams>,
) -> Result<Json<Value>, ApiError> {
    let range = RangeParams {
        from: Some("now-15m".into()),
        to: Some("now".into()),
    }
    .resolve()?;
    let a = analyze_range(&s, &who, range, q.service.as_deref(), None).await?;
    let (from, to) = (ts_text(a.range.from), ts_text(a.range.to));
    let mut out = Vec::new();
    // Root causes only when something moved clearly.
    for c in a.root_causes.iter().filter(|c| c.score >= 0.75).take(3) {
        out.push(json!({
            "kind": "root_cause",
            "severity": if c.score >= 0.9 { "critical" } else { "warning" },
            "service": c.service,
            "title": format!("{} {:?} at {}", c.service, c.kind, c.operation).to_lowercase(),
            "detail": c.evidence.first(),
            "evidence": c.evidence,
            "from": from, "to": to,
        }));
    }
    // What the continuous watch found in the window, per operation.
    out.extend(s.ai_watch.insights(&who.tenant).into_iter().filter(|i| {
        q.service.as_deref().is_none_or(|want| i["service"] == want)
            && i["from"].as_str() >= from.as_str()
    }));
    for an in &a.anomalies {
        out.push(json!({
            "kind": "anomaly",
            "severity": "warning",
            "service": an["service"],
            "title": format!("{} {} anomalous", an["service"].as_str().unwrap_or(""), an["metric"].as_str().unwrap_or("")),
            "detail": format!("{} at {}, expected {}", an["value"], an["time"], an["expected"]),
            "evidence": [an["time"]],
            "from": from, "to": to,
        }));
    }
    for t in &a.tips {
        out.push(json!({
            "kind": "tip",
            "severity": t.severity,
            "service": t.service,
            "title": t.title,
            "detail": t.detail,
            "evidence": t.evidence,
            "from": from, "to": to,
        }));
    }
    Ok(Json(json!({ "insights": out, "from": from, "to": to })))
}
