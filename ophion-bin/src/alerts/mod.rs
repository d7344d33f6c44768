//! Alerting and Smart Alerts: rules evaluated on a schedule through the
//! read seam, alerts grouped into incidents (`ophion_ai::incidents`),
//! notifications Alertmanager's receivers, Slack, PagerDuty, Teams and
//! mail servers accept, silences, maintenance windows and inhibition.
//!
//! ```text
//!  rules ──evaluate (Reader)──► engine::apply ──► alerts, history, incidents (SQLite)
//!                                                         │ every tick
//!  channels, silences, inhibitions ──► engine::dispatch ──► deliveries (outbox)
//!                                                         │
//!                                   deliver (retries, backoff, rate) ──► notify / email
//! ```
//!
//! - [`model`]: what users write and its checks (rules, channels,
//!   silences, inhibition rules, matchers, templates).
//! - [`store`]: the tables; [`engine`]: the state machine and the
//!   dispatcher, each step one transaction; [`notify`] and [`email`]: the
//!   formats and delivery.
//!
//! Restarts: pending and firing alerts, incidents, group schedules and the
//! outbox are in the metadata database; a restarted server goes on where
//! it stopped (a `for` already waited counts, a notification queued is
//! sent once, nothing is sent twice unless a receiver accepted it just as
//! the process died: deliveries are at least once, with a stable id).

mod deliver;
pub mod email;
pub mod engine;
#[cfg(test)]
mod engine_tests;
mod incidents;
mod message;
pub mod model;
pub mod notify;
pub mod store;
pub mod template;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use ophion_ai::incidents::ServiceGraph;

pub use crate::config::AlertsConfig;
use ophion_core::{TenantId, query::Param};
use serde_json::Value;

use crate::read::{Params, Reader, json, now_ns, ts};

/// How soon the node evaluating rules sees rules written on another node
/// sharing the metadata database.
const RULES_REFRESH: Duration = Duration::from_secs(5);
use model::{Labels, RuleSpec, secs};
use store::{AlertStore, Kind};
use template::{TemplateData, render};

/// Most rows a rule's query may return (alerts per rule).
pub const MAX_ROWS: usize = 1_000;
/// A delivery is given up after this many attempts.
pub const MAX_ATTEMPTS: i64 = 12;

/// The alerting service.
#[derive(Debug)]
pub struct Alerts {
    store: AlertStore,
    reader: Reader,
    http: reqwest::Client,
    config: AlertsConfig,
    graphs: Mutex<HashMap<String, (Instant, Arc<ServiceGraph>)>>,
    generation: AtomicU64,
    /// Evaluations that started a whole interval late.
    pub late: AtomicU64,
    /// Evaluations run.
    pub evaluations: AtomicU64,
    /// Evaluations whose query failed.
    pub failures: AtomicU64,
    /// How long evaluations take.
    pub eval_seconds: ophion_core::Histogram,
    /// How long after it was due each evaluation started.
    pub delay_seconds: ophion_core::Histogram,
    in_flight: Mutex<HashSet<i64>>,
    sent: Mutex<HashMap<i64, Vec<Instant>>>,
}

/// Why a rule was refused.
pub type Refusal = String;

impl Alerts {
    /// Migrates the tables.
    pub async fn open(
        metadata: ophion_store::metadata::Metadata,
        reader: Reader,
        config: AlertsConfig,
    ) -> Result<Arc<Self>, ophion_store::Error> {
        Ok(Arc::new(Self {
            store: AlertStore::open(metadata).await?,
            reader,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            config,
            graphs: Mutex::default(),
            generation: AtomicU64::new(1),
            late: AtomicU64::new(0),
            evaluations: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            eval_seconds: ophion_core::Histogram::default(),
            delay_seconds: ophion_core::Histogram::default(),
            in_flight: Mutex::default(),
            sent: Mutex::default(),
        }))
    }

