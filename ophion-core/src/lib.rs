//! # ophion-core
//!
//! The data model every Ophion crate shares, and the traits they meet
//! through. It depends on Arrow's array and schema crates only: no query
//! engine, no network stack.
//!
//! ```text
//!  OTLP client ──► ophion-receiver ──(TelemetryBatch)──► dyn TelemetrySink
//!                                                          ├─ ophion-store (WAL + Parquet)
//!                                                          ├─ forwarder (ophion-agent)
//!                                                          └─ MemorySink (tests)
//!
//!  API, AI watch, copilot, alerts ──(SQL + Params)──► dyn TelemetryQuery
//!                                                          ├─ ophion-store (buffer + Parquet)
//!                                                          └─ ophion_store::MemoryTables (tests)
//! ```
//!
//! - [`schema`]: Arrow schemas of spans, logs and metric points; the only
//!   place column names are spelled ([`schema::col`]).
//! - [`semconv`]: which semantic-convention attributes become typed columns.
//! - [`TelemetrySink`]: async write of a batch; `Ok` means durable; errors
//!   say whether a retry can help.
//! - [`TelemetryQuery`]: the read side: one read-only SQL query for one
//!   tenant, with bound [`Param`]s, answered as Arrow record batches.
//! - [`Clock`]: injected time. [`TenantId`]: who owns the data.
//! - `testing` (feature): seeded generators of realistic OTLP telemetry
//!   shared by tests and benchmarks.
//!
//! ```
//! use ophion_core::{schema::col, Signal};
//! let spans = Signal::Traces.schema();
//! assert!(spans.field_with_name(col::TRACE_ID).is_ok());
//! assert!(spans.field_with_name("http_route").is_ok()); // promoted attribute
//! ```
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `testing` | [`testing`]: seeded OTLP generators (pulls `opentelemetry-proto`, `rand`) |
//!
//! `ophion-core` has no runtime configuration of its own; limits on what a
//! receiver accepts live in `ophion-receiver`'s config.

pub mod clock;
pub mod error;
pub mod histogram;
pub mod query;
pub mod schema;
pub mod semconv;
pub mod sink;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use histogram::Histogram;
pub use query::{Param, QueryError, QueryOutput, TelemetryQuery};
pub use schema::Signal;
pub use sink::{MemorySink, SinkError, TelemetryBatch, TelemetrySink};
pub use tenant::TenantId;
