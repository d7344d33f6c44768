//! The Rust `opentelemetry-otlp` exporters (gRPC, HTTP/protobuf, HTTP/JSON)
//! send traces, metrics of every instrument kind, and logs; every field sent
//! is found with the same value in the receiver's Arrow batches.

use std::time::Duration;

use arrow_array::Array as _;
use opentelemetry::{
    KeyValue, Value,
    logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity},
    metrics::MeterProvider as _,
    trace::{
        Link, SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceState,
        Tracer as _, TracerProvider as _,
    },
};
use opentelemetry_otlp::{
    LogExporter, MetricExporter, Protocol, SpanExporter, WithExportConfig as _,
};
use opentelemetry_sdk::{
    Resource,
    logs::SdkLoggerProvider,
    metrics::{Aggregation, Instrument, SdkMeterProvider, Stream},
    trace::SdkTracerProvider,
};
use ophion_core::Signal;
use ophion_tests::*;

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProto,
    HttpJson,
}

fn resource(t: Transport) -> Resource {
    Resource::builder()
        .with_service_name("rust-sdk-svc")
        .with_attributes([
            KeyValue::new("service.version", "9.8.7"),
            KeyValue::new("deployment.environment.name", "e2e"),
            KeyValue::new("team", "observability"),
            KeyValue::new("transport", format!("{t:?}")),
        ])
        .build()
}

fn endpoint(h: &Harness, t: Transport, path: &str) -> String {
    match t {
        Transport::Grpc => h.grpc_url(),
        _ => format!("{}{path}", h.http_url()),
    }
}

fn protocol(t: Transport) -> Protocol {
    match t {
        Transport::HttpJson => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    }
}

macro_rules! exporter {
    ($ty:ident, $h:expr, $t:expr, $path:expr) => {
        match $t {
            Transport::Grpc => $ty::builder()
                .with_tonic()
                .with_endpoint(endpoint($h, $t, $path))
                .build(),
            _ => $ty::builder()
                .with_http()
                .with_protocol(protocol($t))
                .with_endpoint(endpoint($h, $t, $path))
                .build(),
        }
        .expect("exporter")
    };
}

async fn send_traces(h: &Harness, t: Transport) -> (String, String) {
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(t))
        .with_batch_exporter(exporter!(SpanExporter, h, t, "/v1/traces"))
        .build();
    let tracer = provider.tracer_with_scope(
        opentelemetry::InstrumentationScope::builder("e2e-tracer")
            .with_version("1.2.3")
            .build(),
    );
    let linked = SpanContext::new(
        opentelemetry::trace::TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("id"),
        opentelemetry::trace::SpanId::from_hex("b7ad6b7169203331").expect("id"),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let mut ids = (String::new(), String::new());
    tracer.in_span("parent-op", |cx| {
        let parent = cx.span();
        ids.0 = parent.span_context().trace_id().to_string();
        ids.1 = parent.span_context().span_id().to_string();
        let mut child = tracer
            .span_builder("GET /items/{id}")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/items/{id}"),
                KeyValue::new("http.response.status_code", 503_i64),
                KeyValue::new("app.ratio", 0.25_f64),
                KeyValue::new("app.cached", true),
                KeyValue::new(
                    "app.tags",
                    Value::Array(opentelemetry::Array::String(vec!["a".into(), "b".into()])),
                ),
            ])
            .with_links(vec![Link::with_context(linked.clone())])
            .start_with_context(&tracer, &cx);
        use opentelemetry::trace::Span as _;
        child.add_event("cache miss", vec![KeyValue::new("cache.key", "items:42")]);
        child.set_status(Status::error("backend unavailable"));
        child.end();
    });
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("join")
        .expect("shutdown");
    ids
}

