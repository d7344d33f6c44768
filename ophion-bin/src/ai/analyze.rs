//! Analysis of a window: the window's spans and logs plus a baseline of
//! three times the window's length (at least 15 minutes) before it give
//!
//! - anomalies on each service's RED series (requests, error ratio, p95
//!   latency per minute; [`super::red`]), from the streaming detector run
//!   over baseline and window;
//! - the window's top log templates;
//! - ranked root-cause candidates (`ophion_ai::rca`);
//! - optimisation tips (`ophion_ai::tips`).
//!
//! Insights are the analysis of the last 15 minutes and what the watch
//! found in them, flattened into one list.

use std::collections::BTreeMap;

use ophion_ai::{
    anomaly::{Detector, DetectorConfig},
    rca::{self, RcaConfig},
    red::{METRICS, values},
    spans::{COLUMNS, SpanInfo},
    tips::{self, TipConfig},
};
use ophion_core::{QueryError, QueryOutput, TenantId};
use serde_json::{Value, json};

use super::{
    AiError, AiService,
    red::{self as red_series, MINUTE_NS, Per},
};
use crate::read::{Params, Range, ReadError, hex_id, json as to_json, rollup, text, ts_text};

/// Spans read per analysis; more are left out and the answer says so.
const MAX_SPANS: usize = 100_000;
/// Log lines mined per analysis.
const MAX_LOGS: usize = 20_000;

/// What an analysis found.
#[derive(Debug)]
pub struct Analysis {
    /// The window analysed.
    pub range: Range,
    /// Whether spans were left out (over 100,000 in window and baseline:
    /// then a sample of whole traces is analysed).
    pub truncated: bool,
    /// Flagged minutes of the services' RED series inside the window.
    pub anomalies: Vec<Value>,
    /// The window's top log templates.
    pub patterns: Vec<Value>,
    /// Root-cause candidates, most likely first.
    pub root_causes: Vec<rca::Candidate>,
    /// Optimisation tips.
    pub tips: Vec<tips::Tip>,
}

impl Analysis {
    /// The services of the root-cause candidates, most likely first.
    pub fn root_cause_services(&self) -> Vec<String> {
        self.root_causes.iter().map(|c| c.service.clone()).collect()
    }

    /// The answer of `POST /api/v1/ai/analyze`.
    pub fn to_json(&self) -> Value {
        json!({
            "from": ts_text(self.range.from),
            "to": ts_text(self.range.to),
            "truncated": self.truncated,
            "anomalies": self.anomalies,
            "patterns": self.patterns,
            "root_causes": self.root_causes,
            "tips": self.tips,
        })
    }
}

