//! Live log tail: a sink in front of the store publishes each acknowledged
//! log batch to subscribers of `/api/v1/logs/tail` (server-sent events).
//! Nothing is copied when nobody is tailing; a subscriber too slow to keep
//! up is told how many records it missed instead of slowing ingestion.

use std::sync::Arc;

use arrow_array::RecordBatch;
use ophion_core::{Signal, SinkError, TelemetryBatch, TelemetrySink, TenantId};
use tokio::sync::broadcast;

/// Acknowledged log batches, per tenant.
pub type Published = (TenantId, RecordBatch);

/// The channel between ingestion and tail subscribers.
#[derive(Debug, Clone)]
pub struct LogTail {
    tx: broadcast::Sender<Arc<Published>>,
}

impl Default for LogTail {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl LogTail {
    /// A new subscription, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }
}

/// Publishes log batches to a [`LogTail`] once `inner` acknowledged them.
#[derive(Debug)]
pub struct TailSink {
    inner: Arc<dyn TelemetrySink>,
    tail: LogTail,
}

impl TailSink {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TelemetrySink>, tail: LogTail) -> Self {
        Self { inner, tail }
    }
}

#[async_trait::async_trait]
impl TelemetrySink for TailSink {
    async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError> {
        let publish = (batch.signal() == Signal::Logs && self.tail.tx.receiver_count() > 0)
            .then(|| batch.batch().clone());
        self.inner.write(tenant, batch).await?;
        if let Some(b) = publish {
            // No subscriber left is fine.
            let _ = self.tail.tx.send(Arc::new((tenant.clone(), b)));
        }
        Ok(())
    }

    fn admit(&self) -> Result<(), SinkError> {
        self.inner.admit()
    }
}
