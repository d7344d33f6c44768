//! The AI engine's view of a span, read straight from record batches in
//! the core spans schema ([`ophion_core::Signal::Traces`]), as the store's
//! read seam ([`ophion_core::TelemetryQuery`]) returns them: strings as
//! `Utf8` or `Utf8View`, ids as 16- and 8-byte binary, times as nanosecond
//! timestamps, attributes as a string map.
//!
//! ```
//! use ophion_ai::spans::{SpanInfo, COLUMNS};
//! // A query for the view names exactly these columns:
//! let sql = format!("SELECT {COLUMNS} FROM spans WHERE service_name = 'cart'");
//! assert!(sql.contains("trace_id") && sql.contains("attributes"));
//! assert!(SpanInfo::from_batches(&[]).expect("no rows").is_empty());
//! ```

use arrow_array::{
    Array, MapArray, RecordBatch,
    cast::AsArray,
    types::{Int64Type, TimestampNanosecondType},
};
use arrow_schema::DataType;
use ophion_core::schema::col;
use serde::{Deserialize, Serialize};

/// The columns [`SpanInfo::from_batches`] reads, for a `SELECT` list.
pub const COLUMNS: &str = "trace_id, span_id, parent_span_id, service_name, service_version, \
    name, kind, start_time, duration_ns, status_code, db_system, server_address, attributes";

/// Why batches could not be read as spans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpanError {
    /// A required column is missing or has another type.
    #[error("spans: column {0} is missing or not of the spans schema's type")]
    Column(&'static str),
}

/// What the AI engine needs of a span: the view root cause, tips and RED
/// series read, filled from the core spans table by [`SpanInfo::from_batches`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanInfo {
    /// Trace id (hex).
    pub trace_id: String,
    /// Span id (hex).
    pub span_id: String,
    /// Parent span id (hex); `None` for a root.
    pub parent_id: Option<String>,
    /// `service.name` of the emitting service.
    pub service: String,
    /// Span name (the operation).
    pub name: String,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    pub kind: String,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// Duration in nanoseconds.
    pub duration_ns: i64,
    /// `service.version` of the emitting service, when set.
    pub version: Option<String>,
    /// Status is error.
    pub error: bool,
    /// `db.system` (or `db.system.name`) for database calls.
    pub db_system: Option<String>,
    /// The query text (`db.query.text` or `db.statement`).
    pub db_statement: Option<String>,
    /// Who a client or producer span calls: `peer.service`, else
    /// `server.address` (or the older `net.peer.name`). A database or an
    /// uninstrumented service is known only by this name.
    pub peer: Option<String>,
    /// Request body size in bytes, when recorded.
    pub request_bytes: Option<u64>,
    /// Response body size in bytes, when recorded.
    pub response_bytes: Option<u64>,
}

/// A string column in any of Arrow's string layouts.
enum Text<'a> {
    Utf8(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
}

impl Text<'_> {
    fn get(&self, row: usize) -> Option<&str> {
        let (nulls, value) = match self {
            Text::Utf8(a) => (a.is_null(row), a.value(row)),
            Text::Large(a) => (a.is_null(row), a.value(row)),
            Text::View(a) => (a.is_null(row), a.value(row)),
        };
        (!nulls).then_some(value)
    }
}

fn text<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<Option<Text<'a>>, SpanError> {
    let Some(c) = batch.column_by_name(name) else {
        return Ok(None);
    };
    Ok(Some(match c.data_type() {
        DataType::Utf8 => Text::Utf8(c.as_string::<i32>()),
        DataType::LargeUtf8 => Text::Large(c.as_string::<i64>()),
        DataType::Utf8View => Text::View(c.as_string_view()),
        _ => return Err(SpanError::Column(name)),
    }))
}

fn required<T>(v: Option<T>, name: &'static str) -> Result<T, SpanError> {
    v.ok_or(SpanError::Column(name))
}

/// The first of `keys` present in row `row` of a string map, and its value.
fn map_value<'a>(map: &'a MapArray, row: usize, keys: &[&str]) -> Option<&'a str> {
    if map.is_null(row) {
        return None;
    }
    let offsets = map.value_offsets();
    let (start, end) = (
        usize::try_from(offsets[row]).ok()?,
        usize::try_from(offsets[row + 1]).ok()?,
    );
    let (k, v) = (
        map.keys().as_string_opt::<i32>()?,
        map.values().as_string_opt::<i32>()?,
    );
    keys.iter().find_map(|want| {
        (start..end)
            .find(|&i| k.value(i) == *want && !v.is_null(i))
            .map(|i| v.value(i))
    })
}