async fn check_traces(h: &Harness, t: Transport) {
    let (trace_id, parent_id) = send_traces(h, t).await;
    let b = h
        .wait_rows(Signal::Traces, 2, Duration::from_secs(20))
        .await;
    let child = row_where(&b, "name", "GET /items/{id}").expect("child span");
    let parent = row_where(&b, "name", "parent-op").expect("parent span");
    assert_eq!(
        hex_at(&b, "trace_id", child).as_deref(),
        Some(trace_id.as_str()),
        "{t:?}"
    );
    assert_eq!(
        hex_at(&b, "parent_span_id", child).as_deref(),
        Some(parent_id.as_str())
    );
    assert_eq!(
        hex_at(&b, "span_id", parent).as_deref(),
        Some(parent_id.as_str())
    );
    assert_eq!(
        hex_at(&b, "parent_span_id", parent),
        None,
        "root span has no parent"
    );
    assert_eq!(str_at(&b, "kind", child).as_deref(), Some("server"));
    assert_eq!(str_at(&b, "kind", parent).as_deref(), Some("internal"));
    assert_eq!(str_at(&b, "status_code", child).as_deref(), Some("error"));
    assert_eq!(
        str_at(&b, "status_message", child).as_deref(),
        Some("backend unavailable")
    );
    assert_eq!(
        str_at(&b, "service_name", child).as_deref(),
        Some("rust-sdk-svc")
    );
    assert_eq!(
        str_at(&b, "service_version", child).as_deref(),
        Some("9.8.7")
    );
    assert_eq!(
        str_at(&b, "deployment_environment", child).as_deref(),
        Some("e2e")
    );
    assert_eq!(
        attr(&b, "resource_attributes", child, "team").as_deref(),
        Some("observability")
    );
    assert_eq!(
        attr(&b, "resource_attributes", child, "telemetry.sdk.language").as_deref(),
        Some("rust")
    );
    assert_eq!(
        str_at(&b, "scope_name", child).as_deref(),
        Some("e2e-tracer")
    );
    assert_eq!(str_at(&b, "scope_version", child).as_deref(), Some("1.2.3"));
    assert_eq!(
        str_at(&b, "http_request_method", child).as_deref(),
        Some("GET")
    );
    assert_eq!(
        str_at(&b, "http_route", child).as_deref(),
        Some("/items/{id}")
    );
    assert_eq!(int_at(&b, "http_response_status_code", child), Some(503));
    assert_eq!(
        attr(&b, "attributes", child, "app.ratio").as_deref(),
        Some("0.25")
    );
    assert_eq!(
        attr(&b, "attributes", child, "app.cached").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(&b, "attributes", child, "app.tags").as_deref(),
        Some(r#"["a","b"]"#)
    );
    let start = int_at(&b, "start_time", child).expect("start");
    let end = int_at(&b, "end_time", child).expect("end");
    assert!(start > 1_600_000_000_000_000_000 && end >= start);
    assert_eq!(int_at(&b, "duration_ns", child), Some(end - start));
    let events = struct_list_at(&b, "events", child);
    assert_eq!(events.len(), 1);
    use arrow_array::cast::AsArray as _;
    assert_eq!(
        events
            .column_by_name("name")
            .expect("name")
            .as_string::<i32>()
            .value(0),
        "cache miss"
    );
    let ev_attrs = map_entries(
        events.column_by_name("attributes").expect("attrs").as_map(),
        0,
    );
    assert_eq!(
        ev_attrs,
        vec![("cache.key".to_owned(), Some("items:42".to_owned()))]
    );
    let links = struct_list_at(&b, "links", child);
    assert_eq!(links.len(), 1);
    let link_trace: String = links
        .column_by_name("trace_id")
        .expect("tid")
        .as_fixed_size_binary()
        .value(0)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    assert_eq!(link_trace, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(
        int_at(&b, "flags", child).map(|f| f & 0xff),
        Some(1),
        "sampled flag"
    );
}

async fn check_metrics(h: &Harness, t: Transport) {
    let exporter = exporter!(MetricExporter, h, t, "/v1/metrics");
    let provider = SdkMeterProvider::builder()
        .with_resource(resource(t))
        .with_periodic_exporter(exporter)
        .with_view(|i: &Instrument| {
            (i.name() == "exp.latency").then(|| {
                Stream::builder()
                    .with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: 20,
                        record_min_max: true,
                    })
                    .build()
                    .expect("stream")
            })
        })
        .build();
    let meter = provider.meter("e2e-meter");
    let attrs = [KeyValue::new("route", "/a")];
    meter
        .u64_counter("requests")
        .with_unit("{request}")
        .with_description("served")
        .build()
        .add(7, &attrs);
    meter.f64_counter("bytes.f").build().add(2.5, &attrs);
    meter
        .i64_up_down_counter("inflight")
        .build()
        .add(-3, &attrs);
    meter
        .f64_gauge("temperature")
        .with_unit("Cel")
        .build()
        .record(21.5, &attrs);
    let hist = meter.f64_histogram("latency").with_unit("ms").build();
    for v in [1.0, 7.0, 300.0] {
        hist.record(v, &attrs);
    }
    let exp = meter.f64_histogram("exp.latency").build();
    for v in [0.5, 2.0, 2.0, 1000.0] {
        exp.record(v, &attrs);
    }
    let _oc = meter
        .u64_observable_counter("observed.count")
        .with_callback(|o| o.observe(11, &[]))
        .build();
    let _og = meter
        .i64_observable_gauge("observed.gauge")
        .with_callback(|o| o.observe(-5, &[]))
        .build();
    let _ou = meter
        .f64_observable_up_down_counter("observed.updown")
        .with_callback(|o| o.observe(1.5, &[]))
        .build();
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("join")
        .expect("shutdown");

    let b = h
        .wait_rows(Signal::Metrics, 9, Duration::from_secs(20))
        .await;
    let row = |name: &str| {
        row_where(&b, "metric_name", name).unwrap_or_else(|| panic!("{name} missing ({t:?})"))
    };
    let r = row("requests");
    assert_eq!(str_at(&b, "metric_type", r).as_deref(), Some("sum"));
    assert_eq!(bool_at(&b, "is_monotonic", r), Some(true));
    assert_eq!(
        str_at(&b, "aggregation_temporality", r).as_deref(),
        Some("cumulative")
    );
    assert_eq!(f64_at(&b, "value", r), Some(7.0));
    assert_eq!(str_at(&b, "metric_unit", r).as_deref(), Some("{request}"));
    assert_eq!(
        str_at(&b, "metric_description", r).as_deref(),
        Some("served")
    );
    assert_eq!(attr(&b, "attributes", r, "route").as_deref(), Some("/a"));
    assert_eq!(
        str_at(&b, "service_name", r).as_deref(),
        Some("rust-sdk-svc")
    );
    assert!(int_at(&b, "start_timestamp", r).is_some());
    assert_eq!(f64_at(&b, "value", row("bytes.f")), Some(2.5));
    let r = row("inflight");
    assert_eq!(
        (bool_at(&b, "is_monotonic", r), f64_at(&b, "value", r)),
        (Some(false), Some(-3.0))
    );
    let r = row("temperature");
    assert_eq!(
        (
            str_at(&b, "metric_type", r).as_deref(),
            f64_at(&b, "value", r)
        ),
        (Some("gauge"), Some(21.5))
    );
    let r = row("latency");
    assert_eq!(str_at(&b, "metric_type", r).as_deref(), Some("histogram"));
    assert_eq!(int_at(&b, "count", r), Some(3));
    assert_eq!(f64_at(&b, "sum", r), Some(308.0));
    assert_eq!(
        (f64_at(&b, "min", r), f64_at(&b, "max", r)),
        (Some(1.0), Some(300.0))
    );
    let bounds = f64_list_at(&b, "explicit_bounds", r).expect("bounds");
    let counts = u64_list_at(&b, "bucket_counts", r).expect("counts");
    assert_eq!(counts.len(), bounds.len() + 1);
    assert_eq!(counts.iter().sum::<u64>(), 3);
    let r = row("exp.latency");
    assert_eq!(
        str_at(&b, "metric_type", r).as_deref(),
        Some("exponential_histogram")
    );
    assert_eq!(int_at(&b, "count", r), Some(4));
    assert_eq!(f64_at(&b, "sum", r), Some(1004.5));
    assert!(int_at(&b, "exp_scale", r).is_some());
    let pos = u64_list_at(&b, "exp_positive_bucket_counts", r).expect("positive buckets");
    assert_eq!(
        pos.iter().sum::<u64>() + int_at(&b, "exp_zero_count", r).expect("zero") as u64,
        4
    );
    assert_eq!(f64_at(&b, "value", row("observed.count")), Some(11.0));
    assert_eq!(f64_at(&b, "value", row("observed.gauge")), Some(-5.0));
    assert_eq!(f64_at(&b, "value", row("observed.updown")), Some(1.5));
}

