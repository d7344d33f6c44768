//! The process memory guard: above the soft limit, ingestion is refused with
//! a retryable error (gRPC `UNAVAILABLE` + `RetryInfo`, HTTP 503 +
//! `Retry-After`, mapped by the receiver) while queries keep working; once
//! memory falls back, writes are accepted again without anyone intervening.
//!
//! "Memory" is the heap in use as counted by [`crate::alloc::Counting`]
//! (ADR 002), or resident memory when that allocator is not installed (an
//! embedder's process).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use ophion_core::{SinkError, TelemetryBatch, TelemetrySink, TenantId};

/// The memory the guard compares with its limit: heap bytes in use when
/// the counting allocator is installed, else resident bytes.
pub fn guarded_bytes() -> u64 {
    crate::alloc::in_use().unwrap_or_else(resident_bytes)
}

/// Resident memory of this process in bytes, from `/proc/self/statm`
/// (0 where that file does not exist).
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A sink in front of another that refuses writes while the memory of
/// [`guarded_bytes`] is above `soft_limit`. Memory is sampled by a background task every 50 ms,
/// so a write costs one atomic load.
#[derive(Debug)]
pub struct MemoryGuard {
    inner: Arc<dyn TelemetrySink>,
    soft_limit: Option<u64>,
    used: Arc<AtomicU64>,
    refused: AtomicU64,
}

impl MemoryGuard {
    /// Guards `inner`; `soft_limit: None` passes everything through.
    pub fn new(inner: Arc<dyn TelemetrySink>, soft_limit: Option<u64>) -> Arc<Self> {
        let used = Arc::new(AtomicU64::new(guarded_bytes()));
        let guard = Arc::new(Self {
            inner,
            soft_limit,
            used: Arc::clone(&used),
            refused: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&guard);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if weak.strong_count() == 0 {
                    return;
                }
                used.store(guarded_bytes(), Relaxed);
            }
        });
        guard
    }

    /// Guarded bytes (heap in use) at the last sample.
    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    /// Writes refused because memory was above the soft limit.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Whether memory is above the soft limit now.
    pub fn over(&self) -> bool {
        self.soft_limit.is_some_and(|l| self.used() > l)
    }
}

#[async_trait::async_trait]
impl TelemetrySink for MemoryGuard {
    async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError> {
        self.admit()?;
        self.inner.write(tenant, batch).await
    }

    fn admit(&self) -> Result<(), SinkError> {
        if let Some(limit) = self.soft_limit {
            let used = self.used();
            if used > limit {
                self.refused.fetch_add(1, Relaxed);
                return Err(SinkError::Overloaded {
                    retry_after: Duration::from_secs(1),
                    reason: format!(
                        "server memory {} MiB is above its soft limit of {} MiB",
                        used >> 20,
                        limit >> 20
                    ),
                });
            }
        }
        self.inner.admit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ophion_core::MemorySink;

    #[tokio::test]
    async fn refuses_retryably_above_the_soft_limit_only() {
        let sink = Arc::new(MemorySink::new());
        let open = MemoryGuard::new(sink.clone(), None);
        assert!(open.admit().is_ok());
        // Any process uses more than one byte.
        let tight = MemoryGuard::new(sink.clone(), Some(1));
        let e = tight.admit().expect_err("over the limit");
        assert!(e.is_retryable(), "{e}");
        assert!(matches!(e, SinkError::Overloaded { .. }));
        assert_eq!(tight.refused(), 1);
        let roomy = MemoryGuard::new(sink, Some(u64::MAX));
        assert!(roomy.admit().is_ok());
        assert!(!roomy.over());
    }
}
