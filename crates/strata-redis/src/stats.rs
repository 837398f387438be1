//! Per-tier statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Lookups that found a value.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Operations that failed (Redis unreachable, timeouts, …).
    pub errors: u64,
    /// Total time spent in this tier's operations.
    pub busy: Duration,
    /// Operations timed in `busy`.
    pub operations: u64,
}

impl TierStats {
    /// Hits ÷ lookups, or 0 before the first.
    pub fn hit_ratio(&self) -> f64 {
        match self.hits + self.misses {
            0 => 0.0,
            n => self.hits as f64 / n as f64,
        }
    }

    /// Mean time per operation.
    pub fn mean_latency(&self) -> Duration {
        match self.operations {
            0 => Duration::ZERO,
            n => self.busy / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    busy_ns: AtomicU64,
    operations: AtomicU64,
}

impl Counters {
    pub(crate) fn time(&self, took: Duration) {
        self.busy_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.operations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn lookup(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TierStats {
        TierStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
            operations: self.operations.load(Ordering::Relaxed),
        }
    }
}
