//! Always-on statistics: striped counters cheap enough to never turn off.
//!
//! Each thread adds to its own cache-line-padded stripe, so two threads hitting the same key do
//! not bounce a shared counter between their cores; a snapshot sums the stripes.

use crate::listener::RemovalCause;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Counter {
    Hits,
    Misses,
    Inserts,
    Updates,
    EvictedSize,
    EvictedExpired,
    RemovedExplicit,
    RemovedReplaced,
    RemovedTag,
}

const COUNTERS: usize = 9;

impl Counter {
    pub(crate) fn for_removal(cause: RemovalCause) -> Self {
        match cause {
            RemovalCause::Size => Self::EvictedSize,
            RemovalCause::Expired => Self::EvictedExpired,
            RemovalCause::Explicit => Self::RemovedExplicit,
            RemovalCause::Replaced => Self::RemovedReplaced,
            RemovalCause::Tag => Self::RemovedTag,
        }
    }
}

/// Striped counters; see the module docs.
#[derive(Debug)]
pub(crate) struct StripedCounters {
    stripes: Box<[CachePadded<[AtomicU64; COUNTERS]>]>,
    mask: usize,
}

impl StripedCounters {
    pub(crate) fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_stripes((threads * 2).next_power_of_two())
    }

    /// `stripes` must be a power of two.
    fn with_stripes(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            mask: stripes - 1,
        }
    }

    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let stripe = &self.stripes[thread_stripe() & self.mask];
        stripe[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.stripes
            .iter()
            .map(|s| s[counter as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.get(Counter::Hits),
            misses: self.get(Counter::Misses),
            inserts: self.get(Counter::Inserts),
            updates: self.get(Counter::Updates),
            evicted_size: self.get(Counter::EvictedSize),
            evicted_expired: self.get(Counter::EvictedExpired),
            removed_explicit: self.get(Counter::RemovedExplicit),
            removed_replaced: self.get(Counter::RemovedReplaced),
            removed_tag: self.get(Counter::RemovedTag),
        }
    }
}

/// A stable small number per thread, used to pick its stripe.
#[cfg(not(strata_loom))]
pub(crate) fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    STRIPE.with(|s| *s)
}

#[cfg(strata_loom)]
pub(crate) fn thread_stripe() -> usize {
    loom::lazy_static! {
        static ref NEXT: AtomicUsize = AtomicUsize::new(0);
    }
    loom::thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    STRIPE.with(|s| *s)
}

/// A snapshot of a cache's counters since it was built.
///
/// ```
/// let cache = strata::Cache::builder().max_capacity(10).build()?;
/// cache.insert(1, "one");
/// assert_eq!(cache.get(&1), Some("one"));
/// assert_eq!(cache.get(&2), None);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 1, 1));
/// assert_eq!(stats.hit_ratio(), 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing, or only an expired entry.
    pub misses: u64,
    /// New entries stored.
    pub inserts: u64,
    /// Inserts that replaced the value of an existing key.
    pub updates: u64,
    /// Entries evicted to stay within capacity (including entries too heavy to store).
    pub evicted_size: u64,
    /// Entries removed because their TTL or TTI passed.
    pub evicted_expired: u64,
    /// Entries removed by `remove`, `invalidate_all` or `retain`.
    pub removed_explicit: u64,
    /// Values replaced by a later insert of the same key.
    pub removed_replaced: u64,
    /// Entries removed by `invalidate_tag`.
    pub removed_tag: u64,
}

impl CacheStats {
    /// Hits + misses.
    pub fn requests(&self) -> u64 {
        self.hits + self.misses
    }

    /// Hits ÷ requests, or 0 when there were no requests.
    pub fn hit_ratio(&self) -> f64 {
        match self.requests() {
            0 => 0.0,
            n => self.hits as f64 / n as f64,
        }
    }

    /// All evictions and removals, whatever the cause.
    pub fn removals(&self) -> u64 {
        self.evicted_size
            + self.evicted_expired
            + self.removed_explicit
            + self.removed_replaced
            + self.removed_tag
    }
}

#[cfg(all(test, strata_loom))]
mod loom_tests {
    use super::*;

    /// Increments from concurrent threads are never lost, even when threads share a stripe
    /// (one stripe here forces it), and a snapshot taken after they finish sees all of them.
    #[test]
    fn concurrent_increments_are_all_counted() {
        loom::model(|| {
            let counters = loom::sync::Arc::new(StripedCounters::with_stripes(1));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let c = counters.clone();
                    loom::thread::spawn(move || {
                        c.add(Counter::Hits, 1);
                        c.add(Counter::Hits, 2);
                    })
                })
                .collect();
            counters.add(Counter::Misses, 1);
            for h in handles {
                h.join().expect("thread");
            }
            assert_eq!(counters.get(Counter::Hits), 6);
            assert_eq!(counters.get(Counter::Misses), 1);
        });
    }
}
