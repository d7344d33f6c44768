//! The two ends of the queue: what the receivers write into it, and the
//! loop that sends it to the server.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use ophion_core::{SinkError, TenantId};
use ophion_receiver::{EncodedRequest, RequestSink};
use tokio::sync::{Notify, watch};

use crate::{
    export::{Exporter, Outcome},
    memory::Rss,
    queue::{DiskQueue, QueueError, Record},
};

/// What the sender did, for `/metrics`.
#[derive(Debug, Default)]
pub struct SendStats {
    /// Exports the server took.
    pub exports: AtomicU64,
    /// Items in them.
    pub items: AtomicU64,
    /// Items the server refused in a partial success.
    pub rejected_items: AtomicU64,
    /// Records dropped because the server can never take them.
    pub dropped_records: AtomicU64,
    /// Items in those.
    pub dropped_items: AtomicU64,
    /// Exports that failed and were retried.
    pub retries: AtomicU64,
}

/// The receivers' sink: each request is appended to the queue and
/// acknowledged once it is on disk.
#[derive(Debug)]
pub struct QueueSink {
    pub(crate) queue: Arc<DiskQueue>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) rss: Arc<Rss>,
    pub(crate) retry_after: Duration,
    /// Host metric points not queued (queue full or disk failing).
    pub dropped_host_points: AtomicU64,
}

impl QueueSink {
    fn full(&self, reason: String) -> SinkError {
        SinkError::Overloaded {
            retry_after: self.retry_after,
            reason,
        }
    }

    /// Appends a request the agent made itself (host metrics, log files).
    pub async fn append(&self, record: Record) -> Result<(), SinkError> {
        self.admit()?;
        let queue = Arc::clone(&self.queue);
        let r = tokio::task::spawn_blocking(move || queue.append(&record))
            .await
            .map_err(|e| SinkError::Internal(format!("queue task failed: {e}")))?;
        match r {
            Ok(()) => {
                self.wake.notify_one();
                Ok(())
            }
            Err(e @ QueueError::Full { .. }) => Err(self.full(e.to_string())),
            Err(e) => Err(SinkError::Unavailable {
                retry_after: self.retry_after,
                reason: e.to_string(),
            }),
        }
    }
}

#[async_trait::async_trait]
impl RequestSink for QueueSink {
    async fn write_request(
        &self,
        _tenant: &TenantId,
        request: EncodedRequest,
    ) -> Result<(), SinkError> {
        self.append(Record {
            signal: request.signal,
            items: u32::try_from(request.items).unwrap_or(u32::MAX),
            protobuf: request.protobuf,
            state: None,
        })
        .await
    }

    fn admit(&self) -> Result<(), SinkError> {
        if self.queue.is_full() {
            return Err(self.full("the agent's queue is full; retry later".into()));
        }
        if let Some((used, limit)) = self.rss.over() {
            return Err(self.full(format!(
                "the agent is above its memory bound ({used} of {limit} bytes resident); retry later"
            )));
        }
        Ok(())
    }
}

/// Sends the queue to the server, oldest first, until `stop` turns true.
#[derive(Debug)]
pub struct Sender {
    pub(crate) queue: Arc<DiskQueue>,
    pub(crate) exporter: Exporter,
    pub(crate) wake: Arc<Notify>,
    pub(crate) max_batch_bytes: u64,
    pub(crate) max_backoff: Duration,
    pub(crate) stats: Arc<SendStats>,
}

impl Sender {
    /// Runs until `stop` says so (what is queued stays queued).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(250);
        // After a 413, batches of one record until one goes through.
        let mut single = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let queue = Arc::clone(&self.queue);
            let cap = if single { 1 } else { self.max_batch_bytes };
            let peeked = tokio::task::spawn_blocking(move || queue.peek(cap)).await;
            let (batch, to) = match peeked {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading the queue failed");
                    let _ = tokio::time::timeout(Duration::from_secs(1), stop.changed()).await;
                    continue;
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let signal = batch[0].signal;
            let items: u64 = batch.iter().map(|r| u64::from(r.items)).sum();
            let records = batch.len() as u64;
            // Concatenated protobuf messages merge into one: one export.
            let mut body = Vec::with_capacity(batch.iter().map(|r| r.protobuf.len()).sum());
            for r in &batch {
                body.extend_from_slice(&r.protobuf);
            }
            drop(batch);
            let outcome = if body.is_empty() {
                // Records that only carry collector state.
                Outcome::Delivered {
                    rejected: 0,
                    message: String::new(),
                }
            } else {
                tokio::select! {
                    o = self.exporter.send(signal, &body) => o,
                    _ = stop.changed() => return,
                }
            };
            let sent = !body.is_empty();
            drop(body);
            let delivered = match outcome {
                Outcome::Delivered { rejected, message } => {
                    if sent {
                        self.stats.exports.fetch_add(1, Relaxed);
                        self.stats.items.fetch_add(items, Relaxed);
                    }
                    if rejected > 0 {
                        self.stats.rejected_items.fetch_add(rejected, Relaxed);
                        tracing::warn!(%signal, rejected, message, "the server refused part of an export");
                    }
                    backoff = Duration::from_millis(250);
                    single = false;
                    true
                }
                Outcome::Drop(reason) => {
                    self.stats.dropped_records.fetch_add(records, Relaxed);
                    self.stats.dropped_items.fetch_add(items, Relaxed);
                    tracing::error!(%signal, records, items, reason, "dropped data the server can never take");
                    true
                }
                Outcome::TooLarge(reason) if records > 1 => {
                    tracing::warn!(
                        reason,
                        "export too large for the server; sending one request at a time"
                    );
                    single = true;
                    false
                }
                Outcome::TooLarge(reason) => {
                    self.stats.dropped_records.fetch_add(records, Relaxed);
                    self.stats.dropped_items.fetch_add(items, Relaxed);
                    tracing::error!(%signal, items, reason, "dropped a request larger than the server takes");
                    single = false;
                    true
                }
                Outcome::Retry { after, reason } => {
                    self.stats.retries.fetch_add(1, Relaxed);
                    let wait = after
                        .map(|a| a.min(self.max_backoff * 10))
                        .unwrap_or(backoff);
                    tracing::warn!(
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        "export failed; retrying"
                    );
                    backoff = (backoff * 2).min(self.max_backoff);
                    tokio::select! {
                        _ = tokio::time::sleep(jitter(wait)) => {}
                        _ = stop.changed() => return,
                    }
                    false
                }
            };
            if delivered {
                let queue = Arc::clone(&self.queue);
                match tokio::task::spawn_blocking(move || queue.ack(to, records)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "recording delivery failed (the batch may be sent again)")
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// `d` give or take a fifth, so many agents retrying do not stay in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let f = 0.8 + 0.4 * (f64::from(nanos % 1000) / 1000.0);
    d.mul_f64(f)
}
