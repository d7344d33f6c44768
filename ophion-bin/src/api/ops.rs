//! Health, readiness, version, status and Prometheus metrics.

use std::{
    fmt::Write as _,
    sync::{Arc, atomic::Ordering::Relaxed},
};

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use ophion_core::{Signal, histogram::BUCKETS};
use serde_json::json;

use super::{ApiError, ApiState};
use crate::{
    auth::{Permission, Principal},
    guard::resident_bytes,
};

/// `GET /healthz`: the process is up.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: accepting work (503 once shutdown has begun).
pub(super) async fn readyz(State(s): State<Arc<ApiState>>) -> Result<&'static str, ApiError> {
    if s.ready.load(Relaxed) {
        Ok("ready\n")
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        ))
    }
}

/// `GET /api/v1/version`.
pub(super) async fn version() -> Json<serde_json::Value> {
    Json(json!({"name": "ophion", "version": env!("CARGO_PKG_VERSION")}))
}

/// `GET /api/v1/status`: what the server holds and how it is doing.
/// Admins of the default tenant (operators) see the whole server:
/// memory, buffers and what the receivers took in from every tenant.
/// Everyone else sees their own tenant's stored files, rows and bytes
/// (`"scope": "tenant"`), nothing of other tenants.
pub(super) async fn status(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Json<serde_json::Value> {
    let server_wide =
        Permission::Operator.allows(who.role, who.tenant == ophion_core::TenantId::default());
    let files: Vec<_> = s
        .store
        .files()
        .into_iter()
        .filter(|f| server_wide || f.tenant == who.tenant)
        .collect();
    let stored = |sig: Signal| {
        let f: Vec<_> = files.iter().filter(|f| f.signal == sig).collect();
        json!({
            "files": f.len(),
            "stored_bytes": f.iter().map(|f| f.bytes).sum::<u64>(),
            "stored_rows": f.iter().map(|f| f.rows).sum::<u64>(),
        })
    };
    let mut v = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": s.started.elapsed().as_secs(),
        "ready": s.ready.load(Relaxed),
        "scope": if server_wide { "server" } else { "tenant" },
        "tenant": who.tenant.as_str(),
        "traces": stored(Signal::Traces),
        "logs": stored(Signal::Logs),
        "metrics": stored(Signal::Metrics),
    });
    if server_wide {
        let st = s.store.stats();
        let r = s.receiver.stats();
        for sig in Signal::ALL {
            let rs = r.signal(sig);
            let x = &mut v[sig.as_str()];
            x["received_items"] = rs.accepted.into();
            x["rejected_items"] = rs.rejected.into();
            x["received_bytes"] = rs.bytes.into();
        }
        v["memory"] = json!({
            "heap_in_use_bytes": s.guard.used(),
            "resident_bytes": resident_bytes(),
            "over_soft_limit": s.guard.over(),
        });
        v["buffer_bytes"] = s.store.buffered_bytes().into();
        v["rows_written"] = st.rows_written.load(Relaxed).into();
    }
    Json(v)
}

/// Counts API answers with error statuses (for `/metrics`).
pub(super) async fn count_errors(
    State(s): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let mut r = next.run(req).await;
    secure(r.headers_mut());
    if r.status().is_server_error() {
        s.server_errors.fetch_add(1, Relaxed);
    } else if r.status().is_client_error() {
        s.client_errors.fetch_add(1, Relaxed);
    }
    r
}

/// Headers on every answer: no MIME sniffing, no framing, no referrer, no
/// caching of answers that hold telemetry, and a content policy that lets
/// an API answer load nothing. No CORS headers: browsers keep other
/// origins out (the dashboard is served from this origin).
fn secure(h: &mut axum::http::HeaderMap) {
    use axum::http::{HeaderValue, header};
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    );
}

