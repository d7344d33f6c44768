//! The continuous watch: every `[ai] interval_secs`, each tenant's
//! minutes closed since the last pass are read from the spans table as RED
//! series per operation and per service (requests, error ratio, p95
//! latency per minute) and fed to one streaming [`Detector`] per series.
//! Flagged minutes become insights, kept in a bounded list that
//! `GET /api/v1/ai/insights` serves.
//!
//! The same minutes' log lines go through the tenant's template miner and
//! a [`PatternWatch`]: new templates and template rate changes become
//! insights too. And each metric named in `[ai] watch_metrics` is read per
//! service and minute, aggregated the way its type calls for (the average
//! of a gauge, the rate of a counter, the p95 of a histogram; see
//! [`crate::read::metrics::series`]), and scored the same way as the RED
//! series. For those named `*.utilization` (a fraction of a capacity), the
//! trend of the last six hours is extrapolated too: reaching `[ai]
//! capacity_limit` within `capacity_horizon_hours` is a `capacity` insight
//! ("disk full in 5 h"), at most once an hour per series.
//!
//! The first pass reads `lookback_minutes` of history, so detectors are
//! warm from the start. State is in memory: after a restart the first pass
//! warms the detectors up again from the stored spans.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use ophion_ai::{
    anomaly::Detector,
    forecast::time_until,
    pattern_watch::{PatternEvent, PatternWatch, WatchConfig},
    red::{METRICS, values},
};
use ophion_core::TenantId;
use serde_json::{Value, json};

use super::{
    AiService,
    confirm::{
        CONFIRM_EXTREME, CONFIRM_MINUTES, CONFIRM_SPREAD, QUIET_MINUTES, RECENT, Watched,
        watch_config,
    },
    red::{self, MINUTE_NS, Per},
};
use crate::read::{Range, metrics, ts_text};
use ophion_core::query::sql_literal as literal;

/// Insights kept.
const MAX_INSIGHTS: usize = 500;

