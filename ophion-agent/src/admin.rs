//! `GET /health` and `GET /metrics` (Prometheus text) of the agent.

use std::{fmt::Write as _, sync::Arc, sync::atomic::Ordering::Relaxed};

use axum::{Router, extract, http::header, response::IntoResponse, routing::get};
use ophion_core::Signal;
use ophion_receiver::OtlpReceiver;

use crate::{forward::SendStats, memory::Rss, queue::DiskQueue};

/// What the endpoints read.
#[derive(Debug)]
pub struct State {
    pub(crate) receiver: OtlpReceiver,
    pub(crate) queue: Arc<DiskQueue>,
    pub(crate) sent: Arc<SendStats>,
    pub(crate) rss: Arc<Rss>,
    pub(crate) sink: Arc<crate::forward::QueueSink>,
}

/// The routes.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(extract::State(s): extract::State<Arc<State>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"status\":\"ok\",\"queued_records\":{},\"queue_bytes\":{}}}",
            s.queue.pending(),
            s.queue.used_bytes()
        ),
    )
}

/// Every metric the agent exports: (name, type, help).
const METRICS: &[(&str, &str, &str)] = &[
    (
        "ophion_agent_received_items_total",
        "counter",
        "Spans, log records and data points accepted from clients, by signal.",
    ),
    (
        "ophion_agent_refused_requests_total",
        "counter",
        "Client requests refused (overload, full queue, bad data), all kinds.",
    ),
    (
        "ophion_agent_queue_records",
        "gauge",
        "Requests queued and not yet delivered.",
    ),
    (
        "ophion_agent_queue_bytes",
        "gauge",
        "Bytes the queue's segments hold on disk.",
    ),
    (
        "ophion_agent_queue_full_refusals_total",
        "counter",
        "Appends refused because the queue was full.",
    ),
    (
        "ophion_agent_queue_corrupt_records_total",
        "counter",
        "Torn or corrupt records cut when the queue was opened.",
    ),
    (
        "ophion_agent_exports_total",
        "counter",
        "Exports the server took.",
    ),
    (
        "ophion_agent_exported_items_total",
        "counter",
        "Items in those exports.",
    ),
    (
        "ophion_agent_export_retries_total",
        "counter",
        "Exports that failed and were retried.",
    ),
    (
        "ophion_agent_rejected_items_total",
        "counter",
        "Items the server refused in a partial success.",
    ),
    (
        "ophion_agent_dropped_records_total",
        "counter",
        "Queued requests dropped because the server can never take them.",
    ),
    (
        "ophion_agent_dropped_items_total",
        "counter",
        "Items in those requests.",
    ),
    (
        "ophion_agent_dropped_host_points_total",
        "counter",
        "Host metric points not queued because the queue was full.",
    ),
    (
        "ophion_agent_resident_memory_bytes",
        "gauge",
        "The agent's resident memory.",
    ),
];

async fn metrics(extract::State(s): extract::State<Arc<State>>) -> impl IntoResponse {
    let r = s.receiver.stats();
    let q = &s.queue.stats;
    let sent = &s.sent;
    let mut out = String::new();
    for (name, kind, help) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let value = |v: u64| format!("{name} {v}\n");
        let text = match *name {
            "ophion_agent_received_items_total" => Signal::ALL
                .iter()
                .map(|sig| format!("{name}{{signal=\"{sig}\"}} {}\n", r.signal(*sig).accepted))
                .collect(),
            "ophion_agent_refused_requests_total" => value(
                r.failed_bad_data
                    + r.failed_too_large
                    + r.failed_unsupported_media
                    + r.failed_overloaded
                    + r.failed_rate_limited
                    + r.failed_unavailable
                    + r.failed_unauthenticated
                    + r.failed_internal,
            ),
            "ophion_agent_queue_records" => value(s.queue.pending()),
            "ophion_agent_queue_bytes" => value(s.queue.used_bytes()),
            "ophion_agent_queue_full_refusals_total" => value(q.refused_full.load(Relaxed)),
            "ophion_agent_queue_corrupt_records_total" => value(q.corrupt.load(Relaxed)),
            "ophion_agent_exports_total" => value(sent.exports.load(Relaxed)),
            "ophion_agent_exported_items_total" => value(sent.items.load(Relaxed)),
            "ophion_agent_export_retries_total" => value(sent.retries.load(Relaxed)),
            "ophion_agent_rejected_items_total" => value(sent.rejected_items.load(Relaxed)),
            "ophion_agent_dropped_records_total" => value(sent.dropped_records.load(Relaxed)),
            "ophion_agent_dropped_items_total" => value(sent.dropped_items.load(Relaxed)),
            "ophion_agent_dropped_host_points_total" => {
                value(s.sink.dropped_host_points.load(Relaxed))
            }
            "ophion_agent_resident_memory_bytes" => value(s.rss.used()),
            _ => String::new(),
        };
        out.push_str(&text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
