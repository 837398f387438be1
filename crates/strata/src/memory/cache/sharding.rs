//! Which shard holds a key, and how a weighted cache chooses its shard count from its first
//! entries.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering;

use parking_lot::{RwLock, RwLockWriteGuard};

use super::{Cache, ShardCell};

/// A weighted shard's sketch is first sized for this many keys (it cannot know how many it
/// will hold, and starts over when it outgrows the guess: `FrequencySketch::reserve`).
pub(super) const WEIGHTED_SKETCH_KEYS: usize = 1024;

/// Shard `i`'s exact share of `capacity` among `n` shards: the shares add up to it.
pub(super) fn share(capacity: u64, n: u64, i: u64) -> u64 {
    capacity / n + u64::from(i < capacity % n)
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// The hash of `key` and the shard that holds it.
    #[inline]
    pub(in crate::memory) fn shard_for<Q: Hash + ?Sized>(
        &self,
        key: &Q,
    ) -> (u64, &RwLock<ShardCell<K, V, S>>) {
        let hash = self.inner.hasher.hash_one(key);
        (hash, &self.inner.shards[self.shard_index(hash)])
    }

    /// Relaxed: what a shard holds is ordered by its lock, and a writer reads the mask again
    /// once it holds one (`write_shard`), after the split's unlock if the split came first.
    #[inline]
    pub(super) fn shard_index(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.inner.mask.load(Ordering::Relaxed)
    }

    /// The shards in use.
    pub(super) fn in_use(&self) -> usize {
        self.inner.mask.load(Ordering::Relaxed) + 1
    }

    /// The shard of `hash`, locked for writing. A weighted cache's shard count changes once
    /// (`split`), under every shard's lock: a writer that chose its shard before and locked it
    /// after looks again.
    pub(super) fn write_shard(&self, hash: u64) -> RwLockWriteGuard<'_, ShardCell<K, V, S>> {
        loop {
            let index = self.shard_index(hash);
            let cell = self.inner.shards[index].write();
            if self.shard_index(hash) == index {
                return cell;
            }
        }
    }

    /// A weighted cache's first report (64 new keys) tells how many entries it holds when
    /// full, from their mean weight: it chooses its shard count then, as a cache bounded by
    /// entries does when it is built, and spreads its few entries over the new shards. Under
    /// every shard's lock: a writer that chose its shard before looks again
    /// ([`write_shard`](Self::write_shard)); a reader may miss a key that moved meanwhile,
    /// once.
    #[cold]
    #[inline(never)]
    pub(super) fn split(&self, entries: u64) {
        // No loan to end: one shard lends nothing.
        let epoch = self.inner.loans.lock();
        if !self.inner.unsplit.swap(false, Ordering::Relaxed) {
            return;
        }
        let n = crate::memory::builder::shard_count(entries).min(self.inner.shards.len());
        if n == 1 {
            return;
        }
        let mut cells: Vec<_> = self.inner.shards.iter().map(|s| s.write()).collect();
        let mut removals = self.removals();
        let moved = cells[0].shard.drain();
        let capacity = self.capacity();
        for (i, cell) in cells.iter_mut().enumerate().take(n) {
            if i > 0 {
                cell.shard.size_sketch(WEIGHTED_SKETCH_KEYS);
            }
            let share = share(capacity, n as u64, i as u64);
            cell.shard.set_capacity(share, *epoch, &mut removals);
        }
        self.inner.mask.store(n - 1, Ordering::Relaxed);
        let now = self.now();
        for (new, accessed) in moved {
            // As if inserted at its last access: its idle time goes on from then.
            let cell = &mut cells[self.shard_index(new.hash)];
            cell.shard
                .insert(new, accessed.unwrap_or(now), &mut removals);
        }
        drop(cells);
        drop(epoch);
        self.finish(removals);
    }
}
