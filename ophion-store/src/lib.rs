//! # ophion-store
//!
//! Ophion's durable columnar telemetry store. It implements
//! [`ophion_core::TelemetrySink`]: a write is acknowledged only once its
//! bytes are in an fsynced write-ahead log; rows are visible to queries at
//! once from memory, persisted to Parquet on an `object_store` in the
//! background, and queried with SQL through DataFusion.
//!
//! ```text
//!  write(tenant, batch)
//!     │  budget check ── full? ──► Err(Backpressure)   (retryable)
//!     ▼
//!  WAL (group commit, fdatasync) ──► Ok = durable
//!     ▼
//!  buffer (Arrow, per tenant × signal) ◄──────────── queries (MemorySource)
//!     │ snapshot: every flush_interval or flush_bytes
//!     ▼
//!  sort · split by hour · Parquet (zstd, stats, trace_id bloom;
//!     logs: a text index per 8,192 rows, see [`textindex`])
//!     ▼
//!  object_store put ──► catalog commit (+ WAL watermark) ──► WAL truncate
//!                            ▲
//!                  queries ──┘ (files pruned by tenant and time, log
//!                              searches by the text index and without
//!                              regular expressions (`textmatch`);
//!                              percentiles from log-linear buckets
//!                              (`percentile`); footers and page indexes
//!                              cached across queries; GROUP BY one string
//!                              looked up by its view (`groupby`); each
//!                              condition tested once (`scanrules`))
//! ```
//!
//! Metadata lives in SQLite ([`metadata`]): the store's file catalog here
//! by default, and whatever tables other features migrate there themselves
//! (users, keys, tenants, audit log; the AI service's state). The
//! [`catalog`] can live in PostgreSQL instead, shared by several nodes
//! that write one bucket: each sees the others' files at its next query,
//! and one at a time compacts them. Such nodes take roles
//! ([`config::Role`]: ingest, query, compact): query nodes read ingest
//! nodes' rows not yet in Parquet over Arrow Flight (`cluster`), and split
//! scans too large for one of them across all of them with
//! datafusion-distributed (`distributed`). docs/cluster.md tells how to
//! deploy one.
//!
//! Reads go through [`ophion_core::TelemetryQuery`], which [`Store`]
//! implements (and [`MemoryTables`], the same SQL over rows kept in memory,
//! for tests and embedders that need no data directory).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ophion_core::TenantId;
//! use ophion_store::{Store, StoreConfig};
//! let store = Store::open(StoreConfig::in_dir("/tmp/ophion-data")).await?;
//! use ophion_core::TelemetryQuery as _;
//! let out = store.query(&TenantId::default(), "SELECT count(*) FROM spans", vec![]).await?;
//! println!("{} rows", out.rows);
//! # Ok(()) }
//! ```
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `s3`    | S3 and S3-compatible object stores (`object_store/aws`) |

pub mod catalog;
mod cluster;
pub mod config;
mod distributed;
pub mod error;
mod footers;
mod groupby;
mod maintenance;
mod memory;
pub mod metadata;
mod objstore;
mod percentile;
pub mod persist;
pub mod query;
pub mod rollup;
mod scanrules;
mod store;
pub mod textindex;
mod textmatch;
pub mod wal;

pub use config::StoreConfig;
pub use error::{Error, QueryError, Result};
pub use memory::MemoryTables;
pub use ophion_core::QueryOutput;
pub use store::{Store, StoreStats};
