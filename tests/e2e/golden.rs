//! Golden payloads: the project's own OTLP/JSON fixtures
//! (`tests/fixtures/otlp/*.json`) sent as HTTP/JSON, as HTTP/protobuf and
//! over gRPC give identical Arrow batches. The protobuf form is made by an
//! independent decoder (`opentelemetry-proto`'s serde support), so the
//! receiver's own JSON decoder is checked against it. A variant of each
//! fixture using the tolerances of the OTLP/JSON mapping (upper-case hex
//! ids, integers as numbers, snake_case keys, unknown fields) must give the
//! same batch too.

use std::time::Duration;

use arrow_array::RecordBatch;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
    metrics::v1::{ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient},
    trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
};
use ophion_core::Signal;
use ophion_tests::*;
use prost::Message as _;
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/otlp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn to_snake(k: &str) -> String {
    let mut out = String::new();
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The same document written with every liberty the OTLP/JSON mapping allows.
fn quirky(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                let x = match (k.as_str(), x) {
                    ("traceId" | "spanId" | "parentSpanId", Value::String(s)) => {
                        Value::String(s.to_uppercase())
                    }
                    ("intValue" | "asInt" | "count" | "zeroCount", Value::String(s)) => {
                        Value::Number(s.parse::<i64>().expect("integer string").into())
                    }
                    _ => quirky(x),
                };
                // Alternate spellings: time fields in snake_case.
                let key = if k.ends_with("UnixNano") {
                    to_snake(k)
                } else {
                    k.clone()
                };
                out.insert(key, x);
            }
            out.insert(
                "unknownFieldFromTheFuture".into(),
                serde_json::json!({"nested": [1, 2, 3]}),
            );
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(quirky).collect()),
        other => other.clone(),
    }
}

async fn post(h: &Harness, path: &str, content_type: &str, body: Vec<u8>) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", h.http_url()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        200,
        "{path} {content_type}: {}",
        resp.text().await.unwrap_or_default()
    );
}

