//! `ophion-agent`'s options. Every option lives in [`AgentConfig`];
//! `docs/agent.example.toml` documents each one and a test parses it.

use std::{net::SocketAddr, path::PathBuf};

use ophion_receiver::ReceiverConfig;
use serde::{Deserialize, Serialize};

use crate::export::Protocol;

/// Everything `ophion-agent` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The queue and log checkpoints live here.
    pub data_dir: PathBuf,
    /// Health (`/health`) and the agent's own `/metrics`.
    pub admin_addr: SocketAddr,
    /// Where applications send: OTLP/gRPC and OTLP/HTTP listeners and
    /// their limits.
    pub receiver: Listen,
    /// The server the agent sends to.
    pub server: ServerTarget,
    /// The on-disk queue.
    pub queue: QueueConfig,
    /// The memory bound.
    pub memory: MemoryConfig,
    /// Log files to read.
    pub logs: crate::logs::LogsConfig,
    /// Host metrics.
    pub host_metrics: crate::host::HostMetricsConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ophion-agent-data"),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 13133)),
            receiver: Listen::default(),
            server: ServerTarget::default(),
            queue: QueueConfig::default(),
            memory: MemoryConfig::default(),
            logs: crate::logs::LogsConfig::default(),
            host_metrics: crate::host::HostMetricsConfig::default(),
        }
    }
}

/// `[receiver]`: where applications send. Items are checked by the
/// server when they arrive there (the agent forwards what it received,
/// unconverted), so only the transport's limits are the agent's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// OTLP/gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    pub http_addr: SocketAddr,
    /// Largest request accepted, bytes after decompression.
    pub max_body_bytes: usize,
    /// Requests received at once; more get a retryable answer.
    pub max_concurrent_requests: usize,
    /// Seconds a client is asked to wait before retrying.
    pub retry_after_secs: u64,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            // At most 16 requests of 8 MiB in memory at once.
            max_body_bytes: 8 << 20,
            max_concurrent_requests: 16,
            retry_after_secs: 1,
        }
    }
}

impl Listen {
    /// As the receiver's configuration.
    pub fn receiver(&self) -> ReceiverConfig {
        ReceiverConfig {
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            max_body_bytes: self.max_body_bytes,
            max_concurrent_requests: self.max_concurrent_requests,
            retry_after_secs: self.retry_after_secs,
            ..ReceiverConfig::default()
        }
    }
}

/// `[server]`: the OTLP endpoint the agent forwards to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTarget {
    /// The server's OTLP endpoint: `http://host:4317` (gRPC) or
    /// `http://host:4318` (HTTP).
    pub endpoint: String,
    /// `grpc` or `http-protobuf`; unset: gRPC on port 4317, HTTP on
    /// 4318, and on any other port whichever the server answers.
    pub protocol: Option<Protocol>,
    /// The ingest key sent as `Authorization: Bearer` (unset: none).
    pub ingest_key: Option<String>,
    /// Seconds an export may take before it is retried.
    pub timeout_secs: u64,
    /// Largest export, in protobuf bytes before compression: queued
    /// requests are merged up to this size.
    pub max_batch_bytes: u64,
    /// The longest wait between retries, seconds (backoff doubles from
    /// 250 ms up to it; a server's `Retry-After` is honoured up to 10
    /// times it).
    pub max_backoff_secs: u64,
}

impl Default for ServerTarget {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:4317".into(),
            protocol: None,
            ingest_key: None,
            timeout_secs: 10,
            max_batch_bytes: 2 << 20,
            max_backoff_secs: 30,
        }
    }
}

/// `[queue]`: the on-disk queue (see [`crate::queue`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Bytes of disk the queue may take; when full, clients are asked to
    /// retry (HTTP 503, gRPC `UNAVAILABLE`).
    pub max_bytes: u64,
    /// Size of one segment file.
    pub segment_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
        }
    }
}

/// `[memory]`: resident memory the agent keeps under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Above this resident size the receivers ask clients to retry
    /// (0: no bound). What the agent holds in memory is bounded anyway by
    /// the receiver's concurrent requests times its body limit plus one
    /// export batch; this catches the rest.
    pub limit_bytes: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            limit_bytes: 256 << 20,
        }
    }
}

impl AgentConfig {
    /// Checks the parts make sense together.
    pub fn validate(&self) -> Result<(), String> {
        self.receiver
            .receiver()
            .validate()
            .map_err(|e| format!("receiver: {e}"))?;
        if !(self.server.endpoint.starts_with("http://")
            || self.server.endpoint.starts_with("https://"))
        {
            return Err(format!(
                "server.endpoint `{}` must be an http:// or https:// URL",
                self.server.endpoint
            ));
        }
        if self.queue.segment_bytes == 0 || self.queue.max_bytes < self.queue.segment_bytes {
            return Err(
                "queue.max_bytes must be at least one queue.segment_bytes (and that above 0)"
                    .into(),
            );
        }
        self.logs.validate()?;
        if self.server.max_batch_bytes == 0 || self.server.timeout_secs == 0 {
            return Err("server.max_batch_bytes and server.timeout_secs must be above 0".into());
        }
        Ok(())
    }
}