/// The baseline and window's RED series per service, scored; the flagged
/// minutes inside `range`.
fn red_anomalies(series: &red_series::RedSeries, range: &Range) -> Vec<Value> {
    let mut out = Vec::new();
    for ((svc, _), minutes) in series {
        let (Some(&first), Some(&last)) = (minutes.keys().next(), minutes.keys().last()) else {
            continue;
        };
        // Short series: settle after a third of the baseline.
        // The watch's setting, warm after a third of the baseline (which
        // may be shorter than the watch's half hour).
        let cfg = DetectorConfig {
            warmup: (((range.from / MINUTE_NS) - first).max(3) / 3) as usize,
            hold: 5,
            ..DetectorConfig::minutes()
        };
        let mut detectors = METRICS.map(|m| (m, Detector::new(cfg.clone())));
        for m in first..=last {
            let counts = minutes.get(&m).copied().unwrap_or_default();
            for ((metric, det), v) in detectors.iter_mut().zip(values(&counts)) {
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

impl AiService {
    /// Analyses `range` of `tenant`'s telemetry, optionally of one service
    /// or one trace (`trace_id` in hex).
    pub async fn analyze(
        &self,
        tenant: &TenantId,
        range: Range,
        service: Option<&str>,
        trace_id: Option<&str>,
    ) -> Result<Analysis, AiError> {
        let window = range
            .to
            .checked_sub(range.from)
            .ok_or_else(|| ReadError::BadRequest("the range is too long".into()))?;
        let baseline = Range {
            from: window
                .checked_mul(3)
                .map(|w| w.max(15 * MINUTE_NS))
                .and_then(|w| range.from.checked_sub(w))
                .ok_or_else(|| ReadError::BadRequest("the range is too long".into()))?,
            to: range.to,
        };
        let mut p = baseline.filter("start_time");
        if let Some(id) = trace_id {
            let id = hex_id(id, 16, "trace id")?;
            p.when(format!("trace_id = '{id}'"));
        }
        // Over MAX_SPANS, a sample of whole traces (by trace id, which is
        // random) keeps both windows and every trace complete; cutting by
        // time would drop the incident.
        let total = self
            .span_count(tenant, baseline, &p, trace_id.is_none())
            .await?;
        let sampled = total > MAX_SPANS;
        if sampled {
            let keep = (256 * MAX_SPANS / total).clamp(1, 255);
            // A trace is kept when its first byte is below `keep`: files
            // are sorted by trace id within each status code, so only the
            // first pages of each status's run are read.
            p.when(format!("trace_id < '{keep:02x}{}'", "0".repeat(30)));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM spans WHERE {} LIMIT {}",
            p.conditions(),
            MAX_SPANS + 1
        );
        // Log templates of the window.
        let mut lp = range.filter("timestamp");
        if let Some(svc) = service {
            lp.filter("service_name = $service", "service", text(svc));
        }
        let log_sql = format!(
            "SELECT body FROM logs WHERE {} LIMIT {MAX_LOGS}",
            lp.conditions()
        );
        // Three independent reads, together.
        let (out, series, logs) = futures::try_join!(
            async {
                self.reader
                    .sql(tenant, &sql, &p)
                    .await
                    .map_err(ReadError::from)
            },
            red_series::series(&self.reader, tenant, baseline, Per::Service, service),
            async {
                self.reader
                    .sql(tenant, &log_sql, &lp)
                    .await
                    .map_err(ReadError::from)
            },
        )?;
        let mut spans = SpanInfo::from_batches(&out.batches)
            .map_err(|e| ReadError::Query(QueryError::Internal(e.to_string())))?;
        // Sorted here, not by SQL: a top-k sort keeps every input batch
        // holding a kept row, which for a sample spread over millions of
        // wide rows is most of them (it ran out of memory over 10M spans).
        spans.sort_by_key(|s| s.start_ns);
        let truncated = sampled || spans.len() > MAX_SPANS;
        spans.truncate(MAX_SPANS);

        let anomalies = red_anomalies(&series, &range);
        let root_causes = rca::rank(&spans, range.from, range.to, &RcaConfig::default());
        let in_window: Vec<SpanInfo> = spans
            .into_iter()
            .filter(|s| s.start_ns >= range.from && service.is_none_or(|want| want == s.service))
            .collect();
        let tip_cfg = TipConfig::default();
        let mut tips = tips::span_tips(&in_window, &tip_cfg);

        let bodies: Vec<String> = to_json::objects(&logs.batches)
            .into_iter()
            .filter_map(|row| row.get("body").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let templates = self
            .miners
            .with(tenant, |miner| {
                let ids: Vec<u32> = bodies.iter().map(|body| miner.add(body)).collect();
                // Counted under the templates they ended in: some merge
                // once a position proves variable.
                let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
                for id in ids {
                    *counts.entry(miner.resolve(id)).or_default() += 1;
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

    /// Spans passing `p` (a range, perhaps a trace). For a whole range
    /// (`whole`), its whole minutes are counted from the rollups and the
    /// partial minutes at each end from `spans`: exact, and milliseconds
    /// instead of a scan; `spans` alone when the rollups do not cover it.
    async fn span_count(
        &self,
        tenant: &TenantId,
        range: Range,
        p: &Params,
        whole: bool,
    ) -> Result<usize, ReadError> {
        let n = |out: &QueryOutput| {
            to_json::objects(&out.batches)
                .first()
                .and_then(|r| r.get("n").and_then(Value::as_u64))
                .unwrap_or(0) as usize
        };
        let mut rp = Params::default();
        if whole && rollup::bind(range, &mut rp).is_some() {
            let sql = format!(
                "SELECT CAST(coalesce(sum(spans), 0) AS BIGINT) AS n FROM ({}) r",
                rollup::rows("TRUE", false)
            );
            match self
                .reader
                .sql(tenant, &sql, &rp)
                .await
                .map_err(ReadError::from)
            {
                Ok(out) => return Ok(n(&out)),
                Err(e) if rollup::not_covered(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let sql = format!("SELECT count(*) AS n FROM spans WHERE {}", p.conditions());
        let out = self.reader.sql(tenant, &sql, p).await?;
        Ok(n(&out))
    }

    /// Insights for `range` (the API uses the last 15 minutes): clear root
    /// causes, what the watch found, RED anomalies and tips, as one list.
    pub async fn insights(
        &self,
        tenant: &TenantId,
        range: Range,
        service: Option<&str>,
    ) -> Result<Vec<Value>, AiError> {
        let a = self.analyze(tenant, range, service, None).await?;
        let (from, to) = (ts_text(a.range.from), ts_text(a.range.to));
        let from_text = from.as_str().unwrap_or_default().to_owned();
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
        // What the continuous watch found in the window.
        out.extend(self.watch.insights(tenant).into_iter().filter(|i| {
            service.is_none_or(|want| i["service"] == want)
                && i["from"].as_str() >= Some(from_text.as_str())
        }));
        // The window's RED anomalies, shaped as the watch's (the minute,
        // the value and the expected band), so they are drawn the same way.
        for an in &a.anomalies {
            let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
            let (metric, at) = (
                an["metric"].as_str().unwrap_or_default(),
                an["time"].as_str().unwrap_or_default(),
            );
            let (low, high) = (num(&an["expected"][0]), num(&an["expected"][1]));
            out.push(json!({
                "kind": "anomaly",
                "severity": "warning",
                "service": an["service"],
                "metric": metric,
                "title": format!("{} {metric} anomalous", an["service"].as_str().unwrap_or("")),
                "detail": format!("{metric} {:.3} at {at}, expected {low:.3} to {high:.3}", num(&an["value"])),
                "evidence": [at],
                "from": at,
                "to": to,
                "score": an["score"],
                "value": an["value"],
                "expected_low": low,
                "expected_high": high,
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
        Ok(out)
    }
}
