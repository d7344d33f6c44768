//! OTLP/JSON decoding, following the OTLP specification's JSON mapping:
//! lowerCamelCase keys (the original snake_case names are accepted too),
//! trace and span ids as hex (any case), 64-bit integers as numbers or
//! decimal strings, enums as integers (names are accepted too), bytes values
//! as base64, unknown fields ignored, `null` the same as absent.
//!
//! The document is parsed with `serde_json` (whose nesting limit of 128
//! levels keeps hostile input from overflowing the stack) and then mapped to
//! the protobuf types, so both encodings share one conversion path. Errors
//! name the offending field, e.g.
//! `resourceSpans[0].scopeSpans[0].spans[3].startTimeUnixNano: expected an
//! integer`.

use std::fmt;

use base64::Engine as _;
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    metrics::v1::{
        Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
        HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
        SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric::Data,
        number_data_point, summary_data_point::ValueAtQuantile,
    },
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span},
};
use serde_json::{Map, Value};

/// A JSON document that is not a valid OTLP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Path segments from the innermost outwards.
    path: Vec<String>,
    message: String,
}

impl JsonError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return f.write_str(&self.message);
        }
        for (i, seg) in self.path.iter().rev().enumerate() {
            if i > 0 && !seg.starts_with('[') {
                f.write_str(".")?;
            }
            f.write_str(seg)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for JsonError {}

type R<T> = Result<T, JsonError>;

trait At<T> {
    fn at(self, seg: impl fmt::Display) -> R<T>;
}

impl<T> At<T> for R<T> {
    fn at(self, seg: impl fmt::Display) -> R<T> {
        self.map_err(|mut e| {
            e.path.push(seg.to_string());
            e
        })
    }
}

fn parse(bytes: &[u8]) -> R<Value> {
    serde_json::from_slice(bytes).map_err(|e| JsonError::new(format!("malformed JSON: {e}")))
}

fn fields(v: &Value) -> R<impl Iterator<Item = (&str, &Value)>> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    let map: &Map<String, Value> = match v {
        Value::Object(m) => m,
        Value::Null => &EMPTY,
        _ => return Err(JsonError::new("expected an object")),
    };
    Ok(map.iter().map(|(k, v)| (k.as_str(), v)))
}

fn list<T>(v: &Value, key: &str, f: impl Fn(&Value) -> R<T>) -> R<Vec<T>> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| f(x).at(format!("[{i}]")))
            .collect::<R<_>>()
            .at(key),
        Value::Null => Ok(Vec::new()),
        _ => Err(JsonError::new("expected an array")).at(key),
    }
}

fn string(v: &Value) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(JsonError::new("expected a string")),
    }
}

fn boolean(v: &Value) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        _ => Err(JsonError::new("expected true or false")),
    }
}

fn int<T: TryFrom<i128>>(v: &Value) -> R<T> {
    let wide: i128 = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                i128::from(u)
            } else if let Some(i) = n.as_i64() {
                i128::from(i)
            } else {
                return Err(JsonError::new("expected an integer, found a fraction"));
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| JsonError::new("expected an integer or a decimal string"))?,
        Value::Null => 0,
        _ => return Err(JsonError::new("expected an integer")),
    };
    T::try_from(wide).map_err(|_| JsonError::new("integer out of range"))
}

fn double(v: &Value) -> R<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| JsonError::new("expected a number")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| JsonError::new("expected a number")),
        },
        Value::Null => Ok(0.0),
        _ => Err(JsonError::new("expected a number")),
    }
}

/// An enum as an integer or, leniently, as its protobuf name.
fn enumeration(v: &Value, names: &[(&str, i32)]) -> R<i32> {
    match v {
        Value::String(s) if s.parse::<i64>().is_err() => names
            .iter()
            .find(|(n, _)| n == s)
            .map(|(_, i)| *i)
            .ok_or_else(|| JsonError::new(format!("unknown enum value {s:?}"))),
        other => int(other),
    }
}

/// Hex id. Ids that are not hex become a 1-byte value so that validation
/// rejects them like any other id of the wrong length (a span is rejected, a
/// log kept unlinked) instead of failing the whole request.
fn hex_id(v: &Value) -> R<Vec<u8>> {
    match v {
        Value::String(s) => Ok(hex::decode(s).unwrap_or_else(|_| vec![0])),
        Value::Null => Ok(Vec::new()),
        _ => Err(JsonError::new("expected a hex string")),
    }
}

