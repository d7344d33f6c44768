//! Reading telemetry: everything the API, the AI service and later
//! features (copilot, alerts, healing) share to ask the read seam,
//! [`ophion_core::TelemetryQuery`], for one tenant's rows.
//!
//! - [`Reader`]: the seam plus the query latency histogram `/metrics`
//!   reports; cheap to clone.
//! - [`Params`]: named parameters and the `WHERE` conditions using them;
//!   user values are always bound, never written into SQL text.
//! - [`Range`]: a `[from, to)` nanosecond range and its filter.
//! - [`json`]: Arrow values as JSON; [`metrics`]: metric points as series;
//!   [`time`]: times and ranges as users write them; [`rollup`]: RED over
//!   the store's per-minute span rollups.
//!
//! Nothing here knows about HTTP: errors are [`ReadError`]s, which the API
//! turns into status codes.

pub mod json;
pub mod metrics;
pub mod rollup;
pub mod time;

use std::{sync::Arc, time::Instant};

use ophion_core::{
    Histogram, TelemetryQuery, TenantId,
    query::{Param, QueryError, QueryOutput},
};
use serde_json::Value;

/// Why a read could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A request parameter that cannot be used; the message says why.
    #[error("{0}")]
    BadRequest(String),
    /// The query was refused or failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// The read seam, with each query's latency recorded.
#[derive(Debug, Clone)]
pub struct Reader {
    query: Arc<dyn TelemetryQuery>,
    latency: Arc<Histogram>,
}

impl Reader {
    /// Reads through `query`.
    pub fn new(query: Arc<dyn TelemetryQuery>) -> Self {
        Self {
            query,
            latency: Arc::default(),
        }
    }

    /// Runs `sql` for `tenant` with `params` bound.
    pub async fn sql(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: &Params,
    ) -> Result<QueryOutput, QueryError> {
        let started = Instant::now();
        let out = self.query.query(tenant, sql, params.values.clone()).await;
        self.latency.observe(started.elapsed());
        out
    }

    /// See [`TelemetryQuery::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.query.is_empty()
    }

    /// The latency of every query run through this reader (and its clones).
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }
}

/// Which spans are a service's requests: entry spans, kind `server` or
/// `consumer`, or spans without a parent (a root `internal` span is a
/// request too). The services API and the copilot count requests this way.
pub const ENTRY_SPANS: &str = "(kind IN ('server', 'consumer') OR parent_span_id IS NULL)";

/// Named SQL parameters, and the `WHERE` conditions that use them.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: Vec<(String, Param)>,
    conditions: Vec<String>,
}

impl Params {
    /// Binds `$name` to `value`.
    pub fn bind(&mut self, name: &str, value: Param) -> &mut Self {
        self.values.push((name.to_owned(), value));
        self
    }

    /// Adds a condition (SQL using bound names, never user text).
    pub fn when(&mut self, condition: impl Into<String>) -> &mut Self {
        self.conditions.push(condition.into());
        self
    }

    /// Adds `condition` binding `$name` to `value`.
    pub fn filter(&mut self, condition: &str, name: &str, value: Param) -> &mut Self {
        self.bind(name, value);
        self.when(condition)
    }

    /// The bound values as JSON (times as RFC 3339 text), to show with the
    /// SQL that used them.
    pub fn as_json(&self) -> serde_json::Map<String, Value> {
        self.values
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Param::Null => Value::Null,
                    Param::Bool(b) => Value::Bool(*b),
                    Param::Int32(i) => (*i).into(),
                    Param::Int64(i) => (*i).into(),
                    Param::Float64(f) => (*f).into(),
                    Param::Text(t) => Value::String(t.clone()),
                    Param::TimestampNs(ns) => ts_text(*ns),
                    _ => Value::Null,
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The conditions joined with `AND` (`TRUE` when there are none).
    pub fn conditions(&self) -> String {
        if self.conditions.is_empty() {
            "TRUE".into()
        } else {
            self.conditions.join(" AND ")
        }
    }
}

/// A UTF-8 text parameter.
pub fn text(v: &str) -> Param {
    Param::Text(v.to_owned())
}

/// A UTC nanosecond timestamp parameter.
pub fn ts(ns: i64) -> Param {
    Param::TimestampNs(ns)
}

/// A resolved time range, `[from, to)` in unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First nanosecond in the range.
    pub from: i64,
    /// First nanosecond after it.
    pub to: i64,
}

impl Range {
    /// Seconds covered.
    pub fn secs(&self) -> f64 {
        (self.to - self.from) as f64 / 1e9
    }

    /// `$from` and `$to` bound to the range, with the conditions
    /// `column >= $from AND column < $to`.
    pub fn filter(&self, column: &str) -> Params {
        let mut p = Params::default();
        p.filter(&format!("{column} >= $from"), "from", ts(self.from))
            .filter(&format!("{column} < $to"), "to", ts(self.to));
        p
    }
}

/// Now, in unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A nanosecond time as RFC 3339 text.
pub fn ts_text(ns: i64) -> Value {
    let a = arrow_array::TimestampNanosecondArray::from(vec![ns]).with_timezone("UTC");
    json::value(&a, 0)
}

/// An attribute key safe to write inside `attributes['...']`: letters,
/// digits and `._-/:`.
pub fn attribute_key(key: &str) -> Result<&str, ReadError> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
    if ok {
        Ok(key)
    } else {
        Err(ReadError::BadRequest(format!(
            "attribute key `{key}`: use letters, digits and . _ - / :"
        )))
    }
}

/// `key=value` (or `key:value`) attribute filters.
pub fn attribute_filter(text: &str) -> Result<(&str, &str), ReadError> {
    let (k, v) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| {
            ReadError::BadRequest(format!("attribute filter `{text}`: use key=value"))
        })?;
    Ok((attribute_key(k.trim())?, v.trim()))
}

/// A lowercase-hex id of `len` bytes.
pub fn hex_id(text: &str, len: usize, what: &str) -> Result<String, ReadError> {
    let t = text.trim().to_ascii_lowercase();
    if t.len() == len * 2 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err(ReadError::BadRequest(format!(
            "{what} `{text}` must be {} hex characters",
            len * 2
        )))
    }
}
