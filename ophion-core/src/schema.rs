//! Arrow schemas of the three signals: the one source of truth for column
//! names. Every other crate refers to columns through the constants in
//! [`col`], never through string literals of its own.
//!
//! Layout rules, chosen so that SQL over the data reads naturally and so that
//! Parquet compresses it well:
//! - ids are fixed-size binary (16 bytes for traces, 8 for spans);
//! - times are `Timestamp(Nanosecond, "UTC")`; durations are `Int64` ns;
//! - enums are short lowercase strings (`"server"`, `"error"`, `"delta"`),
//!   which dictionary encoding makes as cheap as integers on disk;
//! - well-known semantic-convention attributes are promoted to typed columns
//!   named after the attribute with dots replaced by underscores (see
//!   [`crate::semconv`]); every other attribute lives in a
//!   `Map<Utf8, Utf8>` column (`attributes`, `resource_attributes`,
//!   `scope_attributes`), where non-string values are rendered as text:
//!   integers and doubles in decimal, booleans as `true`/`false`, bytes as
//!   base64, arrays and key-value lists as JSON.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::semconv::{self, Level, PromotedType};

/// Column names shared by the signals.
pub mod col {
    /// 16-byte trace id.
    pub const TRACE_ID: &str = "trace_id";
    /// 8-byte span id.
    pub const SPAN_ID: &str = "span_id";
    /// 8-byte id of the parent span; null for a root span.
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    /// W3C trace state.
    pub const TRACE_STATE: &str = "trace_state";
    /// W3C trace flags and OTLP flag bits.
    pub const FLAGS: &str = "flags";
    /// Span name (the operation).
    pub const NAME: &str = "name";
    /// Span kind: `unspecified`, `internal`, `server`, `client`, `producer`, `consumer`.
    pub const KIND: &str = "kind";
    /// Span start.
    pub const START_TIME: &str = "start_time";
    /// Span end.
    pub const END_TIME: &str = "end_time";
    /// `end_time - start_time` in nanoseconds.
    pub const DURATION_NS: &str = "duration_ns";
    /// Status: `unset`, `ok`, `error`.
    pub const STATUS_CODE: &str = "status_code";
    /// Status description.
    pub const STATUS_MESSAGE: &str = "status_message";
    /// Span events.
    pub const EVENTS: &str = "events";
    /// Span links.
    pub const LINKS: &str = "links";
    /// Events the sender dropped.
    pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
    /// Links the sender dropped, plus links Ophion dropped for invalid ids.
    pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
    /// Item attributes that are not promoted to columns.
    pub const ATTRIBUTES: &str = "attributes";
    /// Attributes the sender dropped plus those Ophion dropped at its limits.
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    /// Resource attributes that are not promoted to columns.
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    /// Resource attributes the sender dropped plus those Ophion dropped.
    pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
    /// Schema URL of the resource.
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    /// Instrumentation scope name.
    pub const SCOPE_NAME: &str = "scope_name";
    /// Instrumentation scope version.
    pub const SCOPE_VERSION: &str = "scope_version";
    /// Instrumentation scope attributes.
    pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
    /// Scope attributes the sender dropped plus those Ophion dropped.
    pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
    /// Schema URL of the scope's telemetry.
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
    /// `service.name` of the resource (`unknown_service` when absent).
    pub const SERVICE_NAME: &str = "service_name";

    /// Log or metric point time.
    pub const TIMESTAMP: &str = "timestamp";
    /// When the log was observed by the first collector.
    pub const OBSERVED_TIMESTAMP: &str = "observed_timestamp";
    /// Log severity number (1-24, 0 = unspecified).
    pub const SEVERITY_NUMBER: &str = "severity_number";
    /// Log severity text.
    pub const SEVERITY_TEXT: &str = "severity_text";
    /// Log body: strings as they are, other values rendered as in attribute maps.
    pub const BODY: &str = "body";
    /// Log event name.
    pub const EVENT_NAME: &str = "event_name";

