//! The read-side contract, the twin of [`crate::TelemetrySink`]: whoever
//! keeps telemetry (the store, an in-memory table set in a test, later a
//! remote querier) answers read-only SQL for one tenant through
//! [`TelemetryQuery`], and whoever reads it (the API, the AI watch, the
//! copilot, alert rules) depends on this trait only.

use std::{fmt::Debug, time::Duration};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::TenantId;

/// `text` as an SQL string literal (`'it''s'`), for queries built from
/// values the program chose or shows to users as evidence. Never run user
/// input this way: bind it as a [`Param`].
pub fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A value bound to a named placeholder (`$service`, `$from`). Values never
/// pass through the SQL text, so user input bound this way cannot change
/// what a query does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Param {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 32-bit integer (e.g. `severity_number`).
    Int32(i32),
    /// A 64-bit integer (e.g. `duration_ns`).
    Int64(i64),
    /// A double.
    Float64(f64),
    /// UTF-8 text.
    Text(String),
    /// A UTC timestamp in nanoseconds since the epoch (e.g. `start_time`).
    TimestampNs(i64),
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_owned())
    }
}

/// Named parameters of one query.
pub type Params = Vec<(String, Param)>;

/// The rows of a query and what it cost.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Result schema (also when there are no rows).
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
    /// Rows returned.
    pub rows: usize,
    /// Whether rows were cut off at the row cap.
    pub truncated: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// Why a query was refused or failed. Messages say what to do and never
/// contain SQL engine internals, so an API may show them as they are
/// (except [`QueryError::Internal`], which it should log and hide).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Not a single read-only query (DDL, DML, `SET`, several statements).
    #[error("only a single read-only SELECT query is allowed: {0}")]
    NotReadOnly(String),
    /// The SQL does not parse or plan (unknown table, column, function), or
    /// a parameter does not fit it.
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The query ran longer than allowed.
    #[error("query timed out after {0:?}; narrow the time range or add filters")]
    Timeout(Duration),
    /// The query needed more memory than allowed.
    #[error("query exceeded its memory limit; narrow the time range, add filters or aggregate")]
    OutOfMemory,
    /// A derived table (the span rollups) does not cover what the query
    /// asks for (a range older than it keeps, or it is still being
    /// rebuilt); the same question over `spans` works.
    #[error("{0}")]
    NotCovered(String),
    /// Storage is temporarily unavailable (object store down, shutting
    /// down). Retryable.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. Not retryable.
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// Whether the same query can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueryError::Unavailable(_))
    }
}

/// Read-only SQL over one tenant's telemetry.
///
/// # Contract
///
/// - **Tables**: `spans`, `logs` and `metrics`, with the columns of
///   [`crate::Signal::schema`] (strings may come back as `Utf8View`; read
///   them through `arrow_cast` or match both). `trace_id = '<32 hex>'`
///   compares with the binary ids, and `attributes['key']` reads a map
///   value or the column a key was promoted to. An implementation may
///   offer derived tables too (the store's per-minute span rollups,
///   `span_minutes`, `service_minutes` and `service_edges`); a range they do not cover is
///   refused with [`QueryError::NotCovered`], never answered in part.
/// - **Tenant isolation**: a query sees `tenant`'s rows and nothing else,
///   whatever its text says. Implementations enforce it by what they
///   register, never by rewriting the text.
/// - **Read-only**: exactly one query; DDL, DML, `COPY`, `SET` and several
///   statements are refused with [`QueryError::NotReadOnly`].
/// - **Limits**: every query runs under the implementation's timeout,
///   memory limit and row cap; rows past the cap are cut off and
///   [`QueryOutput::truncated`] says so.
/// - **Freshness**: an `Ok` from [`crate::TelemetrySink::write`] on the same
///   implementation is visible to every query that starts after it.
/// - **Concurrency and cancellation**: queries may run concurrently from
///   any task; dropping the future stops the query and frees its memory.
/// - **Errors**: [`QueryError::is_retryable`] says whether to try again.
#[async_trait::async_trait]
pub trait TelemetryQuery: Debug + Send + Sync {
    /// Runs one read-only query for `tenant`, with `params` bound to its
    /// named placeholders.
    async fn query(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Params,
    ) -> Result<QueryOutput, QueryError>;

    /// Every span of one trace, oldest first: the fast path behind "trace by
    /// id" (implementations may use an index or a bloom filter).
    async fn trace(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let mut hex = String::with_capacity(32);
        for b in trace_id {
            hex.push_str(&format!("{b:02x}"));
        }
        let sql = format!("SELECT * FROM spans WHERE trace_id = '{hex}' ORDER BY start_time");
        Ok(self.query(tenant, &sql, Vec::new()).await?.batches)
    }

    /// A cheap hint: `true` when nothing was ever written or stored, so a
    /// background task can skip querying. `false` is always correct.
    fn is_empty(&self) -> bool {
        false
    }
}
