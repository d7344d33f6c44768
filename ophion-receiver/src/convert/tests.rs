use arrow_array::{Array, cast::AsArray, types::Int64Type};
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use ophion_core::{Signal, schema::col, testing::Generator};

use super::*;

const T0: u64 = 1_700_000_000_000_000_000;

fn limits() -> Limits {
    Limits::default()
}

fn window() -> TimeWindow {
    TimeWindow::around(T0 as i64 + 3600 * 1_000_000_000, &limits())
}

fn span_count(
    req: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[test]
fn generated_telemetry_converts_without_rejections() {
    let mut g = Generator::new(1, T0);
    let req = g.traces(200);
    let c = traces(&req, &limits(), window());
    assert_eq!(c.rejected.total(), 0, "{:?}", c.rejected);
    let batch = c.batch.expect("rows");
    assert_eq!(batch.num_rows(), span_count(&req));
    assert_eq!(batch.schema(), Signal::Traces.schema());
    let services = batch
        .column_by_name(col::SERVICE_NAME)
        .expect("col")
        .as_string::<i32>();
    assert!(services.iter().any(|s| s == Some("frontend")));
    let status = batch
        .column_by_name("http_response_status_code")
        .expect("col")
        .as_primitive::<Int64Type>();
    assert!(status.iter().flatten().all(|s| s == 200 || s == 500));

    let logs_req = g.logs(100);
    let c = logs(&logs_req, &limits(), window(), T0 as i64);
    assert_eq!(c.rejected.total(), 0);
    assert_eq!(c.accepted(), 100);

    let m = g.metrics(100);
    let c = metrics(&m, &limits(), window());
    assert_eq!(c.rejected.total(), 0, "{:?}", c.rejected);
    let batch = c.batch.expect("rows");
    let types = batch
        .column_by_name(col::METRIC_TYPE)
        .expect("col")
        .as_string::<i32>();
    for t in [
        "gauge",
        "sum",
        "histogram",
        "exponential_histogram",
        "summary",
    ] {
        assert!(types.iter().any(|x| x == Some(t)), "{t}");
    }
}

#[test]
fn bad_ids_are_rejected_and_counted_good_spans_kept() {
    let mut req = Generator::new(2, T0).traces(50);
    let total = span_count(&req);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans[0].trace_id.truncate(15);
    spans[1].span_id = vec![0; 8];
    spans[2].trace_id = vec![0; 16];
    spans[3].parent_span_id = vec![1, 2, 3];
    spans[4].start_time_unix_nano = 0;
    spans[5].start_time_unix_nano = u64::MAX; // past the year 2262
    let c = traces(&req, &limits(), window());
    assert_eq!(c.rejected.count(Reason::InvalidTraceId), 2);
    assert_eq!(c.rejected.count(Reason::InvalidSpanId), 1);
    assert_eq!(c.rejected.count(Reason::InvalidParentSpanId), 1);
    assert_eq!(c.rejected.count(Reason::MissingTimestamp), 1);
    assert_eq!(c.rejected.count(Reason::TimestampOutOfWindow), 1);
    assert_eq!(c.accepted(), total - 6);
    let msg = c.rejected.message("spans", &window());
    assert!(
        msg.starts_with("6 spans rejected:") && msg.contains("invalid trace_id"),
        "{msg}"
    );
}

#[test]
fn limits_truncate_and_count() {
    let mut req = Generator::new(3, T0).traces(1);
    let span = &mut req.resource_spans[0].scope_spans[0].spans[0];
    span.attributes = (0..10_000)
        .map(|i| ophion_core::testing::kv_str(&format!("k{i}"), "v"))
        .collect();
    span.attributes
        .push(ophion_core::testing::kv_str("big", "é".repeat(1 << 20)));
    let mut deep = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    };
    for _ in 0..1000 {
        deep = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![deep] })),
        };
    }
    span.attributes.insert(
        0,
        KeyValue {
            key: "deep".into(),
            value: Some(deep),
            ..Default::default()
        },
    );
    span.attributes
        .insert(1, ophion_core::testing::kv_str("big", "é".repeat(1 << 20)));
    let l = Limits {
        max_attributes_per_item: 100,
        max_attribute_value_bytes: 1001,
        ..limits()
    };
    let c = traces(&req, &l, window());
    let batch = c.batch.expect("row");
    let row = batch.num_rows() - 1;
    let _ = row;
    let attrs = batch.column_by_name(col::ATTRIBUTES).expect("col").as_map();
    let first = attrs.value(0);
    assert_eq!(first.len(), 100);
    let values = first.column(1).as_string::<i32>();
    let big = values.value(0);
    assert_eq!(
        big.len(),
        1000,
        "truncated on a char boundary below 1001 bytes"
    );
    assert!(big.chars().all(|c| c == 'é'));
    let dropped = batch
        .column_by_name(col::DROPPED_ATTRIBUTES_COUNT)
        .expect("col")
        .as_primitive::<arrow_array::types::UInt32Type>();
    assert_eq!(dropped.value(0), 1 /* deep */ + 10_001 - 99);
    assert!(c.stats.truncated_values >= 1);
}