    /// The tables.
    pub fn store(&self) -> &AlertStore {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// The HTTP client notifications go out with (shared: one connection
    /// pool and one set of TLS roots in memory).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Tells the evaluator that rules changed.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks `spec` fully: its fields, and its query, run once over its
    /// range, must be a single read-only query with a numeric value
    /// column.
    pub async fn check(&self, tenant: &TenantId, spec: &RuleSpec) -> Result<(), Refusal> {
        spec.validate()?;
        if spec.kind == "sql" {
            crate::copilot::guard::check(&spec.query(), MAX_ROWS).map_err(|e| e.to_string())?;
            let out = self
                .query(tenant, spec, now_ns())
                .await
                .map_err(|e| e.to_string())?;
            value_column(&out.schema).ok_or_else(|| {
                "the query returns no numeric value column: name one `value`, or return exactly one numeric column beside the label columns".to_owned()
            })?;
        }
        Ok(())
    }

    async fn query(
        &self,
        tenant: &TenantId,
        spec: &RuleSpec,
        now: i64,
    ) -> Result<ophion_core::query::QueryOutput, ophion_core::query::QueryError> {
        let range = secs(&spec.range, "range").unwrap_or(300) as i64 * 1_000_000_000;
        let sql = spec.query();
        let mut p = Params::default();
        for (name, v) in [
            ("from", ts(now - range)),
            ("to", ts(now)),
            (
                "service",
                Param::Text(spec.service.clone().unwrap_or_default()),
            ),
            (
                "metric",
                Param::Text(spec.metric.clone().unwrap_or_default()),
            ),
        ] {
            if sql.contains(&format!("${name}")) {
                p.bind(name, v);
            }
        }
        self.reader.sql(tenant, &sql, &p).await
    }

    /// The service graph of `tenant` over the last hour (cached a minute).
    async fn graph(&self, tenant: &TenantId) -> Arc<ServiceGraph> {
        if let Ok(g) = self.graphs.lock()
            && let Some((at, g)) = g.get(tenant.as_str())
            && at.elapsed() < Duration::from_secs(60)
        {
            return Arc::clone(g);
        }
        let mut p = Params::default();
        p.bind("from", ts(now_ns() - 3_600_000_000_000));
        let sql = "SELECT DISTINCT caller, callee FROM service_edges WHERE minute >= $from";
        let edges = match self.reader.sql(tenant, sql, &p).await {
            Ok(out) => json::rows(&out.batches)
                .into_iter()
                .filter_map(|r| Some((r[0].as_str()?.to_owned(), r[1].as_str()?.to_owned())))
                .collect(),
            Err(_) => Vec::new(),
        };
        let g = Arc::new(ServiceGraph::from_edges(edges));
        if let Ok(mut m) = self.graphs.lock() {
            m.insert(tenant.as_str().to_owned(), (Instant::now(), Arc::clone(&g)));
        }
        g
    }

    /// Samples of one evaluation and the template error, if any.
    async fn samples(
        &self,
        tenant: &TenantId,
        spec: &RuleSpec,
        now: i64,
    ) -> Result<(Vec<engine::Sample>, Option<String>), String> {
        let rows: Vec<(Labels, f64)> = if spec.kind == "anomaly" {
            self.anomaly(tenant, spec, now).await?.into_iter().collect()
        } else {
            let out = self
                .query(tenant, spec, now)
                .await
                .map_err(|e| e.to_string())?;
            let vc =
                value_column(&out.schema).ok_or("the query returns no numeric value column")?;
            let names: Vec<String> = out
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            json::rows(&out.batches)
                .into_iter()
                .filter_map(|r| {
                    let v = r.get(vc)?.as_f64()?;
                    let mut l = Labels::new();
                    for (i, n) in names.iter().enumerate() {
                        if i == vc {
                            continue;
                        }
                        match &r[i] {
                            Value::Null => {}
                            Value::String(s) => {
                                l.insert(n.clone(), s.clone());
                            }
                            other => {
                                l.insert(n.clone(), other.to_string());
                            }
                        }
                    }
                    Some((l, v))
                })
                .collect()
        };
        let rows = if spec.kind == "absence" && rows.is_empty() {
            // count(*) answers a row; no row at all is absence too.
            vec![(Labels::new(), 0.0)]
        } else {
            rows
        };
        let cond = spec.condition();
        let mut template_error = None;
        let out = rows
            .into_iter()
            .filter(|(_, v)| cond.holds(*v))
            .map(|(mut labels, value)| {
                labels.extend(spec.labels.clone());
                if let Some(s) = &spec.service {
                    labels.entry("service".into()).or_insert_with(|| s.clone());
                }
                if let Some(m) = &spec.metric {
                    labels.entry("metric".into()).or_insert_with(|| m.clone());
                }
                labels.insert("alertname".into(), spec.name.clone());
                labels.insert("severity".into(), spec.severity.clone());
                let ext = &self.config.external_url;
                let service = ophion_ai::incidents::service_of(&labels).unwrap_or_default();
                let d = TemplateData {
                    value,
                    labels: &labels,
                    traces: format!("{ext}/traces?service={service}"),
                    logs: format!("{ext}/logs?service={service}"),
                };
                let annotations = spec
                    .annotations
                    .iter()
                    .map(|(k, t)| {
                        let text = render(t, &d).unwrap_or_else(|e| {
                            template_error = Some(format!("annotation `{k}`: {e}"));
                            t.clone()
                        });
                        (k.clone(), text)
                    })
                    .collect();
                engine::Sample {
                    labels,
                    annotations,
                    value,
                }
            })
            .collect();
        Ok((out, template_error))
    }

    /// The anomaly score of the last whole minute of a service's RED series
    /// (three hours of history), by the insights engine's detector.
    async fn anomaly(
        &self,
        tenant: &TenantId,
        spec: &RuleSpec,
        now: i64,
    ) -> Result<Option<(Labels, f64)>, String> {
        const MIN: i64 = 60_000_000_000;
        let to = now.div_euclid(MIN) * MIN;
        let mut p = Params::default();
        p.bind("from", ts(to - 180 * MIN)).bind("to", ts(to)).bind(
            "service",
            Param::Text(spec.service.clone().unwrap_or_default()),
        );
        let mut spans_sql = None;
        let sql = if let Some(metric) = &spec.metric {
            // A metric: the mean of its points per minute.
            p.bind("metric", Param::Text(metric.clone()));
            format!(
                "SELECT date_bin(INTERVAL '1 minute', timestamp) AS minute, avg(value) AS v FROM metrics WHERE metric_name = $metric{} AND timestamp >= $from AND timestamp < $to GROUP BY 1 ORDER BY 1",
                if spec.service.is_some() {
                    " AND service_name = $service"
                } else {
                    ""
                }
            )
        } else {
            let measure = match spec.signal.as_deref() {
                Some("errors") => "CAST(sum(errors) AS DOUBLE) / sum(spans)",
                Some("latency") => "sum(CAST(duration_ns AS DOUBLE) * spans) / sum(spans) / 1e6",
                _ => "CAST(sum(spans) AS DOUBLE)",
            };
            // The same measure from the spans, where the rollups are off
            // (a cluster: each node's would see only its own writes).
            let from_spans = match spec.signal.as_deref() {
                Some("errors") => {
                    "CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE) / count(*)"
                }
                Some("latency") => "avg(CAST(duration_ns AS DOUBLE)) / 1e6",
                _ => "CAST(count(*) AS DOUBLE)",
            };
            spans_sql = Some(format!(
                "SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, {from_spans} AS v FROM spans
                 WHERE service_name = $service AND {} AND start_time >= $from AND start_time < $to GROUP BY 1 ORDER BY 1",
                crate::read::ENTRY_SPANS
            ));
            format!(
                "SELECT minute, {measure} AS v FROM span_minutes WHERE service_name = $service AND entry AND minute >= $from AND minute < $to GROUP BY minute ORDER BY minute"
            )
        };
        let out = match (self.reader.sql(tenant, &sql, &p).await, spans_sql) {
            (Err(ophion_core::QueryError::NotCovered(_)), Some(spans)) => {
                self.reader.sql(tenant, &spans, &p).await
            }
            (answer, _) => answer,
        }
        .map_err(|e| e.to_string())?;
        let points: Vec<(i64, f64)> = json::rows(&out.batches)
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i as i64, r[1].as_f64()?)))
            .collect();
        let scores =
            ophion_ai::anomaly::detect(&points, &ophion_ai::anomaly::DetectorConfig::minutes());
        Ok(scores.last().map(|s| (Labels::new(), s.score)))
    }

    /// Evaluates one rule now and applies the result.
    async fn evaluate(&self, tenant: TenantId, id: i64, spec: RuleSpec) {
        let now = now_ns();
        let started = Instant::now();
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let for_ns = secs(&spec.for_, "for").unwrap_or(0) as i64 * 1_000_000_000;
        let (health, error, samples) = match self.samples(&tenant, &spec, now).await {
            Ok((s, None)) => ("ok", None, Some(s)),
            Ok((s, Some(e))) => ("template_error", Some(e), Some(s)),
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                ("error", Some(e), None)
            }
        };
        if let Some(samples) = samples {
            let graph = self.graph(&tenant).await;
            let cfg = self.config.correlate.clone();
            let t = tenant.as_str().to_owned();
            let r = self
                .store
                .metadata
                .call(move |c| {
                    let tx = c.transaction()?;
                    engine::apply(&tx, &t, id, for_ns, &samples, &graph, &cfg, now)?;
                    tx.commit()
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(rule = id, error = %e, "alerts: could not record an evaluation");
            }
        }
        let _ = self.store.set_health(id, health, error, now).await;
        self.eval_seconds.observe(started.elapsed());
    }

    /// Runs the evaluator, the dispatcher and the deliverer until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let tick = Duration::from_millis(self.config.tick_ms.max(50));
        let mut rules: Vec<(TenantId, i64, RuleSpec, i64)> = Vec::new();
        let mut loaded = 0;
        let mut listed = std::time::Instant::now();
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let generation = self.generation.load(Ordering::Relaxed);
            // Rules written on another node of a cluster reach this one's
            // list within RULES_REFRESH; this node's own at once.
            let stale = self.store.metadata.shared() && listed.elapsed() >= RULES_REFRESH;
            if (generation != loaded || stale)
                && let Ok(all) = self.store.list(Kind::Rule, None).await
            {
                {
                    let next: HashMap<i64, i64> = rules.iter().map(|r| (r.1, r.3)).collect();
                    let now = now_ns();
                    rules = all
                        .into_iter()
                        .filter_map(|s| {
                            let spec: RuleSpec = serde_json::from_value(s.spec).ok()?;
                            let tenant = TenantId::new(&s.tenant).ok()?;
                            let due = next
                                .get(&s.id)
                                .copied()
                                .unwrap_or_else(|| now + offset(s.id, interval_ns(&spec)));
                            Some((tenant, s.id, spec, due))
                        })
                        .collect();
                    loaded = generation;
                    listed = std::time::Instant::now();
                }
            }
            let now = now_ns();
            let mut due = Vec::new();
            for r in rules.iter_mut().filter(|r| r.3 <= now) {
                let every_ns = interval_ns(&r.2);
                let behind = now - r.3;
                self.delay_seconds
                    .observe(Duration::from_nanos(behind.max(0) as u64));
                if behind >= every_ns {
                    self.late.fetch_add(1, Ordering::Relaxed);
                }
                // The next slot in phase; slots already missed are skipped.
                r.3 += every_ns * (behind / every_ns + 1);
                due.push((r.0.clone(), r.1, r.2.clone()));
            }
            let me = &self;
            futures::stream::iter(due)
                .for_each_concurrent(self.config.concurrency.max(1), |(t, id, spec)| async move {
                    me.evaluate(t, id, spec).await;
                })
                .await;
            self.dispatch_all(&rules).await;
            self.deliver();
        }
    }

    async fn dispatch_all(&self, rules: &[(TenantId, i64, RuleSpec, i64)]) {
        let tenants: HashSet<&TenantId> = rules.iter().map(|r| &r.0).collect();
        for t in tenants {
            let graph = self.graph(t).await;
            let cfg = self.config.correlate.clone();
            let ext = self.config.external_url.clone();
            let tid = t.as_str().to_owned();
            let r = self
                .store
                .metadata
                .call(move |c| {
                    let tx = c.transaction()?;
                    let n = engine::dispatch(&tx, &tid, &graph, &cfg, &ext, now_ns())?;
                    tx.commit()?;
                    Ok(n)
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "alerts: dispatch failed");
            }
        }
    }
}

fn interval_ns(spec: &RuleSpec) -> i64 {
    secs(&spec.interval, "interval").unwrap_or(60).max(1) as i64 * 1_000_000_000
}

/// Where in its interval rule `id` is evaluated: spread evenly by a hash
/// of the id, so that many rules with one interval do not all run in the
/// same tick (Prometheus offsets its rule groups the same way).
fn offset(id: i64, every_ns: i64) -> i64 {
    ((id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % every_ns.max(1) as u64) as i64
}

/// The value column of a rule's result: `value` if numeric, else the only
/// numeric column.
pub fn value_column(schema: &arrow_schema::Schema) -> Option<usize> {
    let numeric: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.data_type().is_numeric())
        .map(|(i, _)| i)
        .collect();
    schema
        .fields()
        .iter()
        .position(|f| f.name() == "value" && f.data_type().is_numeric())
        .or(if numeric.len() == 1 {
            Some(numeric[0])
        } else {
            None
        })
}
