//! Self-metrics of a receiver: what arrived, what was refused and why.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ophion_core::Signal;
use serde::Serialize;

use crate::convert::ConvertStats;

#[derive(Debug, Default)]
pub(crate) struct SignalCounters {
    requests: AtomicU64,
    bytes: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// Why a whole request failed; a label of the failure counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    BadData,
    TooLarge,
    UnsupportedMedia,
    Overloaded,
    Unavailable,
    Unauthenticated,
    Internal,
    RateLimited,
}

/// Live counters, updated with relaxed atomics on the request path.
#[derive(Debug, Default)]
pub(crate) struct ReceiverStats {
    signals: [SignalCounters; 3],
    failures: [AtomicU64; 8],
    dropped_attributes: AtomicU64,
    truncated_values: AtomicU64,
    dropped_events_and_links: AtomicU64,
    unlinked_logs: AtomicU64,
}

fn idx(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }
}

impl ReceiverStats {
    pub(crate) fn request(&self, signal: Signal, bytes: usize) {
        let s = &self.signals[idx(signal)];
        s.requests.fetch_add(1, Relaxed);
        s.bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn items(&self, signal: Signal, accepted: u64, rejected: u64, c: &ConvertStats) {
        let s = &self.signals[idx(signal)];
        s.accepted.fetch_add(accepted, Relaxed);
        s.rejected.fetch_add(rejected, Relaxed);
        self.dropped_attributes
            .fetch_add(c.dropped_attributes, Relaxed);
        self.truncated_values.fetch_add(c.truncated_values, Relaxed);
        self.dropped_events_and_links
            .fetch_add(c.dropped_events_and_links, Relaxed);
        self.unlinked_logs.fetch_add(c.unlinked_logs, Relaxed);
    }

    pub(crate) fn failure(&self, kind: FailureKind) {
        self.failures[kind as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let sig = |s: Signal| {
            let c = &self.signals[idx(s)];
            SignalStats {
                requests: c.requests.load(Relaxed),
                bytes: c.bytes.load(Relaxed),
                accepted: c.accepted.load(Relaxed),
                rejected: c.rejected.load(Relaxed),
            }
        };
        let f = |k: FailureKind| self.failures[k as usize].load(Relaxed);
        StatsSnapshot {
            traces: sig(Signal::Traces),
            logs: sig(Signal::Logs),
            metrics: sig(Signal::Metrics),
            failed_bad_data: f(FailureKind::BadData),
            failed_too_large: f(FailureKind::TooLarge),
            failed_unsupported_media: f(FailureKind::UnsupportedMedia),
            failed_overloaded: f(FailureKind::Overloaded),
            failed_unavailable: f(FailureKind::Unavailable),
            failed_unauthenticated: f(FailureKind::Unauthenticated),
            failed_internal: f(FailureKind::Internal),
            failed_rate_limited: f(FailureKind::RateLimited),
            dropped_attributes: self.dropped_attributes.load(Relaxed),
            truncated_values: self.truncated_values.load(Relaxed),
            dropped_events_and_links: self.dropped_events_and_links.load(Relaxed),
            unlinked_logs: self.unlinked_logs.load(Relaxed),
        }
    }
}

/// Counters of one signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SignalStats {
    /// Export requests received (before any check).
    pub requests: u64,
    /// Request bytes after decompression.
    pub bytes: u64,
    /// Items (spans, log records, points) handed to the sink and acknowledged.
    pub accepted: u64,
    /// Items rejected as invalid (reported as partial success).
    pub rejected: u64,
}

/// A point-in-time copy of a receiver's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Trace counters.
    pub traces: SignalStats,
    /// Log counters.
    pub logs: SignalStats,
    /// Metric counters.
    pub metrics: SignalStats,
    /// Requests refused as malformed.
    pub failed_bad_data: u64,
    /// Requests refused as too large.
    pub failed_too_large: u64,
    /// Requests with an unsupported content type or encoding.
    pub failed_unsupported_media: u64,
    /// Requests refused because the receiver or the sink was overloaded.
    pub failed_overloaded: u64,
    /// Requests refused by a rate limit of the authenticator.
    pub failed_rate_limited: u64,
    /// Requests refused because storage was unavailable.
    pub failed_unavailable: u64,
    /// Requests refused by the authenticator.
    pub failed_unauthenticated: u64,
    /// Requests failed by an internal error.
    pub failed_internal: u64,
    /// Attributes dropped at the limits.
    pub dropped_attributes: u64,
    /// Values truncated at the limits.
    pub truncated_values: u64,
    /// Events and links dropped at the limits or for invalid ids.
    pub dropped_events_and_links: u64,
    /// Log records kept without their invalid trace link.
    pub unlinked_logs: u64,
}

impl StatsSnapshot {
    /// The counters of one signal.
    pub fn signal(&self, signal: Signal) -> SignalStats {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.metrics,
        }
    }
}
