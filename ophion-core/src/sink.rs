//! The contract between whoever produces telemetry (receivers, the agent) and
//! whoever keeps it (the store, a forwarder, a test).

use std::{fmt::Debug, sync::Arc, time::Duration};

use arrow_array::RecordBatch;

use crate::{Signal, TenantId};

/// A batch of one signal's rows in that signal's schema.
#[derive(Debug, Clone)]
pub struct TelemetryBatch {
    signal: Signal,
    batch: RecordBatch,
}

impl TelemetryBatch {
    /// Wraps a batch, checking that its schema is the signal's schema.
    pub fn new(signal: Signal, batch: RecordBatch) -> crate::Result<Self> {
        if batch.schema().fields() != signal.schema().fields() {
            return Err(crate::Error::SchemaMismatch(signal));
        }
        Ok(Self { signal, batch })
    }

    /// Which signal the rows are.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The rows.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// Number of rows (spans, log records or metric points).
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Unwraps the rows.
    pub fn into_batch(self) -> RecordBatch {
        self.batch
    }
}

/// Why a sink refused a write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink is above its memory or queue budget; the client should retry
    /// after the given delay. Maps to gRPC `UNAVAILABLE` / HTTP 503.
    #[error("overloaded, retry in {}s: {reason}", retry_after.as_secs().max(1))]
    Overloaded {
        /// Suggested delay before retrying.
        retry_after: Duration,
        /// What is full.
        reason: String,
    },
    /// Storage is temporarily unavailable (disk full, object store down).
    /// Retryable; maps to gRPC `UNAVAILABLE` / HTTP 503.
    #[error("storage unavailable, retry in {}s: {reason}", retry_after.as_secs().max(1))]
    Unavailable {
        /// Suggested delay before retrying.
        retry_after: Duration,
        /// What failed.
        reason: String,
    },
    /// The data can never be accepted as sent. Not retryable; maps to gRPC
    /// `INVALID_ARGUMENT` / HTTP 400.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A bug or an unexpected failure. Not retryable; maps to gRPC
    /// `INTERNAL` / HTTP 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SinkError {
    /// Whether sending the same data again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SinkError::Overloaded { .. } | SinkError::Unavailable { .. }
        )
    }

    /// The delay to suggest to a client, for retryable errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Overloaded { retry_after, .. }
            | SinkError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Where telemetry goes.
///
/// Contract:
/// - `write` may be called concurrently from many tasks; implementations
///   bound their own memory and refuse with a retryable error rather than
///   queueing without limit.
/// - `Ok(())` means the batch is durable: it will survive a crash of the
///   process (for the store: its bytes are in an fsynced write-ahead log).
///   Receivers acknowledge a client only after `Ok`.
/// - An `Err` means nothing of the batch is guaranteed stored; whether the
///   client should retry is [`SinkError::is_retryable`]. A retry may store
///   rows twice: delivery is at-least-once.
/// - If the future is dropped before it completes the write may or may not
///   have happened; the client was not acknowledged, so it will retry.
#[async_trait::async_trait]
pub trait TelemetrySink: Debug + Send + Sync {
    /// Writes one batch for one tenant.
    async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError>;

    /// Whether a write would be refused as overloaded right now. Receivers
    /// ask before reading a request's body, so that an overloaded sink costs
    /// no decoding memory; `write` must still refuse on its own. Cheap and
    /// non-blocking; the default admits everything.
    fn admit(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl<T: TelemetrySink + ?Sized> TelemetrySink for Arc<T> {
    async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError> {
        (**self).write(tenant, batch).await
    }

    fn admit(&self) -> Result<(), SinkError> {
        (**self).admit()
    }
}

/// A sink that keeps every batch in memory; for tests and examples.
#[derive(Debug, Default)]
pub struct MemorySink {
    batches: std::sync::Mutex<Vec<(TenantId, TelemetryBatch)>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, in write order.
    pub fn batches(&self) -> Vec<(TenantId, TelemetryBatch)> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// The batches of one signal, in write order.
    pub fn of(&self, signal: Signal) -> Vec<RecordBatch> {
        self.batches()
            .into_iter()
            .filter(|(_, b)| b.signal() == signal)
            .map(|(_, b)| b.into_batch())
            .collect()
    }

    /// Total rows written for a signal.
    pub fn rows(&self, signal: Signal) -> usize {
        self.of(signal).iter().map(|b| b.num_rows()).sum()
    }
}

#[async_trait::async_trait]
impl TelemetrySink for MemorySink {
    async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError> {
        self.batches
            .lock()
            .map_err(|_| SinkError::Internal("memory sink lock poisoned".into()))?
            .push((tenant.clone(), batch));
        Ok(())
    }
}