/// Sends one fixture four ways; returns the four batches after checking
/// they are identical.
async fn round_trip(signal: Signal, file: &str, items: usize) -> RecordBatch {
    let json = fixture(file);
    let doc: Value = serde_json::from_slice(&json).expect("fixture is JSON");
    let quirky_json = serde_json::to_vec(&quirky(&doc)).expect("json");
    let path = format!("/v1/{signal}");
    let wait = Duration::from_secs(10);

    let via_json = Harness::start().await;
    post(&via_json, &path, "application/json", json.clone()).await;
    let via_quirky = Harness::start().await;
    post(&via_quirky, &path, "application/json", quirky_json).await;
    let via_proto = Harness::start().await;
    let via_grpc = Harness::start().await;
    match signal {
        Signal::Traces => {
            let req: ExportTraceServiceRequest =
                serde_json::from_slice(&json).expect("opentelemetry-proto serde");
            post(
                &via_proto,
                &path,
                "application/x-protobuf",
                req.encode_to_vec(),
            )
            .await;
            let mut c = TraceServiceClient::connect(via_grpc.grpc_url())
                .await
                .expect("connect");
            assert_eq!(
                c.export(req)
                    .await
                    .expect("export")
                    .into_inner()
                    .partial_success,
                None
            );
        }
        Signal::Logs => {
            let req: ExportLogsServiceRequest =
                serde_json::from_slice(&json).expect("opentelemetry-proto serde");
            post(
                &via_proto,
                &path,
                "application/x-protobuf",
                req.encode_to_vec(),
            )
            .await;
            let mut c = LogsServiceClient::connect(via_grpc.grpc_url())
                .await
                .expect("connect");
            assert_eq!(
                c.export(req)
                    .await
                    .expect("export")
                    .into_inner()
                    .partial_success,
                None
            );
        }
        Signal::Metrics => {
            let req: ExportMetricsServiceRequest =
                serde_json::from_slice(&json).expect("opentelemetry-proto serde");
            post(
                &via_proto,
                &path,
                "application/x-protobuf",
                req.encode_to_vec(),
            )
            .await;
            let mut c = MetricsServiceClient::connect(via_grpc.grpc_url())
                .await
                .expect("connect");
            assert_eq!(
                c.export(req)
                    .await
                    .expect("export")
                    .into_inner()
                    .partial_success,
                None
            );
        }
    }
    let a = via_json.wait_rows(signal, items, wait).await;
    assert_eq!(a.num_rows(), items);
    for (name, h) in [
        ("quirky JSON", &via_quirky),
        ("HTTP/protobuf", &via_proto),
        ("gRPC", &via_grpc),
    ] {
        let b = h.wait_rows(signal, items, wait).await;
        assert_eq!(a, b, "{signal}: HTTP/JSON and {name} batches differ");
    }
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_traces() {
    let b = round_trip(Signal::Traces, "traces.json", 3).await;
    let root = row_where(&b, "name", "GET /orders/{id}").expect("root");
    assert_eq!(
        hex_at(&b, "trace_id", root).as_deref(),
        Some("5b8efff798038103d269b633813fc60c")
    );
    assert_eq!(
        str_at(&b, "trace_state", root).as_deref(),
        Some("vendor=a1")
    );
    assert_eq!(int_at(&b, "flags", root), Some(257));
    assert_eq!(int_at(&b, "duration_ns", root), Some(250_000_000));
    assert_eq!(str_at(&b, "status_code", root).as_deref(), Some("ok"));
    assert_eq!(str_at(&b, "status_message", root), None);
    assert_eq!(
        str_at(&b, "k8s_pod_name", root).as_deref(),
        Some("golden-api-5f7c9-x2x7q")
    );
    assert_eq!(
        attr(&b, "resource_attributes", root, "cloud.region").as_deref(),
        Some("eu-west-1")
    );
    assert_eq!(
        attr(&b, "scope_attributes", root, "golden.scope.attr").as_deref(),
        Some("scoped")
    );
    assert_eq!(
        attr(&b, "attributes", root, "golden.tags").as_deref(),
        Some(r#"["a",2]"#)
    );
    assert_eq!(
        attr(&b, "attributes", root, "golden.map").as_deref(),
        Some(r#"{"inner":1.5}"#)
    );
    assert_eq!(
        attr(&b, "attributes", root, "golden.raw").as_deref(),
        Some("AAEC")
    );
    assert_eq!(int_at(&b, "http_response_status_code", root), Some(200));
    assert_eq!(int_at(&b, "dropped_attributes_count", root), Some(2));
    assert_eq!(int_at(&b, "dropped_events_count", root), Some(3));
    let db = row_where(&b, "name", "SELECT orders").expect("db span");
    assert_eq!(str_at(&b, "db_system", db).as_deref(), Some("postgresql"));
    assert_eq!(
        str_at(&b, "status_message", db).as_deref(),
        Some("deadlock detected")
    );
    assert_eq!(
        hex_at(&b, "parent_span_id", db).as_deref(),
        Some("eee19b7ec3c1b174")
    );
    let worker = row_where(&b, "name", "orders process").expect("consumer span");
    assert_eq!(str_at(&b, "kind", worker).as_deref(), Some("consumer"));
    assert_eq!(
        str_at(&b, "service_name", worker).as_deref(),
        Some("golden-worker")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_logs() {
    let b = round_trip(Signal::Logs, "logs.json", 3).await;
    let r = row_where(&b, "event_name", "order.failed").expect("error log");
    assert_eq!(
        str_at(&b, "body", r).as_deref(),
        Some("order 42 failed: deadlock detected")
    );
    assert_eq!(
        hex_at(&b, "span_id", r).as_deref(),
        Some("eee19b7ec3c1b175")
    );
    assert_eq!(int_at(&b, "dropped_attributes_count", r), Some(1));
    let r =
        row_where(&b, "body", r#"{"msg":"checkout done","items":[1,3]}"#).expect("structured body");
    assert_eq!(hex_at(&b, "trace_id", r), None);
    let r = row_where(&b, "body", "7").expect("int body");
    assert_eq!(
        int_at(&b, "timestamp", r),
        Some(1_700_000_000_080_000_000),
        "time falls back to observed time"
    );
    assert_eq!(str_at(&b, "host_name", r).as_deref(), Some("node-7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_metrics() {
    let b = round_trip(Signal::Metrics, "metrics.json", 6).await;
    let rows = rows_where(&b, "metric_name", "golden.requests");
    assert_eq!(rows.len(), 2);
    assert_eq!(f64_at(&b, "value", rows[1]), Some(9.0));
    let h = row_where(&b, "metric_name", "golden.latency").expect("histogram");
    assert_eq!(u64_list_at(&b, "bucket_counts", h), Some(vec![1, 2, 3]));
    assert_eq!(
        f64_list_at(&b, "explicit_bounds", h),
        Some(vec![10.0, 100.0])
    );
    assert_eq!(
        str_at(&b, "aggregation_temporality", h).as_deref(),
        Some("delta")
    );
    let ex = struct_list_at(&b, "exemplars", h);
    use arrow_array::{Array as _, cast::AsArray as _};
    assert_eq!(ex.len(), 1);
    assert_eq!(
        ex.column_by_name("value")
            .expect("value")
            .as_primitive::<arrow_array::types::Float64Type>()
            .value(0),
        88.0
    );
    let e = row_where(&b, "metric_name", "golden.size").expect("exp histogram");
    assert_eq!(int_at(&b, "exp_positive_offset", e), Some(3));
    assert_eq!(
        u64_list_at(&b, "exp_negative_bucket_counts", e),
        Some(vec![1])
    );
    assert_eq!(f64_at(&b, "exp_zero_threshold", e), Some(0.0001));
    let s = row_where(&b, "metric_name", "golden.gc.pause").expect("summary");
    let q = struct_list_at(&b, "quantiles", s);
    assert_eq!(q.len(), 2);
    assert_eq!(str_at(&b, "metric_type", s).as_deref(), Some("summary"));
}