    /// Metric name.
    pub const METRIC_NAME: &str = "metric_name";
    /// Metric description.
    pub const METRIC_DESCRIPTION: &str = "metric_description";
    /// Metric unit.
    pub const METRIC_UNIT: &str = "metric_unit";
    /// `gauge`, `sum`, `histogram`, `exponential_histogram`, `summary`.
    pub const METRIC_TYPE: &str = "metric_type";
    /// `delta`, `cumulative` or `unspecified`; null for gauges and summaries.
    pub const AGGREGATION_TEMPORALITY: &str = "aggregation_temporality";
    /// Whether a sum is monotonic; null for other types.
    pub const IS_MONOTONIC: &str = "is_monotonic";
    /// Start of the aggregation interval; null when not sent.
    pub const START_TIMESTAMP: &str = "start_timestamp";
    /// Value of a gauge or sum point (integers widened to f64).
    pub const VALUE: &str = "value";
    /// Observation count of a histogram or summary.
    pub const COUNT: &str = "count";
    /// Sum of observations of a histogram or summary.
    pub const SUM: &str = "sum";
    /// Minimum observation of a histogram.
    pub const MIN: &str = "min";
    /// Maximum observation of a histogram.
    pub const MAX: &str = "max";
    /// Explicit-bucket histogram counts (`len(explicit_bounds) + 1` entries).
    pub const BUCKET_COUNTS: &str = "bucket_counts";
    /// Explicit-bucket histogram upper bounds.
    pub const EXPLICIT_BOUNDS: &str = "explicit_bounds";
    /// Exponential histogram scale.
    pub const EXP_SCALE: &str = "exp_scale";
    /// Exponential histogram zero bucket count.
    pub const EXP_ZERO_COUNT: &str = "exp_zero_count";
    /// Exponential histogram zero bucket threshold.
    pub const EXP_ZERO_THRESHOLD: &str = "exp_zero_threshold";
    /// Index of the first positive bucket.
    pub const EXP_POSITIVE_OFFSET: &str = "exp_positive_offset";
    /// Positive bucket counts.
    pub const EXP_POSITIVE_BUCKET_COUNTS: &str = "exp_positive_bucket_counts";
    /// Index of the first negative bucket.
    pub const EXP_NEGATIVE_OFFSET: &str = "exp_negative_offset";
    /// Negative bucket counts.
    pub const EXP_NEGATIVE_BUCKET_COUNTS: &str = "exp_negative_bucket_counts";
    /// Summary quantiles: list of `{quantile, value}`.
    pub const QUANTILES: &str = "quantiles";
    /// Exemplars: list of `{time, value, trace_id, span_id, attributes}`.
    pub const EXEMPLARS: &str = "exemplars";

    /// Field names inside `events`, `links`, `quantiles`, `exemplars`.
    pub mod nested {
        /// Event or exemplar time.
        pub const TIME: &str = "time";
        /// Event name.
        pub const NAME: &str = "name";
        /// Quantile in [0, 1].
        pub const QUANTILE: &str = "quantile";
        /// Quantile or exemplar value.
        pub const VALUE: &str = "value";
    }
}

/// The signal a batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
}