async fn check_logs(h: &Harness, t: Transport) {
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource(t))
        .with_batch_exporter(exporter!(LogExporter, h, t, "/v1/logs"))
        .build();
    let logger = provider.logger("e2e-logger");
    let mut rec = logger.create_log_record();
    rec.set_body(AnyValue::String("payment declined for order 42".into()));
    rec.set_severity_number(Severity::Warn);
    rec.set_severity_text("WARN");
    rec.set_event_name("payment.declined");
    rec.set_trace_context(
        opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("id"),
        opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").expect("id"),
        Some(TraceFlags::SAMPLED),
    );
    rec.add_attribute("order.id", 42_i64);
    rec.add_attribute("amount", 9.99_f64);
    logger.emit(rec);
    let mut structured = logger.create_log_record();
    structured.set_body(AnyValue::Map(Box::new(
        [(opentelemetry::Key::from("k"), AnyValue::Int(1))]
            .into_iter()
            .collect(),
    )));
    structured.set_severity_number(Severity::Info);
    logger.emit(structured);
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("join")
        .expect("shutdown");

    let b = h.wait_rows(Signal::Logs, 2, Duration::from_secs(20)).await;
    let r = row_where(&b, "body", "payment declined for order 42").expect("log");
    assert_eq!(int_at(&b, "severity_number", r), Some(13));
    assert_eq!(str_at(&b, "severity_text", r).as_deref(), Some("WARN"));
    assert_eq!(
        str_at(&b, "event_name", r).as_deref(),
        Some("payment.declined")
    );
    assert_eq!(
        hex_at(&b, "trace_id", r).as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        hex_at(&b, "span_id", r).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(attr(&b, "attributes", r, "order.id").as_deref(), Some("42"));
    assert_eq!(attr(&b, "attributes", r, "amount").as_deref(), Some("9.99"));
    assert_eq!(
        str_at(&b, "service_name", r).as_deref(),
        Some("rust-sdk-svc")
    );
    assert_eq!(str_at(&b, "scope_name", r).as_deref(), Some("e2e-logger"));
    assert!(int_at(&b, "timestamp", r).is_some_and(|t| t > 1_600_000_000_000_000_000));
    let r = row_where(&b, "body", r#"{"k":1}"#).expect("structured body as JSON");
    assert_eq!(int_at(&b, "severity_number", r), Some(9));
}

async fn all_signals(t: Transport) {
    let h = Harness::start().await;
    check_traces(&h, t).await;
    check_metrics(&h, t).await;
    check_logs(&h, t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_grpc() {
    all_signals(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_http_protobuf() {
    all_signals(Transport::HttpProto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_http_json() {
    all_signals(Transport::HttpJson).await;
}