fn base64(v: &Value) -> R<Vec<u8>> {
    let s = string(v)?;
    base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|_| JsonError::new("expected base64"))
}

fn any_value(v: &Value) -> R<AnyValue> {
    use any_value::Value as V;
    let mut out = None;
    for (k, x) in fields(v)? {
        let val = match k {
            "stringValue" | "string_value" => V::StringValue(string(x).at(k)?),
            "boolValue" | "bool_value" => V::BoolValue(boolean(x).at(k)?),
            "intValue" | "int_value" => V::IntValue(int(x).at(k)?),
            "doubleValue" | "double_value" => V::DoubleValue(double(x).at(k)?),
            "bytesValue" | "bytes_value" => V::BytesValue(base64(x).at(k)?),
            "arrayValue" | "array_value" => {
                let mut values = Vec::new();
                for (k2, y) in fields(x).at(k)? {
                    if k2 == "values" {
                        values = list(y, k2, any_value).at(k)?;
                    }
                }
                V::ArrayValue(ArrayValue { values })
            }
            "kvlistValue" | "kvlist_value" => {
                let mut values = Vec::new();
                for (k2, y) in fields(x).at(k)? {
                    if k2 == "values" {
                        values = list(y, k2, key_value).at(k)?;
                    }
                }
                V::KvlistValue(KeyValueList { values })
            }
            _ => continue,
        };
        if x.is_null() {
            continue;
        }
        out = Some(val);
    }
    Ok(AnyValue { value: out })
}

fn key_value(v: &Value) -> R<KeyValue> {
    let mut kv = KeyValue::default();
    for (k, x) in fields(v)? {
        match k {
            "key" => kv.key = string(x).at(k)?,
            "value" if !x.is_null() => kv.value = Some(any_value(x).at(k)?),
            _ => {}
        }
    }
    Ok(kv)
}

fn attributes(x: &Value, k: &str) -> R<Vec<KeyValue>> {
    list(x, k, key_value)
}

fn resource(v: &Value) -> R<Resource> {
    let mut r = Resource::default();
    for (k, x) in fields(v)? {
        match k {
            "attributes" => r.attributes = attributes(x, k)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                r.dropped_attributes_count = int(x).at(k)?
            }
            _ => {}
        }
    }
    Ok(r)
}

fn scope(v: &Value) -> R<InstrumentationScope> {
    let mut s = InstrumentationScope::default();
    for (k, x) in fields(v)? {
        match k {
            "name" => s.name = string(x).at(k)?,
            "version" => s.version = string(x).at(k)?,
            "attributes" => s.attributes = attributes(x, k)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                s.dropped_attributes_count = int(x).at(k)?
            }
            _ => {}
        }
    }
    Ok(s)
}

const SPAN_KINDS: &[(&str, i32)] = &[
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
];
const STATUS_CODES: &[(&str, i32)] = &[
    ("STATUS_CODE_UNSET", 0),
    ("STATUS_CODE_OK", 1),
    ("STATUS_CODE_ERROR", 2),
];
const TEMPORALITIES: &[(&str, i32)] = &[
    ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
    ("AGGREGATION_TEMPORALITY_DELTA", 1),
    ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
];

fn span(v: &Value) -> R<Span> {
    let mut s = Span::default();
    for (k, x) in fields(v)? {
        match k {
            "traceId" | "trace_id" => s.trace_id = hex_id(x).at(k)?,
            "spanId" | "span_id" => s.span_id = hex_id(x).at(k)?,
            "traceState" | "trace_state" => s.trace_state = string(x).at(k)?,
            "parentSpanId" | "parent_span_id" => s.parent_span_id = hex_id(x).at(k)?,
            "flags" => s.flags = int(x).at(k)?,
            "name" => s.name = string(x).at(k)?,
            "kind" => s.kind = enumeration(x, SPAN_KINDS).at(k)?,
            "startTimeUnixNano" | "start_time_unix_nano" => {
                s.start_time_unix_nano = int(x).at(k)?
            }
            "endTimeUnixNano" | "end_time_unix_nano" => s.end_time_unix_nano = int(x).at(k)?,
            "attributes" => s.attributes = attributes(x, k)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                s.dropped_attributes_count = int(x).at(k)?
            }
            "events" => s.events = list(x, k, event)?,
            "droppedEventsCount" | "dropped_events_count" => {
                s.dropped_events_count = int(x).at(k)?
            }
            "links" => s.links = list(x, k, link)?,
            "droppedLinksCount" | "dropped_links_count" => s.dropped_links_count = int(x).at(k)?,
            "status" if !x.is_null() => {
                let mut st = Status::default();
                for (k2, y) in fields(x).at(k)? {
                    match k2 {
                        "message" => st.message = string(y).at(k2).at(k)?,
                        "code" => st.code = enumeration(y, STATUS_CODES).at(k2).at(k)?,
                        _ => {}
                    }
                }
                s.status = Some(st);
            }
            _ => {}
        }
    }
    Ok(s)
}