fn id_hex(c: &dyn Array, row: usize) -> Option<String> {
    let ids = c.as_fixed_size_binary_opt()?;
    if ids.is_null(row) {
        return None;
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bytes = ids.value(row);
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    Some(out)
}

impl SpanInfo {
    /// The spans in `batches`. Required: `trace_id`, `span_id`,
    /// `service_name`, `name`, `start_time` and `duration_ns`; the other
    /// [`COLUMNS`] are read when present. Sizes and statements come from
    /// the `attributes` map (`http.request.body.size` or the older
    /// `http.request_content_length`, `db.query.text` or `db.statement`,
    /// `peer.service`, `server.address` or `net.peer.name`).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<SpanInfo>, SpanError> {
        let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for b in batches {
            let trace = required(b.column_by_name(col::TRACE_ID), col::TRACE_ID)?;
            let span = required(b.column_by_name(col::SPAN_ID), col::SPAN_ID)?;
            let parent = b.column_by_name(col::PARENT_SPAN_ID);
            let service = required(text(b, col::SERVICE_NAME)?, col::SERVICE_NAME)?;
            let name = required(text(b, col::NAME)?, col::NAME)?;
            let version = text(b, "service_version")?;
            let kind = text(b, col::KIND)?;
            let status = text(b, col::STATUS_CODE)?;
            let db_system = text(b, "db_system")?;
            let server_address = text(b, "server_address")?;
            let start = required(b.column_by_name(col::START_TIME), col::START_TIME)?
                .as_primitive_opt::<TimestampNanosecondType>()
                .ok_or(SpanError::Column(col::START_TIME))?;
            let duration = required(b.column_by_name(col::DURATION_NS), col::DURATION_NS)?
                .as_primitive_opt::<Int64Type>()
                .ok_or(SpanError::Column(col::DURATION_NS))?;
            let attributes = match b.column_by_name(col::ATTRIBUTES) {
                Some(c) => Some(c.as_map_opt().ok_or(SpanError::Column(col::ATTRIBUTES))?),
                None => None,
            };
            for row in 0..b.num_rows() {
                let attr = |keys: &[&str]| attributes.and_then(|m| map_value(m, row, keys));
                let size = |keys: &[&str]| attr(keys).and_then(|v| v.trim().parse().ok());
                out.push(SpanInfo {
                    trace_id: id_hex(trace.as_ref(), row).unwrap_or_default(),
                    span_id: id_hex(span.as_ref(), row).unwrap_or_default(),
                    parent_id: parent.and_then(|p| id_hex(p.as_ref(), row)),
                    service: service.get(row).unwrap_or_default().to_owned(),
                    name: name.get(row).unwrap_or_default().to_owned(),
                    kind: kind
                        .as_ref()
                        .and_then(|k| k.get(row))
                        .unwrap_or_default()
                        .to_owned(),
                    start_ns: start.value(row),
                    duration_ns: duration.value(row),
                    version: version.as_ref().and_then(|v| v.get(row)).map(str::to_owned),
                    error: status.as_ref().and_then(|s| s.get(row)) == Some("error"),
                    db_system: db_system
                        .as_ref()
                        .and_then(|v| v.get(row))
                        .map(str::to_owned),
                    db_statement: attr(&["db.query.text", "db.statement"]).map(str::to_owned),
                    peer: attr(&["peer.service"])
                        .or_else(|| server_address.as_ref().and_then(|v| v.get(row)))
                        .or_else(|| attr(&["server.address", "net.peer.name"]))
                        .map(str::to_owned),
                    request_bytes: size(&["http.request.body.size", "http.request_content_length"]),
                    response_bytes: size(&[
                        "http.response.body.size",
                        "http.response_content_length",
                    ]),
                });
            }
        }
        Ok(out)
    }

    /// Whether the span is where a request enters its service: a server or
    /// consumer span, or a root.
    pub fn is_entry(&self) -> bool {
        self.kind == "server" || self.kind == "consumer" || self.parent_id.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, FixedSizeBinaryArray, Int64Array, StringArray, StringViewArray,
        TimestampNanosecondArray,
        builder::{MapBuilder, StringBuilder},
    };

    use super::*;

    #[test]
    fn reads_the_core_columns_in_any_string_layout() {
        let mut attrs = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        attrs.keys().append_value("db.statement");
        attrs.values().append_value("SELECT 1");
        attrs.keys().append_value("http.response.body.size");
        attrs.values().append_value("2048");
        attrs.append(true).expect("row 0");
        attrs.append(false).expect("row 1");
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "trace_id",
                Arc::new(
                    FixedSizeBinaryArray::try_from_iter([[1u8; 16], [1u8; 16]].iter())
                        .expect("ids"),
                ),
            ),
            (
                "span_id",
                Arc::new(
                    FixedSizeBinaryArray::try_from_iter([[2u8; 8], [3u8; 8]].iter()).expect("ids"),
                ),
            ),
            (
                "parent_span_id",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        [None, Some([2u8; 8])].into_iter(),
                        8,
                    )
                    .expect("ids"),
                ),
            ),
            (
                "service_name",
                Arc::new(StringViewArray::from(vec!["front", "db-caller"])),
            ),
            ("name", Arc::new(StringArray::from(vec!["GET /", "query"]))),
            (
                "kind",
                Arc::new(StringViewArray::from(vec!["server", "client"])),
            ),
            (
                "status_code",
                Arc::new(StringArray::from(vec![Some("ok"), Some("error")])),
            ),
            (
                "start_time",
                Arc::new(TimestampNanosecondArray::from(vec![10, 20]).with_timezone("UTC")),
            ),
            ("duration_ns", Arc::new(Int64Array::from(vec![100, 50]))),
            ("attributes", Arc::new(attrs.finish())),
        ];
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let spans = SpanInfo::from_batches(&[batch]).expect("spans");
        assert_eq!(spans.len(), 2);
        let (root, child) = (&spans[0], &spans[1]);
        assert_eq!(root.trace_id, "01".repeat(16));
        assert_eq!(root.parent_id, None);
        assert!(root.is_entry() && !child.is_entry());
        assert_eq!(child.parent_id.as_deref(), Some("02".repeat(8).as_str()));
        assert_eq!(root.db_statement.as_deref(), Some("SELECT 1"));
        assert_eq!(root.response_bytes, Some(2048));
        assert_eq!(child.db_statement, None);
        assert!(child.error && !root.error);
        assert_eq!((child.start_ns, child.duration_ns), (20, 50));
        assert_eq!(root.version, None, "an absent optional column is None");
    }

    #[test]
    fn a_missing_required_column_is_an_error() {
        let batch = RecordBatch::try_from_iter([(
            "name",
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        )])
        .expect("batch");
        assert_eq!(
            SpanInfo::from_batches(&[batch]),
            Err(SpanError::Column("trace_id"))
        );
    }
}
