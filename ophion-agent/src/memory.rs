//! The agent's resident memory, sampled in the background so the check
//! on every request is one atomic load.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

/// Resident bytes of this process (Linux `/proc/self/statm`; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The last sample and the bound.
#[derive(Debug)]
pub struct Rss {
    used: AtomicU64,
    limit: u64,
}

impl Rss {
    /// Samples every 100 ms while the returned value lives; `limit` 0 is
    /// no bound.
    pub fn watch(limit: u64) -> Arc<Self> {
        let rss = Arc::new(Self {
            used: AtomicU64::new(resident_bytes()),
            limit,
        });
        let weak = Arc::downgrade(&rss);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(r) = weak.upgrade() else { return };
                r.used.store(resident_bytes(), Relaxed);
            }
        });
        rss
    }

    /// Resident bytes at the last sample.
    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    /// `(used, limit)` when above the bound.
    pub fn over(&self) -> Option<(u64, u64)> {
        let used = self.used();
        (self.limit > 0 && used > self.limit).then_some((used, self.limit))
    }
}
