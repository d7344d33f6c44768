//! The Python OpenTelemetry SDK (from PyPI, in the venv `scripts/test`
//! creates) exports over gRPC and HTTP/protobuf; every field it sent is
//! found in the receiver's Arrow batches.

use std::time::Duration;

use ophion_core::Signal;
use ophion_tests::*;

async fn check(transport: &str) {
    let h = Harness::start().await;
    let target = if transport == "grpc" {
        h.grpc.to_string()
    } else {
        h.http_url()
    };
    let sent = send_with_python_sdk(transport, target).await;
    let service = sent["service"].as_str().expect("service");

    let b = h
        .wait_rows(Signal::Traces, 2, Duration::from_secs(20))
        .await;
    let c = row_where(&b, "name", "POST /orders").expect("child span");
    assert_eq!(
        hex_at(&b, "trace_id", c).as_deref(),
        sent["trace_id"].as_str()
    );
    assert_eq!(
        hex_at(&b, "span_id", c).as_deref(),
        sent["child_span_id"].as_str()
    );
    assert_eq!(
        hex_at(&b, "parent_span_id", c).as_deref(),
        sent["parent_span_id"].as_str()
    );
    assert_eq!(str_at(&b, "service_name", c).as_deref(), Some(service));
    assert_eq!(str_at(&b, "service_version", c).as_deref(), Some("3.2.1"));
    assert_eq!(str_at(&b, "host_name", c).as_deref(), Some("py-host"));
    assert_eq!(
        attr(&b, "resource_attributes", c, "team").as_deref(),
        Some("sre")
    );
    assert_eq!(
        attr(&b, "resource_attributes", c, "telemetry.sdk.language").as_deref(),
        Some("python")
    );
    assert_eq!(str_at(&b, "kind", c).as_deref(), Some("server"));
    assert_eq!(str_at(&b, "status_code", c).as_deref(), Some("error"));
    assert_eq!(
        str_at(&b, "status_message", c).as_deref(),
        Some("order rejected")
    );
    assert_eq!(
        str_at(&b, "http_request_method", c).as_deref(),
        Some("POST")
    );
    assert_eq!(str_at(&b, "http_route", c).as_deref(), Some("/orders"));
    assert_eq!(int_at(&b, "http_response_status_code", c), Some(500));
    assert_eq!(
        attr(&b, "attributes", c, "app.retries").as_deref(),
        Some("2")
    );
    assert_eq!(
        attr(&b, "attributes", c, "app.ratio").as_deref(),
        Some("0.5")
    );
    assert_eq!(
        attr(&b, "attributes", c, "app.flag").as_deref(),
        Some("false")
    );
    assert_eq!(
        attr(&b, "attributes", c, "app.list").as_deref(),
        Some(r#"["x","y"]"#)
    );
    assert_eq!(str_at(&b, "scope_name", c).as_deref(), Some("py-tracer"));
    assert_eq!(str_at(&b, "scope_version", c).as_deref(), Some("0.9"));
    use arrow_array::{Array as _, cast::AsArray as _};
    let events = struct_list_at(&b, "events", c);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events
            .column_by_name("name")
            .expect("name")
            .as_string::<i32>()
            .value(0),
        "validation"
    );

    let l = h.wait_rows(Signal::Logs, 1, Duration::from_secs(20)).await;
    let r = row_where(&l, "body", "order rejected for customer c-7").expect("log row");
    assert_eq!(int_at(&l, "severity_number", r), Some(13));
    let text = str_at(&l, "severity_text", r);
    assert!(
        matches!(text.as_deref(), Some("WARN" | "WARNING")),
        "{text:?}"
    );
    assert_eq!(
        hex_at(&l, "trace_id", r).as_deref(),
        sent["trace_id"].as_str(),
        "log linked to its span"
    );
    assert_eq!(
        hex_at(&l, "span_id", r).as_deref(),
        sent["child_span_id"].as_str()
    );
    assert_eq!(
        attr(&l, "attributes", r, "order.total").as_deref(),
        Some("12.5")
    );

    let m = h
        .wait_rows(Signal::Metrics, 8, Duration::from_secs(20))
        .await;
    let row =
        |n: &str| row_where(&m, "metric_name", n).unwrap_or_else(|| panic!("metric {n} missing"));
    let r = row("py.counter");
    assert_eq!(
        (
            str_at(&m, "metric_type", r).as_deref(),
            f64_at(&m, "value", r)
        ),
        (Some("sum"), Some(5.0))
    );
    assert_eq!(bool_at(&m, "is_monotonic", r), Some(true));
    assert_eq!(
        str_at(&m, "metric_description", r).as_deref(),
        Some("count")
    );
    assert_eq!(
        attr(&m, "attributes", r, "route").as_deref(),
        Some("/orders")
    );
    assert_eq!(f64_at(&m, "value", row("py.updown")), Some(-2.0));
    let r = row("py.hist");
    assert_eq!(
        (int_at(&m, "count", r), f64_at(&m, "sum", r)),
        (Some(1), Some(42.0))
    );
    assert_eq!(str_at(&m, "metric_unit", r).as_deref(), Some("ms"));
    let r = row("py.exp");
    assert_eq!(
        str_at(&m, "metric_type", r).as_deref(),
        Some("exponential_histogram")
    );
    assert_eq!(
        (int_at(&m, "count", r), f64_at(&m, "sum", r)),
        (Some(3), Some(7.0))
    );
    let pos = u64_list_at(&m, "exp_positive_bucket_counts", r).expect("buckets");
    assert_eq!(pos.iter().sum::<u64>(), 3);
    let r = row("py.gauge");
    assert_eq!(
        (
            str_at(&m, "metric_type", r).as_deref(),
            f64_at(&m, "value", r)
        ),
        (Some("gauge"), Some(7.5))
    );
    assert_eq!(f64_at(&m, "value", row("py.obs.counter")), Some(9.0));
    assert_eq!(f64_at(&m, "value", row("py.obs.gauge")), Some(3.5));
    assert_eq!(f64_at(&m, "value", row("py.obs.updown")), Some(-4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc() {
    check("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_http_protobuf() {
    check("http").await;
}
