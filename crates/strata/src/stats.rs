//! Always-on statistics: per-thread counters cheap enough to never turn off.
//!
//! Each thread owns one block of counters per cache (`thread_local::ThreadLocal`), so it is
//! the only writer of its block: an increment is a plain load and store, not an atomic
//! read-modify-write (`lock xadd` cost ~5 ns per hit, a third of a hit's total). Other threads
//! only read the blocks, when a snapshot sums them. A thread remembers the block it used last
//! and whose it is, so that finding it again is one compare: `ThreadLocal`'s own lookup cost
//! 15 instructions per operation, 5% of one thread's throughput (`docs/benchmarks.md`,
//! session 23).

use crate::listener::RemovalCause;
use crate::sync::{AtomicU64, Ordering};

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

/// One thread's counters. Written only by its owning thread. `ThreadLocal` keeps the blocks
/// of several threads side by side in one allocation: aligned to a cache line (128 bytes:
/// adjacent-line prefetchers pair lines), two threads never write to the same line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Block([AtomicU64; COUNTERS]);

impl Block {
    /// Adds `n`; only the block's owning thread may call this (single writer), which is what
    /// makes the non-atomic read-modify-write safe: no other thread ever stores to it.
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let cell = &self.0[counter as usize];
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize].load(Ordering::Relaxed)
    }
}

/// Per-thread counters; see the module docs.
#[derive(Debug)]
pub(crate) struct ThreadCounters {
    /// Names these counters in [`LAST`]: unique in the process, never reused.
    id: u64,
    blocks: thread_local::ThreadLocal<Block>,
}

impl Default for ThreadCounters {
    fn default() -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            blocks: thread_local::ThreadLocal::new(),
        }
    }
}

std::thread_local! {
    /// The block this thread used last, and the id of the counters it belongs to. A thread
    /// mostly counts in one cache, so this finds its block with one compare instead of
    /// `ThreadLocal`'s lookup (three dependent loads and two checks).
    static LAST: std::cell::Cell<(u64, *const Block)> =
        const { std::cell::Cell::new((0, std::ptr::null())) };
}

impl ThreadCounters {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.local().add(counter, n);
    }

    /// The calling thread's block, for several counts at one lookup.
    #[inline]
    pub(crate) fn local(&self) -> &Block {
        let (id, block) = LAST.get();
        if id == self.id {
            // SAFETY: `block` was stored by `local_slow` on this thread, for the counters with
            // this id. Ids are never reused, so those counters are `self`, alive while it is
            // borrowed, and `ThreadLocal` neither moves nor frees a thread's value while it
            // lives.
            #[expect(unsafe_code, reason = "see the SAFETY comment")]
            unsafe {
                &*block
            }
        } else {
            self.local_slow()
        }
    }

    #[cold]
    #[inline(never)]
    fn local_slow(&self) -> &Block {
        let block = self.blocks.get_or_default();
        LAST.set((self.id, block));
        block
    }

    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.blocks
            .iter()
            .map(|b| b.get(counter))
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

/// A small number per thread (for per-thread-stripe buffers elsewhere).
pub(crate) fn thread_stripe() -> usize {
    std::thread_local! {
        static STRIPE: usize = {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
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
    use loom::sync::Arc;

    /// The single-writer protocol: each thread increments only its own block with load+store
    /// while another thread sums the blocks. No increment is lost, and a concurrent sum never
    /// exceeds the final total or goes backwards.
    #[test]
    fn single_writer_increments_are_never_lost() {
        loom::model(|| {
            let blocks: Arc<[Block; 2]> = Arc::new([Block::default(), Block::default()]);
            let writers: Vec<_> = (0..2)
                .map(|i| {
                    let blocks = blocks.clone();
                    loom::thread::spawn(move || {
                        blocks[i].add(Counter::Hits, 1);
                        blocks[i].add(Counter::Hits, 2);
                    })
                })
                .collect();
            let sum = |b: &[Block; 2]| b.iter().map(|b| b.get(Counter::Hits)).sum::<u64>();
            let first = sum(&blocks);
            let second = sum(&blocks);
            assert!(first <= 6 && second <= 6);
            for w in writers {
                w.join().expect("writer");
            }
            assert_eq!(sum(&blocks), 6);
        });
    }
}

/// A summary in the spirit of Python's `functools.lru_cache().cache_info()`.
///
/// ```
/// let cache = strata::Cache::new(10);
/// cache.get_with(1, || "one");
/// cache.get_with(1, || "one");
/// let info = cache.info();
/// assert_eq!((info.hits, info.misses, info.size, info.capacity), (1, 1, 1, 10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries held.
    pub size: u64,
    /// The bound (entries, or total weight with a weigher).
    pub capacity: u64,
}