impl Signal {
    /// All signals, in a stable order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// Lowercase name, as used in paths, table names and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// The Arrow schema of this signal's batches.
    pub fn schema(self) -> SchemaRef {
        match self {
            Signal::Traces => spans_schema(),
            Signal::Logs => logs_schema(),
            Signal::Metrics => metrics_schema(),
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Timestamp(Nanosecond, "UTC")`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The type of `attributes`-like columns: `Map<Utf8, Utf8>` with arrow's
/// default field names (`entries`, `keys`, `values`), unsorted keys.
pub fn attributes_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

fn id_type(len: i32) -> DataType {
    DataType::FixedSizeBinary(len)
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// Fields of one element of the `events` list.
pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new(col::nested::TIME, timestamp_type(), false),
        Field::new(col::nested::NAME, DataType::Utf8, false),
        Field::new(col::ATTRIBUTES, attributes_type(), false),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
    ])
}

/// Fields of one element of the `links` list.
pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new(col::TRACE_ID, id_type(16), false),
        Field::new(col::SPAN_ID, id_type(8), false),
        Field::new(col::TRACE_STATE, DataType::Utf8, true),
        Field::new(col::FLAGS, DataType::UInt32, false),
        Field::new(col::ATTRIBUTES, attributes_type(), false),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
    ])
}

/// Fields of one element of the `quantiles` list.
pub fn quantile_fields() -> Fields {
    Fields::from(vec![
        Field::new(col::nested::QUANTILE, DataType::Float64, false),
        Field::new(col::nested::VALUE, DataType::Float64, false),
    ])
}

/// Fields of one element of the `exemplars` list.
pub fn exemplar_fields() -> Fields {
    Fields::from(vec![
        Field::new(col::nested::TIME, timestamp_type(), false),
        Field::new(col::nested::VALUE, DataType::Float64, false),
        Field::new(col::TRACE_ID, id_type(16), true),
        Field::new(col::SPAN_ID, id_type(8), true),
        Field::new(col::ATTRIBUTES, attributes_type(), false),
    ])
}

fn promoted_fields(level: Level) -> impl Iterator<Item = Field> {
    semconv::PROMOTED
        .iter()
        .filter(move |p| p.level == level)
        .map(|p| {
            let ty = match p.ty {
                PromotedType::Str => DataType::Utf8,
                PromotedType::Int => DataType::Int64,
            };
            // service_name is always filled (`unknown_service` when absent).
            Field::new(p.column, ty, p.column != col::SERVICE_NAME)
        })
}

fn resource_and_scope_fields() -> Vec<Field> {
    let mut f: Vec<Field> = promoted_fields(Level::Resource).collect();
    f.extend([
        Field::new(col::RESOURCE_ATTRIBUTES, attributes_type(), false),
        Field::new(
            col::RESOURCE_DROPPED_ATTRIBUTES_COUNT,
            DataType::UInt32,
            false,
        ),
        Field::new(col::RESOURCE_SCHEMA_URL, DataType::Utf8, true),
        Field::new(col::SCOPE_NAME, DataType::Utf8, true),
        Field::new(col::SCOPE_VERSION, DataType::Utf8, true),
        Field::new(col::SCOPE_ATTRIBUTES, attributes_type(), false),
        Field::new(col::SCOPE_DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(col::SCOPE_SCHEMA_URL, DataType::Utf8, true),
    ]);
    f
}

static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![
        Field::new(col::TRACE_ID, id_type(16), false),
        Field::new(col::SPAN_ID, id_type(8), false),
        Field::new(col::PARENT_SPAN_ID, id_type(8), true),
        Field::new(col::TRACE_STATE, DataType::Utf8, true),
        Field::new(col::FLAGS, DataType::UInt32, false),
        Field::new(col::NAME, DataType::Utf8, false),
        Field::new(col::KIND, DataType::Utf8, false),
        Field::new(col::START_TIME, timestamp_type(), false),
        Field::new(col::END_TIME, timestamp_type(), false),
        Field::new(col::DURATION_NS, DataType::Int64, false),
        Field::new(col::STATUS_CODE, DataType::Utf8, false),
        Field::new(col::STATUS_MESSAGE, DataType::Utf8, true),
    ];
    f.extend(resource_and_scope_fields());
    f.extend(promoted_fields(Level::Span));
    f.extend([
        Field::new(col::ATTRIBUTES, attributes_type(), false),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(
            col::EVENTS,
            list_of(DataType::Struct(event_fields())),
            false,
        ),
        Field::new(col::DROPPED_EVENTS_COUNT, DataType::UInt32, false),
        Field::new(col::LINKS, list_of(DataType::Struct(link_fields())), false),
        Field::new(col::DROPPED_LINKS_COUNT, DataType::UInt32, false),
    ]);
    Arc::new(Schema::new(f))
});

static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![
        Field::new(col::TIMESTAMP, timestamp_type(), false),
        Field::new(col::OBSERVED_TIMESTAMP, timestamp_type(), false),
        Field::new(col::SEVERITY_NUMBER, DataType::Int32, false),
        Field::new(col::SEVERITY_TEXT, DataType::Utf8, true),
        Field::new(col::BODY, DataType::Utf8, true),
        Field::new(col::EVENT_NAME, DataType::Utf8, true),
        Field::new(col::TRACE_ID, id_type(16), true),
        Field::new(col::SPAN_ID, id_type(8), true),
        Field::new(col::FLAGS, DataType::UInt32, false),
    ];
    f.extend(resource_and_scope_fields());
    f.extend([
        Field::new(col::ATTRIBUTES, attributes_type(), false),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
    ]);
    Arc::new(Schema::new(f))
});

static METRICS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let u64_list = list_of(DataType::UInt64);
    let mut f = vec![
        Field::new(col::TIMESTAMP, timestamp_type(), false),
        Field::new(col::START_TIMESTAMP, timestamp_type(), true),
        Field::new(col::METRIC_NAME, DataType::Utf8, false),
        Field::new(col::METRIC_DESCRIPTION, DataType::Utf8, true),
        Field::new(col::METRIC_UNIT, DataType::Utf8, true),
        Field::new(col::METRIC_TYPE, DataType::Utf8, false),
        Field::new(col::AGGREGATION_TEMPORALITY, DataType::Utf8, true),
        Field::new(col::IS_MONOTONIC, DataType::Boolean, true),
        Field::new(col::VALUE, DataType::Float64, true),
        Field::new(col::COUNT, DataType::UInt64, true),
        Field::new(col::SUM, DataType::Float64, true),
        Field::new(col::MIN, DataType::Float64, true),
        Field::new(col::MAX, DataType::Float64, true),
        Field::new(col::BUCKET_COUNTS, u64_list.clone(), true),
        Field::new(col::EXPLICIT_BOUNDS, list_of(DataType::Float64), true),
        Field::new(col::EXP_SCALE, DataType::Int32, true),
        Field::new(col::EXP_ZERO_COUNT, DataType::UInt64, true),
        Field::new(col::EXP_ZERO_THRESHOLD, DataType::Float64, true),
        Field::new(col::EXP_POSITIVE_OFFSET, DataType::Int32, true),
        Field::new(col::EXP_POSITIVE_BUCKET_COUNTS, u64_list.clone(), true),
        Field::new(col::EXP_NEGATIVE_OFFSET, DataType::Int32, true),
        Field::new(col::EXP_NEGATIVE_BUCKET_COUNTS, u64_list, true),
        Field::new(
            col::QUANTILES,
            list_of(DataType::Struct(quantile_fields())),
            true,
        ),
        Field::new(
            col::EXEMPLARS,
            list_of(DataType::Struct(exemplar_fields())),
            false,
        ),
        Field::new(col::FLAGS, DataType::UInt32, false),
    ];
    f.extend(resource_and_scope_fields());
    f.extend([
        Field::new(col::ATTRIBUTES, attributes_type(), false),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
    ]);
    Arc::new(Schema::new(f))
});

/// Schema of span batches (table `spans`).
pub fn spans_schema() -> SchemaRef {
    Arc::clone(&SPANS)
}

/// Schema of log batches (table `logs`).
pub fn logs_schema() -> SchemaRef {
    Arc::clone(&LOGS)
}

/// Schema of metric point batches (table `metrics`): one wide table for all
/// five OTLP point types; columns that do not apply to a type are null.
pub fn metrics_schema() -> SchemaRef {
    Arc::clone(&METRICS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_per_schema() {
        for signal in Signal::ALL {
            let schema = signal.schema();
            let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate column in {signal}");
        }
    }

    #[test]
    fn required_query_columns_exist() {
        let spans = spans_schema();
        for c in [
            "trace_id",
            "span_id",
            "parent_span_id",
            "service_name",
            "name",
            "kind",
            "start_time",
            "end_time",
            "duration_ns",
            "status_code",
            "status_message",
            "attributes",
            "resource_attributes",
            "http_route",
            "db_system",
            "k8s_pod_name",
        ] {
            assert!(spans.field_with_name(c).is_ok(), "spans.{c}");
        }
        let logs = logs_schema();
        for c in [
            "timestamp",
            "severity_number",
            "severity_text",
            "body",
            "service_name",
            "trace_id",
            "span_id",
            "attributes",
            "resource_attributes",
        ] {
            assert!(logs.field_with_name(c).is_ok(), "logs.{c}");
        }
        let metrics = metrics_schema();
        for c in [
            "timestamp",
            "metric_name",
            "metric_type",
            "service_name",
            "value",
            "attributes",
            "resource_attributes",
            "exemplars",
            "exp_scale",
            "quantiles",
        ] {
            assert!(metrics.field_with_name(c).is_ok(), "metrics.{c}");
        }
    }
}
