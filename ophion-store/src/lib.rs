//! # ophion-store
//!
//! The durable columnar store behind Ophion (not implemented yet; see the
//! store issue). It will implement [`ophion_core::TelemetrySink`]: a write is
//! acknowledged once it is in an fsynced write-ahead log, kept in Arrow
//! buffers that queries see at once, flushed to Parquet on `object_store`,
//! and queried with SQL through DataFusion. Metadata (users, keys, alert
//! rules, audit log) lives in SQLite.