fn event(v: &Value) -> R<span::Event> {
    let mut e = span::Event::default();
    for (k, x) in fields(v)? {
        match k {
            "timeUnixNano" | "time_unix_nano" => e.time_unix_nano = int(x).at(k)?,
            "name" => e.name = string(x).at(k)?,
            "attributes" => e.attributes = attributes(x, k)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                e.dropped_attributes_count = int(x).at(k)?
            }
            _ => {}
        }
    }
    Ok(e)
}

fn link(v: &Value) -> R<span::Link> {
    let mut l = span::Link::default();
    for (k, x) in fields(v)? {
        match k {
            "traceId" | "trace_id" => l.trace_id = hex_id(x).at(k)?,
            "spanId" | "span_id" => l.span_id = hex_id(x).at(k)?,
            "traceState" | "trace_state" => l.trace_state = string(x).at(k)?,
            "flags" => l.flags = int(x).at(k)?,
            "attributes" => l.attributes = attributes(x, k)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                l.dropped_attributes_count = int(x).at(k)?
            }
            _ => {}
        }
    }
    Ok(l)
}

/// A scope's fields and the items under it.
struct Scoped<I> {
    scope: Option<InstrumentationScope>,
    schema_url: String,
    items: Vec<I>,
}

/// A resource's fields and the scopes under it.
struct Resourced<I> {
    resource: Option<Resource>,
    schema_url: String,
    scopes: Vec<Scoped<I>>,
}

