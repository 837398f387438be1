//! Entries removed under a shard's lock, handed to the listener after the lock is released.

use crate::listener::RemovalCause;
use crate::stats::{Counter, ThreadCounters};

/// Collects what a write removed: counts by cause always, the entries only when a listener
/// wants them (otherwise they are dropped at once).
pub(crate) struct Removals<K, V> {
    keep: bool,
    entries: Vec<(K, V, RemovalCause)>,
    counts: [u64; 5],
}

impl<K, V> Removals<K, V> {
    pub(crate) fn new(keep: bool) -> Self {
        Self {
            keep,
            entries: Vec::new(),
            counts: [0; 5],
        }
    }

    /// How many removals had `cause`.
    pub(crate) fn count(&self, cause: RemovalCause) -> u64 {
        self.counts[cause as usize]
    }

    pub(crate) fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        self.counts[cause as usize] += 1;
        if self.keep {
            self.entries.push((key, value, cause));
        }
    }

    /// Records the counts in `stats` and yields the kept entries.
    pub(crate) fn finish(self, stats: &ThreadCounters) -> Vec<(K, V, RemovalCause)> {
        for cause in [
            RemovalCause::Size,
            RemovalCause::Expired,
            RemovalCause::Explicit,
            RemovalCause::Replaced,
            RemovalCause::Tag,
        ] {
            let n = self.counts[cause as usize];
            if n > 0 {
                stats.add(Counter::for_removal(cause), n);
            }
        }
        self.entries
    }
}
