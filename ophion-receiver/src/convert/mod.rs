//! Pure conversion of OTLP requests into Ophion's Arrow batches.
//!
//! No I/O and no clock: the caller passes the time window, so the functions
//! are deterministic, unit-testable and fuzzable. Each function validates
//! every item, converts the valid ones and counts the invalid ones by
//! reason, which becomes the OTLP partial-success answer.

mod attrs;
mod logs;
mod metrics;
mod traces;

use std::{collections::BTreeMap, fmt::Write as _};

use arrow_array::RecordBatch;

pub use logs::logs;
pub use metrics::metrics;
pub use traces::{kind_name, status_name, traces};

use crate::config::Limits;

/// What a conversion produced.
#[derive(Debug)]
pub struct Converted {
    /// The rows of the valid items; `None` when there were none.
    pub batch: Option<RecordBatch>,
    /// Items that were rejected, by reason.
    pub rejected: Rejections,
    /// What the limits cut from accepted items.
    pub stats: ConvertStats,
    /// The time window the items were checked against.
    pub window: TimeWindow,
}

impl Converted {
    /// Rows in the batch.
    pub fn accepted(&self) -> usize {
        self.batch.as_ref().map_or(0, RecordBatch::num_rows)
    }
}

/// Counts of what limits changed in accepted items.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertStats {
    /// Attributes dropped by the count or depth limit.
    pub dropped_attributes: u64,
    /// Values truncated to `max_attribute_value_bytes`.
    pub truncated_values: u64,
    /// Events and links dropped by their limits or for invalid ids.
    pub dropped_events_and_links: u64,
    /// Log records kept without a trace link because their ids were invalid.
    pub unlinked_logs: u64,
}

/// Why an item was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Trace id not 16 bytes, or all zero.
    InvalidTraceId,
    /// Span id not 8 bytes, or all zero.
    InvalidSpanId,
    /// Parent span id present but not 8 bytes, or all zero.
    InvalidParentSpanId,
    /// The required timestamp is 0.
    MissingTimestamp,
    /// The timestamp is outside the accepted window.
    TimestampOutOfWindow,
    /// A span ends before it starts.
    EndBeforeStart,
    /// A number point without a value.
    MissingValue,
    /// A histogram whose bucket counts do not match its bounds.
    InvalidBuckets,
    /// A metric without a name.
    MissingMetricName,
    /// Ophion failed to build the rows (a bug; logged).
    Internal,
}

impl Reason {
    fn describe(self) -> &'static str {
        match self {
            Reason::InvalidTraceId => "invalid trace_id (must be 16 bytes, not all zero)",
            Reason::InvalidSpanId => "invalid span_id (must be 8 bytes, not all zero)",
            Reason::InvalidParentSpanId => {
                "invalid parent_span_id (must be empty or 8 bytes, not all zero)"
            }
            Reason::MissingTimestamp => "timestamp missing (0)",
            Reason::TimestampOutOfWindow => "timestamp outside the accepted window",
            Reason::EndBeforeStart => "end_time_unix_nano before start_time_unix_nano",
            Reason::MissingValue => "data point without a value",
            Reason::InvalidBuckets => "bucket_counts must have one more entry than explicit_bounds",
            Reason::MissingMetricName => "metric without a name",
            Reason::Internal => "internal conversion error (see server log)",
        }
    }
}

/// Rejected items counted by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections(BTreeMap<Reason, u64>);

impl Rejections {
    /// Counts one rejected item.
    pub fn add(&mut self, reason: Reason) {
        *self.0.entry(reason).or_default() += 1;
    }

    /// Counts `n` rejected items.
    pub fn add_n(&mut self, reason: Reason, n: u64) {
        if n > 0 {
            *self.0.entry(reason).or_default() += n;
        }
    }

    /// Total rejected items.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Count for one reason.
    pub fn count(&self, reason: Reason) -> u64 {
        self.0.get(&reason).copied().unwrap_or(0)
    }

    /// Counts by reason.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        self.0.iter().map(|(r, n)| (*r, *n))
    }

    /// A readable summary for the client, e.g.
    /// `"2 spans rejected: 2 invalid trace_id (...)"`; empty when none.
    pub fn message(&self, noun: &str, window: &TimeWindow) -> String {
        let total = self.total();
        if total == 0 {
            return String::new();
        }
        let mut msg = format!("{total} {noun} rejected:");
        for (i, (reason, n)) in self.0.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            let _ = write!(msg, "{sep}{n} {}", reason.describe());
            if *reason == Reason::TimestampOutOfWindow {
                let _ = write!(msg, " [{}, {}] ns", window.min_ns, window.max_ns);
            }
        }
        msg
    }
}

/// Accepted item times, in Unix nanoseconds, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Earliest accepted time.
    pub min_ns: i64,
    /// Latest accepted time.
    pub max_ns: i64,
}

impl TimeWindow {
    /// Every representable time (1970 to 2262).
    pub const ALL: TimeWindow = TimeWindow {
        min_ns: 1,
        max_ns: i64::MAX,
    };

    /// The window the limits allow around `now_ns`.
    pub fn around(now_ns: i64, limits: &Limits) -> Self {
        let secs = |s: u64| {
            i64::try_from(s)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000_000)
        };
        let min_ns = if limits.max_age_secs == 0 {
            1
        } else {
            now_ns.saturating_sub(secs(limits.max_age_secs)).max(1)
        };
        let max_ns = if limits.max_future_secs == 0 {
            i64::MAX
        } else {
            now_ns.saturating_add(secs(limits.max_future_secs))
        };
        Self { min_ns, max_ns }
    }

    /// Checks a required timestamp and turns it into Arrow's `i64`.
    pub fn check(&self, ns: u64) -> Result<i64, Reason> {
        if ns == 0 {
            return Err(Reason::MissingTimestamp);
        }
        match i64::try_from(ns) {
            Ok(t) if t >= self.min_ns && t <= self.max_ns => Ok(t),
            _ => Err(Reason::TimestampOutOfWindow),
        }
    }
}

/// Whether an id has the right length and is not all zero.
pub(crate) fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

/// The context shared by the three conversions.
pub(crate) struct Ctx<'a> {
    pub(crate) limits: &'a Limits,
    pub(crate) window: TimeWindow,
    pub(crate) stats: ConvertStats,
    pub(crate) rejected: Rejections,
    /// Scratch buffer for rendering non-string values.
    pub(crate) scratch: String,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(limits: &'a Limits, window: TimeWindow) -> Self {
        Self {
            limits,
            window,
            stats: ConvertStats::default(),
            rejected: Rejections::default(),
            scratch: String::new(),
        }
    }

    /// Builds the batch of the `rows` accepted items and wraps up. A batch
    /// that does not match its schema is a bug: its rows are rejected as
    /// internal errors and logged, rather than panicking.
    pub(crate) fn finish(
        mut self,
        rows: usize,
        build: impl FnOnce() -> Result<RecordBatch, arrow_schema::ArrowError>,
    ) -> Converted {
        let batch = if rows == 0 {
            None
        } else {
            match build() {
                Ok(batch) => Some(batch),
                Err(e) => {
                    tracing::error!(error = %e, "conversion produced a batch that does not match its schema");
                    self.rejected.add_n(Reason::Internal, rows as u64);
                    None
                }
            }
        };
        Converted {
            batch,
            rejected: self.rejected,
            stats: self.stats,
            window: self.window,
        }
    }
}

#[cfg(test)]
mod tests;