/// Walks the nesting every export request shares: resources, each with
/// scopes, each with items. `keys` name the three lists (camelCase first,
/// then snake_case), e.g. `resourceSpans`, `scopeSpans`, `spans`.
fn envelope<I>(
    bytes: &[u8],
    keys: [[&str; 2]; 3],
    item: impl Fn(&Value) -> R<I>,
) -> R<Vec<Resourced<I>>> {
    let [resources_key, scopes_key, items_key] = keys;
    let doc = parse(bytes)?;
    let mut out = Vec::new();
    for (k, x) in fields(&doc)? {
        if !resources_key.contains(&k) {
            continue;
        }
        out = list(x, k, |v| {
            let mut r = Resourced {
                resource: None,
                schema_url: String::new(),
                scopes: Vec::new(),
            };
            for (k, x) in fields(v)? {
                match k {
                    "resource" if !x.is_null() => r.resource = Some(resource(x).at(k)?),
                    "schemaUrl" | "schema_url" => r.schema_url = string(x).at(k)?,
                    _ if scopes_key.contains(&k) => {
                        r.scopes = list(x, k, |v| {
                            let mut s = Scoped {
                                scope: None,
                                schema_url: String::new(),
                                items: Vec::new(),
                            };
                            for (k, x) in fields(v)? {
                                match k {
                                    "scope" if !x.is_null() => s.scope = Some(scope(x).at(k)?),
                                    "schemaUrl" | "schema_url" => s.schema_url = string(x).at(k)?,
                                    _ if items_key.contains(&k) => s.items = list(x, k, &item)?,
                                    _ => {}
                                }
                            }
                            Ok(s)
                        })?
                    }
                    _ => {}
                }
            }
            Ok(r)
        })?;
    }
    Ok(out)
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_traces(bytes: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    let keys = [
        ["resourceSpans", "resource_spans"],
        ["scopeSpans", "scope_spans"],
        ["spans", "spans"],
    ];
    let resource_spans = envelope(bytes, keys, span)?
        .into_iter()
        .map(|r| ResourceSpans {
            resource: r.resource,
            schema_url: r.schema_url,
            scope_spans: r
                .scopes
                .into_iter()
                .map(|s| ScopeSpans {
                    scope: s.scope,
                    schema_url: s.schema_url,
                    spans: s.items,
                })
                .collect(),
        })
        .collect();
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn log_record(v: &Value) -> R<LogRecord> {
    let mut l = LogRecord::default();
    for (k, x) in fields(v)? {
        match k {
            "timeUnixNano" | "time_unix_nano" => l.time_unix_nano = int(x).at(k)?,
            "observedTimeUnixNano" | "observed_time_unix_nano" => {
                l.observed_time_unix_nano = int(x).at(k)?
            }
            "severityNumber" | "severity_number" => {
                l.severity_number = enumeration(x, &[]).at(k)?
            }
            "severityText" | "severity_text" => l.severity_text = string(x).at(k)?,
            "body" if !x.is_null() => l.body = Some(any_value(x).at(k)?),
            "attributes" => l.attributes = attributes(x, k)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                l.dropped_attributes_count = int(x).at(k)?
            }
            "flags" => l.flags = int(x).at(k)?,
            "traceId" | "trace_id" => l.trace_id = hex_id(x).at(k)?,
            "spanId" | "span_id" => l.span_id = hex_id(x).at(k)?,
            "eventName" | "event_name" => l.event_name = string(x).at(k)?,
            _ => {}
        }
    }
    Ok(l)
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`.
pub fn decode_logs(bytes: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    let keys = [
        ["resourceLogs", "resource_logs"],
        ["scopeLogs", "scope_logs"],
        ["logRecords", "log_records"],
    ];
    let resource_logs = envelope(bytes, keys, log_record)?
        .into_iter()
        .map(|r| ResourceLogs {
            resource: r.resource,
            schema_url: r.schema_url,
            scope_logs: r
                .scopes
                .into_iter()
                .map(|s| ScopeLogs {
                    scope: s.scope,
                    schema_url: s.schema_url,
                    log_records: s.items,
                })
                .collect(),
        })
        .collect();
    Ok(ExportLogsServiceRequest { resource_logs })
}

fn exemplar(v: &Value) -> R<Exemplar> {
    let mut e = Exemplar::default();
    for (k, x) in fields(v)? {
        match k {
            "filteredAttributes" | "filtered_attributes" => {
                e.filtered_attributes = attributes(x, k)?
            }
            "timeUnixNano" | "time_unix_nano" => e.time_unix_nano = int(x).at(k)?,
            "asDouble" | "as_double" if !x.is_null() => {
                e.value = Some(exemplar::Value::AsDouble(double(x).at(k)?))
            }
            "asInt" | "as_int" if !x.is_null() => {
                e.value = Some(exemplar::Value::AsInt(int(x).at(k)?))
            }
            "spanId" | "span_id" => e.span_id = hex_id(x).at(k)?,
            "traceId" | "trace_id" => e.trace_id = hex_id(x).at(k)?,
            _ => {}
        }
    }
    Ok(e)
}

/// Fields every data point type has.
#[derive(Default)]
struct Common {
    attributes: Vec<KeyValue>,
    start: u64,
    time: u64,
    flags: u32,
    exemplars: Vec<Exemplar>,
}

impl Common {
    /// Consumes a common field; false when `k` is not one.
    fn take(&mut self, k: &str, x: &Value) -> R<bool> {
        match k {
            "attributes" => self.attributes = attributes(x, k)?,
            "startTimeUnixNano" | "start_time_unix_nano" => self.start = int(x).at(k)?,
            "timeUnixNano" | "time_unix_nano" => self.time = int(x).at(k)?,
            "flags" => self.flags = int(x).at(k)?,
            "exemplars" => self.exemplars = list(x, k, exemplar)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn number_point(v: &Value) -> R<NumberDataPoint> {
    let mut c = Common::default();
    let mut value = None;
    for (k, x) in fields(v)? {
        if c.take(k, x)? {
            continue;
        }
        match k {
            "asDouble" | "as_double" if !x.is_null() => {
                value = Some(number_data_point::Value::AsDouble(double(x).at(k)?))
            }
            "asInt" | "as_int" if !x.is_null() => {
                value = Some(number_data_point::Value::AsInt(int(x).at(k)?))
            }
            _ => {}
        }
    }
    Ok(NumberDataPoint {
        attributes: c.attributes,
        start_time_unix_nano: c.start,
        time_unix_nano: c.time,
        exemplars: c.exemplars,
        flags: c.flags,
        value,
    })
}

fn opt_double(x: &Value) -> R<Option<f64>> {
    if x.is_null() {
        Ok(None)
    } else {
        double(x).map(Some)
    }
}

fn histogram_point(v: &Value) -> R<HistogramDataPoint> {
    let mut c = Common::default();
    let mut p = HistogramDataPoint::default();
    for (k, x) in fields(v)? {
        if c.take(k, x)? {
            continue;
        }
        match k {
            "count" => p.count = int(x).at(k)?,
            "sum" => p.sum = opt_double(x).at(k)?,
            "min" => p.min = opt_double(x).at(k)?,
            "max" => p.max = opt_double(x).at(k)?,
            "bucketCounts" | "bucket_counts" => p.bucket_counts = list(x, k, int)?,
            "explicitBounds" | "explicit_bounds" => p.explicit_bounds = list(x, k, double)?,
            _ => {}
        }
    }
    p.attributes = c.attributes;
    p.start_time_unix_nano = c.start;
    p.time_unix_nano = c.time;
    p.flags = c.flags;
    p.exemplars = c.exemplars;
    Ok(p)
}

fn buckets(v: &Value) -> R<Buckets> {
    let mut b = Buckets::default();
    for (k, x) in fields(v)? {
        match k {
            "offset" => b.offset = int(x).at(k)?,
            "bucketCounts" | "bucket_counts" => b.bucket_counts = list(x, k, int)?,
            _ => {}
        }
    }
    Ok(b)
}

fn exp_point(v: &Value) -> R<ExponentialHistogramDataPoint> {
    let mut c = Common::default();
    let mut p = ExponentialHistogramDataPoint::default();
    for (k, x) in fields(v)? {
        if c.take(k, x)? {
            continue;
        }
        match k {
            "count" => p.count = int(x).at(k)?,
            "sum" => p.sum = opt_double(x).at(k)?,
            "min" => p.min = opt_double(x).at(k)?,
            "max" => p.max = opt_double(x).at(k)?,
            "scale" => p.scale = int(x).at(k)?,
            "zeroCount" | "zero_count" => p.zero_count = int(x).at(k)?,
            "zeroThreshold" | "zero_threshold" => p.zero_threshold = double(x).at(k)?,
            "positive" if !x.is_null() => p.positive = Some(buckets(x).at(k)?),
            "negative" if !x.is_null() => p.negative = Some(buckets(x).at(k)?),
            _ => {}
        }
    }
    p.attributes = c.attributes;
    p.start_time_unix_nano = c.start;
    p.time_unix_nano = c.time;
    p.flags = c.flags;
    p.exemplars = c.exemplars;
    Ok(p)
}

fn summary_point(v: &Value) -> R<SummaryDataPoint> {
    let mut c = Common::default();
    let mut p = SummaryDataPoint::default();
    for (k, x) in fields(v)? {
        if c.take(k, x)? {
            continue;
        }
        match k {
            "count" => p.count = int(x).at(k)?,
            "sum" => p.sum = double(x).at(k)?,
            "quantileValues" | "quantile_values" => {
                p.quantile_values = list(x, k, |v| {
                    let mut q = ValueAtQuantile::default();
                    for (k, x) in fields(v)? {
                        match k {
                            "quantile" => q.quantile = double(x).at(k)?,
                            "value" => q.value = double(x).at(k)?,
                            _ => {}
                        }
                    }
                    Ok(q)
                })?
            }
            _ => {}
        }
    }
    p.attributes = c.attributes;
    p.start_time_unix_nano = c.start;
    p.time_unix_nano = c.time;
    p.flags = c.flags;
    Ok(p)
}

/// `dataPoints`, `aggregationTemporality` and `isMonotonic` of a metric's data.
fn data_fields<P>(v: &Value, point: impl Fn(&Value) -> R<P>) -> R<(Vec<P>, i32, bool)> {
    let (mut points, mut temporality, mut monotonic) = (Vec::new(), 0, false);
    for (k, x) in fields(v)? {
        match k {
            "dataPoints" | "data_points" => points = list(x, k, &point)?,
            "aggregationTemporality" | "aggregation_temporality" => {
                temporality = enumeration(x, TEMPORALITIES).at(k)?
            }
            "isMonotonic" | "is_monotonic" => monotonic = boolean(x).at(k)?,
            _ => {}
        }
    }
    Ok((points, temporality, monotonic))
}

fn metric(v: &Value) -> R<Metric> {
    let mut m = Metric::default();
    for (k, x) in fields(v)? {
        if x.is_null() {
            continue;
        }
        match k {
            "name" => m.name = string(x).at(k)?,
            "description" => m.description = string(x).at(k)?,
            "unit" => m.unit = string(x).at(k)?,
            "metadata" => m.metadata = attributes(x, k)?,
            "gauge" => {
                let (data_points, _, _) = data_fields(x, number_point).at(k)?;
                m.data = Some(Data::Gauge(Gauge { data_points }));
            }
            "sum" => {
                let (data_points, aggregation_temporality, is_monotonic) =
                    data_fields(x, number_point).at(k)?;
                m.data = Some(Data::Sum(Sum {
                    data_points,
                    aggregation_temporality,
                    is_monotonic,
                }));
            }
            "histogram" => {
                let (data_points, aggregation_temporality, _) =
                    data_fields(x, histogram_point).at(k)?;
                m.data = Some(Data::Histogram(Histogram {
                    data_points,
                    aggregation_temporality,
                }));
            }
            "exponentialHistogram" | "exponential_histogram" => {
                let (data_points, aggregation_temporality, _) = data_fields(x, exp_point).at(k)?;
                m.data = Some(Data::ExponentialHistogram(ExponentialHistogram {
                    data_points,
                    aggregation_temporality,
                }));
            }
            "summary" => {
                let (data_points, _, _) = data_fields(x, summary_point).at(k)?;
                m.data = Some(Data::Summary(Summary { data_points }));
            }
            _ => {}
        }
    }
    Ok(m)
}

/// Decodes an OTLP/JSON `ExportMetricsServiceRequest`.
pub fn decode_metrics(bytes: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    let keys = [
        ["resourceMetrics", "resource_metrics"],
        ["scopeMetrics", "scope_metrics"],
        ["metrics", "metrics"],
    ];
    let resource_metrics = envelope(bytes, keys, metric)?
        .into_iter()
        .map(|r| ResourceMetrics {
            resource: r.resource,
            schema_url: r.schema_url,
            scope_metrics: r
                .scopes
                .into_iter()
                .map(|s| ScopeMetrics {
                    scope: s.scope,
                    schema_url: s.schema_url,
                    metrics: s.items,
                })
                .collect(),
        })
        .collect();
    Ok(ExportMetricsServiceRequest { resource_metrics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_quirks() {
        let doc = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "unknownField": {"x": 1},
          "scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
          "name":"op","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
          "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"m","value":{"intValue":7}}],
          "status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;
        let req = decode_traces(doc).expect("valid");
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        let ints: Vec<_> = span
            .attributes
            .iter()
            .map(|a| a.value.clone().and_then(|v| v.value))
            .collect();
        assert_eq!(
            ints,
            vec![
                Some(any_value::Value::IntValue(42)),
                Some(any_value::Value::IntValue(7))
            ]
        );
    }

    #[test]
    fn doubles_round_trip_exactly() {
        // Found by the agreement property test: without serde_json's
        // `float_roundtrip`, this parsed as 91.1435791606784.
        let doc = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asDouble":91.14357916067839}]}}]}]}]}"#;
        let req = decode_metrics(doc).expect("valid");
        let Some(Data::Gauge(g)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data else {
            panic!("gauge expected");
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(91.14357916067839))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let doc =
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{},{"startTimeUnixNano":"soon"}]}]}]}"#;
        let err = decode_traces(doc).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano: expected an integer or a decimal string"
        );
        assert!(decode_traces(b"{\"resourceSpans\": [").is_err());
        assert!(decode_logs(b"[1,2]").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 100_000;
        let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(decode_traces(doc.as_bytes()).is_err());
    }
}