/// Prometheus text exposition.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &ophion_core::Histogram) {
        let s = h.snapshot();
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, c) in BUCKETS.iter().zip(s.cumulative) {
            self.sample(&bucket, &[("le", &le.to_string())], c);
        }
        self.sample(&bucket, &[("le", "+Inf")], s.count);
        self.sample(&format!("{name}_sum"), &[], s.sum_secs);
        self.sample(&format!("{name}_count"), &[], s.count);
    }
}

/// `GET /metrics`.
pub(super) async fn prometheus(State(s): State<Arc<ApiState>>) -> Response {
    let mut e = Exposition::default();
    let r = s.receiver.stats();
    let st = s.store.stats();
    let signals = [
        ("traces", r.traces),
        ("logs", r.logs),
        ("metrics", r.metrics),
    ];
    e.family(
        "ophion_ingested_items_total",
        "counter",
        "Spans, log records and metric points accepted.",
    );
    for (name, v) in &signals {
        e.sample(
            "ophion_ingested_items_total",
            &[("signal", name)],
            v.accepted,
        );
    }
    e.family(
        "ophion_ingested_bytes_total",
        "counter",
        "Request bytes received (as sent, before decompression).",
    );
    for (name, v) in &signals {
        e.sample("ophion_ingested_bytes_total", &[("signal", name)], v.bytes);
    }
    e.family(
        "ophion_ingest_requests_total",
        "counter",
        "Export requests received.",
    );
    for (name, v) in &signals {
        e.sample(
            "ophion_ingest_requests_total",
            &[("signal", name)],
            v.requests,
        );
    }
    e.family(
        "ophion_rejected_items_total",
        "counter",
        "Items refused inside otherwise accepted requests (partial success).",
    );
    for (name, v) in &signals {
        e.sample(
            "ophion_rejected_items_total",
            &[("signal", name)],
            v.rejected,
        );
    }
    e.family(
        "ophion_refused_requests_total",
        "counter",
        "Whole export requests refused, by reason.",
    );
    for (reason, v) in [
        ("bad_data", r.failed_bad_data),
        ("too_large", r.failed_too_large),
        ("unsupported_media", r.failed_unsupported_media),
        ("overloaded", r.failed_overloaded),
        ("rate_limited", r.failed_rate_limited),
        ("unavailable", r.failed_unavailable),
        ("unauthenticated", r.failed_unauthenticated),
        ("internal", r.failed_internal),
    ] {
        e.sample("ophion_refused_requests_total", &[("reason", reason)], v);
    }
    e.one(
        "ophion_memory_refusals_total",
        "counter",
        "Writes refused because resident memory was above the soft limit.",
        s.guard.refused(),
    );
    e.one(
        "ophion_resident_memory_bytes",
        "gauge",
        "Resident memory of the server process.",
        resident_bytes(),
    );
    e.one(
        "ophion_heap_in_use_bytes",
        "gauge",
        "Heap bytes in use (what the memory guard compares with its soft limit).",
        s.guard.used(),
    );
    e.one(
        "ophion_buffer_bytes",
        "gauge",
        "Arrow bytes held in memory, waiting for or being written to Parquet.",
        s.store.buffered_bytes(),
    );
    e.one(
        "ophion_store_rows_written_total",
        "counter",
        "Rows made durable by the write-ahead log.",
        st.rows_written.load(Relaxed),
    );
    e.one(
        "ophion_store_writes_refused_total",
        "counter",
        "Writes the store refused as overload (buffer or log queue full).",
        st.writes_refused.load(Relaxed),
    );
    e.one(
        "ophion_wal_failures_total",
        "counter",
        "Writes the write-ahead log could not make durable (disk full, I/O).",
        st.wal_failures.load(Relaxed),
    );
    e.one(
        "ophion_wal_corrupt_tails_total",
        "counter",
        "Write-ahead log segments with a truncated or corrupt tail skipped at start.",
        st.wal_corrupt_tails.load(Relaxed),
    );
    e.one(
        "ophion_wal_replayed_records_total",
        "counter",
        "Write-ahead log records replayed at start.",
        st.wal_replayed_records.load(Relaxed),
    );
    e.histogram(
        "ophion_wal_append_seconds",
        "Time from a write reaching the log to its fsync.",
        &st.wal_append,
    );
    e.histogram(
        "ophion_flush_seconds",
        "Time to write buffered rows out as Parquet and publish them.",
        &st.snapshot_duration,
    );
    e.one(
        "ophion_flush_failures_total",
        "counter",
        "Snapshots to Parquet that failed (retried).",
        st.snapshot_failures.load(Relaxed),
    );
    e.one(
        "ophion_parquet_files_written_total",
        "counter",
        "Parquet files published.",
        st.files_written.load(Relaxed),
    );
    e.one(
        "ophion_parquet_files_compacted_total",
        "counter",
        "Small Parquet files merged away by compaction.",
        st.files_compacted.load(Relaxed),
    );
    e.one(
        "ophion_parquet_files_expired_total",
        "counter",
        "Parquet files removed by retention.",
        st.files_expired.load(Relaxed),
    );
    e.one(
        "ophion_parquet_orphans_deleted_total",
        "counter",
        "Unpublished Parquet files (left by a crash) deleted at start.",
        st.orphans_deleted.load(Relaxed),
    );
    e.one(
        "ophion_text_index_rows_skipped_total",
        "counter",
        "File rows that log text searches skipped by the text index.",
        st.text_index_rows_skipped.load(Relaxed),
    );
    for (name, help, value) in [
        (
            "ophion_peer_failures_total",
            "Queries answered without a cluster node's unflushed rows (node unreachable, slow or refusing).",
            &st.peer_failures,
        ),
        (
            "ophion_distributed_queries_total",
            "Queries split across the cluster's query nodes.",
            &st.distributed_queries,
        ),
        (
            "ophion_distributed_fallbacks_total",
            "Split queries that failed on another node and ran again on this one alone.",
            &st.distributed_fallbacks,
        ),
        (
            "ophion_worker_tasks_total",
            "Parts of other query nodes' scans run on this node.",
            &st.worker_tasks,
        ),
    ] {
        e.one(name, "counter", help, value.load(Relaxed));
    }
    e.one(
        "ophion_parquet_bytes",
        "gauge",
        "Bytes of published Parquet files.",
        s.store.files().iter().map(|f| f.bytes).sum::<u64>(),
    );
    e.histogram(
        "ophion_query_seconds",
        "Time to answer queries (SQL and API endpoints).",
        s.reader.latency(),
    );
    let al = &s.alerts;
    e.one(
        "ophion_alert_evaluations_total",
        "counter",
        "Alert rule evaluations run.",
        al.evaluations.load(Relaxed),
    );
    e.one(
        "ophion_alert_evaluation_failures_total",
        "counter",
        "Alert rule evaluations whose query failed (the rule's health says why).",
        al.failures.load(Relaxed),
    );
    e.one(
        "ophion_alert_evaluations_late_total",
        "counter",
        "Evaluations that started a whole interval or more after they were due: the evaluator fell behind.",
        al.late.load(Relaxed),
    );
    e.histogram(
        "ophion_alert_evaluation_seconds",
        "Time to evaluate one alert rule (query, states, history).",
        &al.eval_seconds,
    );
    e.histogram(
        "ophion_alert_evaluation_delay_seconds",
        "How long after it was due an alert rule's evaluation started.",
        &al.delay_seconds,
    );
    e.family(
        "ophion_api_errors_total",
        "counter",
        "API answers with an error status, by class.",
    );
    e.sample(
        "ophion_api_errors_total",
        &[("class", "4xx")],
        s.client_errors.load(Relaxed),
    );
    e.sample(
        "ophion_api_errors_total",
        &[("class", "5xx")],
        s.server_errors.load(Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        e.0,
    )
        .into_response()
}
