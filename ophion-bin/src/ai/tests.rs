//! The AI service over the read seam: the watch and `analyze` run against
//! [`MemoryTables`] (no store) and against a real [`Store`] on the same
//! telemetry, and must find the same things, here a latency fault in one
//! service of a three-service chain.

use std::sync::Arc;

use opentelemetry_proto::tonic::{
    collector::{logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::{AnyValue, KeyValue, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind},
};
use ophion_core::{Signal, TelemetryBatch, TelemetryQuery, TelemetrySink, TenantId};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow},
};
use ophion_store::{MemoryTables, Store, StoreConfig, metadata::Metadata};
use serde_json::Value;

use super::{AiService, red::MINUTE_NS};
use crate::{
    config::AiConfig,
    read::{Range, Reader},
};

/// Minutes of telemetry, and how many at the end carry the fault.
const MINUTES: i64 = 90;
const FAULT_MINUTES: i64 = 6;
const PER_MINUTE: i64 = 12;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

/// `frontend` -> `cart` -> `pricing`, requests every few seconds from
/// `start_min`; in the last [`FAULT_MINUTES`] `cart` itself is six times
/// slower. One log line per request, another kind during the fault.
fn telemetry(start_min: i64) -> (ExportTraceServiceRequest, ExportLogsServiceRequest) {
    let mut by_service: [(&str, Vec<Span>); 3] =
        [("frontend", vec![]), ("cart", vec![]), ("pricing", vec![])];
    let mut logs = Vec::new();
    for m in 0..MINUTES {
        let faulty = m >= MINUTES - FAULT_MINUTES;
        for i in 0..PER_MINUTE {
            let n = (m * PER_MINUTE + i) as u64;
            let t0 = ((start_min + m) * MINUTE_NS + i * 4_000_000_000) as u64;
            let jitter = (n * 7919 % 13) * 100_000;
            let pricing = 4_000_000 + jitter;
            let cart_own = if faulty { 60_000_000 } else { 10_000_000 } + jitter;
            let cart = cart_own + pricing;
            let frontend = 5_000_000 + cart;
            let trace: Vec<u8> = (0..16)
                .map(|b| (n >> (b % 8 * 8)) as u8 ^ b as u8 ^ 0xa5)
                .collect();
            let ids = [1u8, 2, 3].map(|k| {
                let mut id = (n + 1).to_be_bytes();
                id[0] = k;
                id.to_vec()
            });
            for (j, (_, spans)) in by_service.iter_mut().enumerate() {
                let (start, dur, name) = match j {
                    0 => (t0, frontend, "GET /checkout"),
                    1 => (t0 + 1_000_000, cart, "POST /cart"),
                    _ => (t0 + 1_000_000 + cart_own / 2, pricing, "GET /price"),
                };
                spans.push(Span {
                    trace_id: trace.clone(),
                    span_id: ids[j].clone(),
                    parent_span_id: if j == 0 { vec![] } else { ids[j - 1].clone() },
                    name: name.into(),
                    kind: SpanKind::Server as i32,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + dur,
                    ..Default::default()
                });
            }
            let body = if faulty {
                format!("cart lock wait exceeded after {} ms", cart / 1_000_000)
            } else {
                format!("checkout of order {n} priced in {} ms", pricing / 1_000_000)
            };
            logs.push(LogRecord {
                time_unix_nano: t0,
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body)),
                }),
                ..Default::default()
            });
        }
    }
    let traces = ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("cart"),
            scope_logs: vec![ScopeLogs {
                log_records: logs,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (traces, logs)
}

async fn fill(sink: &dyn TelemetrySink, tenant: &TenantId, start_min: i64) {
    let (traces, logs) = telemetry(start_min);
    let spans = convert::traces(&traces, &Limits::default(), TimeWindow::ALL);
    let logs = convert::logs(&logs, &Limits::default(), TimeWindow::ALL, 0);
    for (signal, batch) in [(Signal::Traces, spans.batch), (Signal::Logs, logs.batch)] {
        let batch = TelemetryBatch::new(signal, batch.expect("rows")).expect("schema");
        sink.write(tenant, batch).await.expect("write");
    }
}

/// The watch's insights after one pass at `now`, and the analysis of the
/// last ten minutes, through `query`.
async fn run(query: Arc<dyn TelemetryQuery>, meta: Metadata, now: i64) -> (Vec<Value>, Value) {
    let ai = AiService::open(Reader::new(query), meta, AiConfig::default())
        .await
        .expect("ai service");
    let tenant = TenantId::default();
    ai.watch_pass(&tenant, now).await;
    let range = Range {
        from: now - 10 * MINUTE_NS,
        to: now,
    };
    let analysis = ai
        .analyze(&tenant, range, None, None)
        .await
        .expect("analysis");
    (ai.watch_insights(&tenant), analysis.to_json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_and_analyze_find_the_same_over_memory_and_over_the_store() {
    let now_min = crate::read::now_ns() / MINUTE_NS;
    // The fault's last minute closes two minutes before `now`.
    let start_min = now_min - MINUTES - 2;
    let now = now_min * MINUTE_NS;
    let tenant = TenantId::default();

    let dir = tempfile::tempdir().expect("tmp");
    let memory = MemoryTables::default();
    fill(&memory, &tenant, start_min).await;
    let meta = Metadata::open(&dir.path().join("memory-meta.db")).expect("metadata");
    let (watch_mem, analysis_mem) = run(Arc::new(memory), meta, now).await;

    let store = Store::open(StoreConfig::in_dir(dir.path().join("store")))
        .await
        .expect("store");
    fill(&store, &tenant, start_min).await;
    store.flush().await.expect("flush");
    let meta = store.metadata().clone();
    let (watch_store, analysis_store) = run(Arc::new(store.clone()), meta, now).await;

    // Something was found, and it is the fault.
    let cart_latency =
        |i: &&Value| i["service"] == "cart" && i["metric"] == "p95_ms" && i["kind"] == "anomaly";
    assert!(
        watch_mem.iter().any(|i| cart_latency(&i)),
        "the watch flags cart's latency: {watch_mem:#?}"
    );
    assert!(
        watch_mem.iter().any(|i| i["kind"] == "log_pattern"
            && i["title"].as_str().is_some_and(|t| t.contains("lock wait"))),
        "the fault's log line is a new pattern: {watch_mem:#?}"
    );
    assert_eq!(
        analysis_mem["root_causes"][0]["service"], "cart",
        "{:#}",
        analysis_mem["root_causes"]
    );
    assert!(
        analysis_mem["anomalies"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["service"] == "cart")),
        "{:#}",
        analysis_mem["anomalies"]
    );
    // And the store answers exactly the same.
    assert_eq!(watch_mem, watch_store);
    assert_eq!(analysis_mem, analysis_store);
    store.close().await.expect("close");
}