/// (service, operation or metric name, what is measured).
type SeriesKey = (String, String, &'static str);
/// The third part of a watched metric's [`SeriesKey`].
const METRIC: &str = "metric";
/// Detector state and the insights found so far.
#[derive(Debug, Default)]
pub(super) struct WatchState {
    tenants: Mutex<HashMap<TenantId, TenantWatch>>,
    insights: Mutex<VecDeque<(TenantId, Value)>>,
}

#[derive(Debug, Default)]
struct TenantWatch {
    /// First minute (in minutes since the epoch) not yet scored.
    next: Option<i64>,
    detectors: HashMap<SeriesKey, Watched>,
    /// Log templates over time: new ones and rate changes.
    patterns: Option<PatternWatch>,
    /// The recent minutes of each watched `*.utilization` metric, per
    /// (service, metric), for its trend.
    usage: HashMap<(String, String), Usage>,
}

/// Minutes of a utilization metric its trend is fitted to.
const CAPACITY_WINDOW: i64 = 360;
/// Fewest minutes a trend is fitted to.
const CAPACITY_MIN_POINTS: usize = 30;

#[derive(Debug, Default)]
struct Usage {
    minutes: VecDeque<(i64, f64)>,
    /// The minute of the last capacity report (one an hour at most).
    reported: Option<i64>,
}

impl Usage {
    /// Takes in new minutes; the minutes until the trend reaches `limit`
    /// when that is within `horizon` minutes and due to be reported.
    fn observe(
        &mut self,
        points: &[(i64, f64)],
        now_min: i64,
        limit: f64,
        horizon: f64,
    ) -> Option<f64> {
        self.minutes
            .extend(points.iter().copied().filter(|p| p.1.is_finite()));
        while self
            .minutes
            .front()
            .is_some_and(|(m, _)| *m < now_min - CAPACITY_WINDOW)
        {
            self.minutes.pop_front();
        }
        if self.minutes.len() < CAPACITY_MIN_POINTS
            || self.reported.is_some_and(|r| now_min - r < 60)
        {
            return None;
        }
        let trend: Vec<(f64, f64)> = self.minutes.iter().map(|&(m, v)| (m as f64, v)).collect();
        let minutes = time_until(&trend, limit).filter(|m| *m <= horizon)?;
        self.reported = Some(now_min);
        Some(minutes)
    }
}

/// "25 min", "5 h", "3 days".
fn about(minutes: f64) -> String {
    if minutes < 120.0 {
        format!("{minutes:.0} min")
    } else if minutes < 48.0 * 60.0 {
        format!("{:.0} h", minutes / 60.0)
    } else {
        format!("{:.0} days", minutes / 1440.0)
    }
}

/// Log lines read per pass.
const MAX_LOG_LINES: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WatchState {
    /// The tenant's insights, newest first.
    pub(super) fn insights(&self, tenant: &TenantId) -> Vec<Value> {
        lock(&self.insights)
            .iter()
            .rev()
            .filter(|(t, _)| t == tenant)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn push(&self, tenant: &TenantId, insight: Value) {
        let mut q = lock(&self.insights);
        q.push_back((tenant.clone(), insight));
        while q.len() > MAX_INSIGHTS {
            q.pop_front();
        }
    }
}

impl AiService {
    /// One pass for one tenant: scores the closed minutes since the last pass.
    pub async fn watch_pass(&self, tenant: &TenantId, now_ns: i64) {
        let cfg = &self.config;
        // Closed minutes only, with one more of grace for late spans.
        let now_min = now_ns.div_euclid(MINUTE_NS) - 1;
        let from = {
            let tenants = lock(&self.watch.tenants);
            tenants
                .get(tenant)
                .and_then(|t| t.next)
                .unwrap_or(now_min - cfg.lookback_minutes as i64)
        };
        if from >= now_min {
            return;
        }
        let range = Range {
            from: from * MINUTE_NS,
            to: now_min * MINUTE_NS,
        };
        // Per operation, then per service (all its operations together, under
        // the operation name "").
        let mut series = red::RedSeries::new();
        for per in [Per::Operation, Per::Service] {
            match red::series(&self.reader, tenant, range, per, None).await {
                Ok(s) => series.extend(s),
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = ?e, "anomaly watch: query failed; will retry");
                    return;
                }
            }
        }
        // A service with one operation is reported through that operation only.
        let mut operations: HashMap<&str, usize> = HashMap::new();
        for (service, op) in series.keys() {
            if !op.is_empty() {
                *operations.entry(service.as_str()).or_default() += 1;
            }
        }
        let had_logs = self.log_patterns(tenant, from, now_min).await;
        let metrics = self.watched_metrics(tenant, from, now_min).await;
        let mut found = Vec::new();
        let mut capacity = Vec::new();
        {
            let mut tenants = lock(&self.watch.tenants);
            let watch = tenants.entry(tenant.clone()).or_default();
            let mut score = |key: SeriesKey, values: &mut dyn Iterator<Item = (i64, f64)>| {
                if !watch.detectors.contains_key(&key) && watch.detectors.len() >= cfg.max_series {
                    return;
                }
                let w = watch
                    .detectors
                    .entry(key.clone())
                    .or_insert_with(|| Watched {
                        detector: Detector::new(watch_config()),
                        recent: VecDeque::with_capacity(RECENT + 1),
                        quiet_until: i64::MIN,
                    });
                for (m, v) in values {
                    let point = w.detector.update(m * 60, v);
                    if v.is_finite() {
                        w.recent.push_back(v);
                        if w.recent.len() > RECENT {
                            w.recent.pop_front();
                        }
                    }
                    if point.anomalous
                        && m >= w.quiet_until
                        && (w.confirmed(CONFIRM_MINUTES, CONFIRM_SPREAD)
                            || w.confirmed(1, CONFIRM_EXTREME))
                    {
                        found.push((key.clone(), m, v, point));
                        w.quiet_until = m + QUIET_MINUTES;
                    }
                }
            };
            for ((service, op), minutes) in &series {
                for (i, metric) in METRICS.into_iter().enumerate() {
                    let key = (service.clone(), op.clone(), metric);
                    score(
                        key,
                        &mut (from..now_min)
                            .map(|m| (m, values(&minutes.get(&m).copied().unwrap_or_default())[i])),
                    );
                }
            }
            for (service, name, points) in &metrics {
                // A minute without points is a gap, not a zero.
                score(
                    (service.clone(), name.clone(), METRIC),
                    &mut points.iter().copied(),
                );
                let key = (service.clone(), name.clone());
                if !name.ends_with(".utilization")
                    || (!watch.usage.contains_key(&key) && watch.usage.len() >= cfg.max_series)
                {
                    continue;
                }
                let usage = watch.usage.entry(key).or_default();
                let horizon = cfg.capacity_horizon_hours * 60.0;
                if let Some(minutes) = usage.observe(points, now_min, cfg.capacity_limit, horizon) {
                    let last = usage.minutes.back().map_or(f64::NAN, |p| p.1);
                    let at = usage.minutes.back().map_or(now_min, |p| p.0);
                    capacity.push((service.clone(), name.clone(), at, minutes, last));
                }
            }
            // A tenant with no data yet keeps its lookback, so history that
            // arrives after the first pass is still scored.
            if watch.next.is_some() || !series.is_empty() || had_logs || !metrics.is_empty() {
                watch.next = Some(now_min);
            }
        }
        for c in capacity {
            self.report_capacity(tenant, c);
        }
        for ((service, name, measure), m, v, point) in found {
            let whole_service = measure != METRIC && name.is_empty();
            if whole_service && operations.get(service.as_str()).is_none_or(|n| *n < 2) {
                continue;
            }
            let at = ts_text(m * MINUTE_NS);
            let (title, operation, evidence) = if measure == METRIC {
                (
                    format!("{service}: metric {name} anomalous"),
                    Value::Null,
                    format!(
                        "SELECT * FROM metrics WHERE service_name = {} AND metric_name = {}",
                        literal(&service),
                        literal(&name)
                    ),
                )
            } else if whole_service {
                (
                    format!("{service} (all operations): {measure} anomalous"),
                    Value::Null,
                    format!(
                        "SELECT * FROM spans WHERE service_name = {}",
                        literal(&service)
                    ),
                )
            } else {
                (
                    format!("{service} {name}: {measure} anomalous"),
                    Value::from(name.clone()),
                    format!(
                        "SELECT * FROM spans WHERE service_name = {} AND name = {}",
                        literal(&service),
                        literal(&name)
                    ),
                )
            };
            let what = if measure == METRIC { &name } else { measure };
            self.watch.push(
                tenant,
                json!({
                    "kind": "anomaly",
                    "severity": if point.score >= 0.5 { "critical" } else { "warning" },
                    "service": service,
                    "operation": operation,
                    "metric": what,
                    "title": title,
                    "detail": format!(
                        "{what} {v:.3} at {}, expected {:.3} to {:.3}",
                        at.as_str().unwrap_or_default(),
                        point.expected_low,
                        point.expected_high
                    ),
                    "evidence": [evidence],
                    "from": at,
                    "to": ts_text((m + 1) * MINUTE_NS),
                    "score": point.score,
                    "value": v,
                    "expected_low": point.expected_low,
                    "expected_high": point.expected_high,
                }),
            );
        }
    }

    /// Reports a utilization whose trend reaches the configured limit soon.
    fn report_capacity(
        &self,
        tenant: &TenantId,
        (service, name, at, minutes, last): (String, String, i64, f64, f64),
    ) {
        let cfg = &self.config;
        let limit = cfg.capacity_limit * 100.0;
        let title = if minutes <= 0.0 {
            format!(
                "{service}: {name} is at {:.1}%, over {limit:.0}%",
                last * 100.0
            )
        } else {
            format!(
                "{service}: {name} reaches {limit:.0}% in about {}",
                about(minutes)
            )
        };
        let when = (at as f64 + minutes) * MINUTE_NS as f64;
        self.watch.push(
        tenant,
        json!({
            "kind": "capacity",
            "severity": if minutes < 60.0 { "critical" } else { "warning" },
            "service": service,
            "operation": Value::Null,
            "metric": name,
            "title": title,
            "detail": format!(
                "{name} was {:.1}% at {}; the trend of the last {} hours reaches {limit:.0}% at {}",
                last * 100.0,
                ts_text(at * MINUTE_NS).as_str().unwrap_or_default(),
                CAPACITY_WINDOW / 60,
                ts_text(when as i64).as_str().unwrap_or_default(),
            ),
            "evidence": [format!(
                "SELECT timestamp, value FROM metrics WHERE service_name = {} AND metric_name = {} ORDER BY timestamp",
                literal(&service),
                literal(&name)
            )],
            "from": ts_text(at * MINUTE_NS),
            "to": ts_text(when as i64),
            "minutes_left": minutes,
        }),
    );
    }

    /// The minutes `[from, to)` of each metric in `[ai] watch_metrics`, per
    /// service: `(service, metric, [(minute, value)])`.
    async fn watched_metrics(
        &self,
        tenant: &TenantId,
        from: i64,
        to: i64,
    ) -> Vec<(String, String, metrics::Points)> {
        let mut out = Vec::new();
        for name in &self.config.watch_metrics {
            let req = metrics::SeriesRequest {
                name,
                agg: None,
                step: MINUTE_NS,
                // One minute early: a counter's rate in the first minute needs
                // the point before it.
                range: Range {
                    from: (from - 1) * MINUTE_NS,
                    to: to * MINUTE_NS,
                },
                group_by: &["service.name"],
                service: None,
            };
            match metrics::series(&self.reader, tenant, &req).await {
                Ok(found) => out.extend(found.series.into_iter().map(|(group, points)| {
                    let service = group
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let minutes = points
                        .into_iter()
                        .map(|(t, v)| (t.div_euclid(MINUTE_NS), v))
                        .filter(|(m, _)| *m >= from)
                        .collect();
                    (service, name.clone(), minutes)
                })),
                Err(e) => {
                    tracing::warn!(tenant = %tenant, metric = %name, error = ?e, "metric watch: query failed");
                }
            }
        }
        out
    }

    /// Mines the log lines of the minutes `[from, to)` with the tenant's
    /// template miner and reports new templates and rate changes. Returns
    /// whether there were any lines.
    async fn log_patterns(&self, tenant: &TenantId, from: i64, to: i64) -> bool {
        let p = Range {
            from: from * MINUTE_NS,
            to: to * MINUTE_NS,
        }
        .filter("timestamp");
        let sql = format!(
            "SELECT CAST(timestamp AS BIGINT) AS ts, body FROM logs WHERE {} \
         ORDER BY timestamp LIMIT {MAX_LOG_LINES}",
            p.conditions()
        );
        let lines: Vec<(i64, String)> = match self.reader.sql(tenant, &sql, &p).await {
            Ok(out) => crate::read::json::objects(&out.batches)
                .into_iter()
                .filter_map(|r| Some((r.get("ts")?.as_i64()?, r.get("body")?.as_str()?.to_owned())))
                .collect(),
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = ?e, "pattern watch: query failed");
                return false;
            }
        };
        if lines.is_empty() {
            return false;
        }
        let mined = self
            .miners
            .with(tenant, |miner| {
                let mut ids: Vec<(i64, u32)> = lines
                    .iter()
                    .map(|(ts, body)| (ts.div_euclid(1_000_000_000), miner.add(body)))
                    .collect();
                for (_, id) in &mut ids {
                    *id = miner.resolve(*id);
                }
                let names: HashMap<u32, String> = ids
                    .iter()
                    .map(|(_, id)| (*id, miner.template(*id)))
                    .collect();
                (ids, names)
            })
            .await;
        let Ok((ids, names)) = mined else {
            tracing::warn!(tenant = %tenant, "pattern watch: cannot load or save the templates");
            return true;
        };
        let events = {
            let mut tenants = lock(&self.watch.tenants);
            let watch = tenants
                .entry(tenant.clone())
                .or_default()
                .patterns
                .get_or_insert_with(|| PatternWatch::new(WatchConfig::default()));
            for (ts, id) in &ids {
                watch.observe(*ts, *id);
            }
            watch.drain_events()
        };
        for e in events {
            let insight = match e {
                PatternEvent::New { id, at } => json!({
                    "kind": "log_pattern",
                    "severity": "info",
                    "service": "",
                    "title": format!("New log pattern: {}", names.get(&id).map_or("", String::as_str)),
                    "detail": format!("template {id}, first seen then"),
                    "evidence": [id.to_string()],
                    "from": ts_text(at * 1_000_000_000),
                    "to": ts_text(at * 1_000_000_000),
                }),
                PatternEvent::Rate {
                    id,
                    bucket,
                    count,
                    expected,
                    score,
                } => json!({
                    "kind": "log_pattern",
                    "severity": "warning",
                    "service": "",
                    "title": format!("Log pattern rate changed: {}", names.get(&id).map_or("", String::as_str)),
                    "detail": format!(
                        "{count} lines in the minute, expected {:.0} to {:.0}",
                        expected.0, expected.1
                    ),
                    "evidence": [id.to_string()],
                    "from": ts_text(bucket * 1_000_000_000),
                    "to": ts_text((bucket + 60) * 1_000_000_000),
                    "score": score,
                }),
            };
            self.watch.push(tenant, insight);
        }
        true
    }

    /// Runs passes over every tenant that `tenants` lists until `stop`
    /// turns true.
    pub async fn run_watch(
        self: Arc<Self>,
        tenants: TenantList,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        // The first pass comes one interval after start, not at once.
        let period = std::time::Duration::from_secs(self.config.interval_secs.max(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            // Nothing stored yet: no query (each one leaves the process larger).
            if self.reader.is_empty() {
                continue;
            }
            let now = crate::read::now_ns();
            for tenant in tenants().await {
                self.watch_pass(&tenant, now).await;
            }
            // A pass's query frees what it allocated; hand it back to the OS
            // rather than keep it resident until the next one.
            crate::alloc::release_freed();
        }
    }
}

/// Lists the tenants to watch (the server lists its tenants table).
pub type TenantList = Arc<dyn Fn() -> BoxFuture<'static, Vec<TenantId>> + Send + Sync>;
