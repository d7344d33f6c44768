//! Receiver configuration.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Where the receiver listens and what it accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// OTLP/gRPC listen address (default `127.0.0.1:4317`).
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (default `127.0.0.1:4318`).
    pub http_addr: SocketAddr,
    /// Largest request accepted, in bytes, measured after decompression
    /// (default 20 MiB, the OTLP recommendation). Larger requests get HTTP 413
    /// or gRPC `RESOURCE_EXHAUSTED`.
    pub max_body_bytes: usize,
    /// Requests decoded and written at the same time, over both transports;
    /// more get a retryable "overloaded" answer (default 64).
    pub max_concurrent_requests: usize,
    /// Seconds a client is asked to wait before retrying when overloaded.
    pub retry_after_secs: u64,
    /// Per-item limits.
    pub limits: Limits,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_body_bytes: 20 * 1024 * 1024,
            max_concurrent_requests: 64,
            retry_after_secs: 1,
            limits: Limits::default(),
        }
    }
}

impl ReceiverConfig {
    /// Checks that the values make sense together.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: &str| Err(crate::Error::Config(what.to_string()));
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes must be at least 1024");
        }
        if self.max_concurrent_requests == 0 {
            return bad("max_concurrent_requests must be at least 1");
        }
        self.limits.validate()
    }
}

/// Limits applied to each span, log record or metric point.
///
/// Over a limit, Ophion keeps the item and records what it cut: attributes
/// beyond the count are dropped (added to `dropped_attributes_count`), long
/// values are truncated on a UTF-8 boundary, values nested too deep are
/// dropped like attributes. Items whose time is outside the window are
/// rejected and reported to the client as a partial success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Attributes kept per item, resource or scope (default 128, the SDK default).
    pub max_attributes_per_item: usize,
    /// Bytes kept of one attribute value or log body (default 64 KiB).
    pub max_attribute_value_bytes: usize,
    /// Nesting depth of array / key-value-list values (default 16).
    pub max_value_depth: usize,
    /// Events kept per span (default 128).
    pub max_events_per_span: usize,
    /// Links kept per span (default 128).
    pub max_links_per_span: usize,
    /// Oldest accepted item, in seconds before now (default 7 days, like
    /// Loki's `reject_old_samples_max_age`; 0 = no lower bound).
    pub max_age_secs: u64,
    /// Furthest accepted item in the future, in seconds (default 600, like
    /// Loki's creation grace period; 0 = no upper bound beyond the year 2262
    /// limit of nanosecond timestamps).
    pub max_future_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attributes_per_item: 128,
            max_attribute_value_bytes: 64 * 1024,
            max_value_depth: 16,
            max_events_per_span: 128,
            max_links_per_span: 128,
            max_age_secs: 7 * 24 * 3600,
            max_future_secs: 600,
        }
    }
}

impl Limits {
    /// Checks the limits.
    pub fn validate(&self) -> crate::Result<()> {
        if self.max_attribute_value_bytes < 16 {
            return Err(crate::Error::Config(
                "limits.max_attribute_value_bytes must be at least 16".into(),
            ));
        }
        if self.max_value_depth == 0 || self.max_value_depth > 64 {
            return Err(crate::Error::Config(
                "limits.max_value_depth must be between 1 and 64".into(),
            ));
        }
        Ok(())
    }

    /// Limits without a time window, for replaying old data and for tests.
    pub fn without_time_window(mut self) -> Self {
        self.max_age_secs = 0;
        self.max_future_secs = 0;
        self
    }
}
