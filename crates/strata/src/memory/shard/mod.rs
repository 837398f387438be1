//! One shard of the in-memory tier: a hash table over a slab of entries, and the policy that
//! decides which entry leaves when the shard is over its capacity: W-TinyLFU, or S3-FIFO when
//! the adaptation finds it better (the same queues serve both; see [`Shape::s3fifo`]).
//!
//! Reads take the shard's lock shared and only bump the entry's atomic hit counter. Writes
//! take it exclusively and do the policy's bookkeeping: recency order is kept CLOCK-style —
//! an entry that was hit since the policy last looked at it gets a second chance (moves to the
//! back of its queue) instead of being reordered on every hit — and its hits are folded into
//! the frequency sketch at that moment.
//!
//! This module holds the entries and the operations on them; `eviction` the policy, over the
//! queues of `lists`; `expiry` the deadlines; `tags` the tag index; `capacity` the shard's
//! share of the cache's bound and what it lends for heavy entries.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU8, Ordering};

use foldhash::HashMap;
use hashbrown::HashTable;

use crate::listener::RemovalCause;
use crate::memory::removals::Removals;
use crate::options::Tag;
use crate::policy::ghost::Ghost;
use crate::policy::minisim::Shape;
use crate::policy::sketch::{FrequencySketch, MAX_FREQUENCY};

mod capacity;
mod eviction;
mod expiry;
mod lists;
mod tags;
#[cfg(test)]
mod tests;

use expiry::{EXPIRE_BATCH, Timing};
use lists::List;

/// "No entry" in the intrusive lists.
const NIL: u32 = u32::MAX;
/// "Never expires".
pub(crate) const NEVER: u64 = u64::MAX;

/// The three regions of W-TinyLFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// Admission window: every new entry starts here (LRU-like).
    Window = 0,
    /// Main region, entries admitted from the window and not hit since.
    Probation = 1,
    /// Main region, entries hit while on probation.
    Protected = 2,
}

/// A stored entry: kept to 32 bytes for `u64` keys and values, so two fit a cache line (a
/// hit's cost is mostly the cache miss that loads it). The allocator puts a large slab 16
/// bytes past a line, so half of them straddle two lines; aligning entries to 32 bytes would
/// round every other size up (`docs/benchmarks.md`, sessions 8 and 17). Its hash is
/// recomputed from the key when the policy needs it; expiry times and tags, which most
/// entries lack, live in side tables of the shard.
#[derive(Debug)]
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    weight: u32,
    prev: u32,
    next: u32,
    /// Hits since the policy last examined this entry, saturating at 15. Written by readers
    /// under the shared lock with plain load/store (lost updates only lose a hint).
    hits: AtomicU8,
    region: Region,
    /// Has an entry in `Shard::timing` (a TTL, or the cache has a time-to-idle).
    timed: bool,
    /// Has an entry in `Shard::entry_tags`.
    tagged: bool,
}

impl<K, V> Entry<K, V> {
    #[inline]
    fn mark_hit(&self) {
        let hits = self.hits.load(Ordering::Relaxed);
        if hits < MAX_FREQUENCY {
            self.hits.store(hits + 1, Ordering::Relaxed);
        }
    }
}

/// What [`Shard::update`] did.
pub(crate) enum Updated {
    /// No live entry for the key.
    Missing,
    /// Changed, and the shard is within its capacity.
    Done,
    /// Changed, and now heavier than the shard's capacity, which the shard is over until the
    /// caller [`grant`](Shard::grant)s the entry room.
    Outgrew { slot: u32, weight: u32 },
}

/// A new entry, as the cache hands it to a shard.
pub(crate) struct NewEntry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) weight: u32,
    pub(crate) expires_at: u64,
    pub(crate) tags: Box<[Tag]>,
    /// Capacity borrowed from the other shards for this entry, which is heavier than its
    /// shard could hold (see [`Shard::lend`]); 0 for nearly every entry.
    pub(crate) loan: u64,
}

impl<K, V> NewEntry<K, V> {
    /// An entry that never expires (the caller may set `expires_at` after).
    pub(crate) fn untimed(
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        tags: Box<[Tag]>,
        loan: u64,
    ) -> Self {
        Self {
            hash,
            key,
            value,
            weight,
            expires_at: NEVER,
            tags,
            loan,
        }
    }
}

/// The state behind one shard's lock; see the module docs.
#[derive(Debug)]
pub(crate) struct Shard<K, V, S> {
    /// Maps a key hash to the slot index of its entry.
    table: HashTable<u32>,
    slots: Vec<Option<Entry<K, V>>>,
    /// Recomputes a key's hash when the policy needs it (entries do not store it).
    hasher: S,
    /// Unused slot indices.
    free: Vec<u32>,
    /// Window, probation and protected, indexed by [`Region`].
    lists: [List; 3],
    /// Total weight of all entries.
    weight: u64,
    capacity: u64,
    /// Weight the window may hold before its oldest entries become admission candidates.
    window_capacity: u64,
    /// Weight the protected region may hold before its oldest entries are demoted.
    protected_capacity: u64,
    sketch: FrequencySketch,
    /// Min-heap of (deadline, slot, timing version); stale nodes are skipped when popped.
    deadlines: BinaryHeap<Reverse<(u64, u32, u32)>>,
    /// Expiry data by slot index, for entries with `timed` set (grown on demand).
    timing: Vec<Timing>,
    /// Slots carrying each tag.
    tags: HashMap<Tag, hashbrown::HashSet<u32, foldhash::fast::RandomState>>,
    /// Tags of each entry with `tagged` set.
    entry_tags: HashMap<u32, Box<[Tag]>>,
    /// Time-to-idle in nanoseconds, if the cache has one.
    tti: Option<u64>,
    /// The shape just became S3-FIFO: the small queue's overflow moves to main whole.
    entering_s3fifo: bool,
    /// The sketch counts new keys. Not in a shard pinned to S3-FIFO ([`pin`](Self::pin)):
    /// S3-FIFO never asks it, and only a switch to W-TinyLFU would need its counts.
    counting: bool,
    /// S3-FIFO's ghost: the keys the small queue let go recently (empty in W-TinyLFU).
    ghost: Ghost,
    /// The victims of the current admission duel (scratch space, see `admit`).
    victims: Vec<u32>,
    /// The shape in use: its shares size the regions whatever the capacity, and it says
    /// whether the queues run as S3-FIFO.
    shape: Shape,
    /// Capacity this shard lent to others' heavy entries and has not had back.
    lent: u64,
    /// Capacity this shard's heavy entries borrowed: the sum of `loans`.
    borrowed: u64,
    /// The capacity each heavy entry borrowed, by slot (see [`Shard::lend`]).
    loans: HashMap<u32, u64>,
    /// The epoch of the loans (see the cache's `loans`), which a new bound ends.
    loan_epoch: u64,
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Shard<K, V, S> {
    pub(crate) fn new(
        capacity: u64,
        estimated_entries: usize,
        tti: Option<u64>,
        seed: u64,
        hasher: S,
    ) -> Self {
        let mut shard = Self {
            table: HashTable::new(),
            slots: Vec::new(),
            hasher,
            free: Vec::new(),
            lists: [List::EMPTY; 3],
            weight: 0,
            capacity,
            window_capacity: 0,
            protected_capacity: 0,
            sketch: FrequencySketch::new(estimated_entries, seed),
            deadlines: BinaryHeap::new(),
            timing: Vec::new(),
            tags: HashMap::default(),
            entry_tags: HashMap::default(),
            tti,
            entering_s3fifo: false,
            counting: true,
            ghost: Ghost::default(),
            victims: Vec::new(),
            shape: crate::policy::minisim::INITIAL,
            lent: 0,
            borrowed: 0,
            loans: HashMap::default(),
            loan_epoch: 0,
        };
        shard.set_shape(crate::policy::minisim::INITIAL);
        shard
    }

    /// Gives the shard a shape that never changes (a pinned policy, a mini cache). Pinned to
    /// S3-FIFO, it keeps no frequency sketch.
    pub(crate) fn pin(&mut self, shape: Shape) {
        self.set_shape(shape);
        if shape.s3fifo {
            self.counting = false;
            self.sketch.start_over(0);
        }
    }

    /// The shape in use.
    pub(crate) fn shape(&self) -> Shape {
        self.shape
    }

    /// Resizes the regions: the window gets `shape.window` of capacity, the protected segment
    /// `shape.protected` of the rest.
    pub(crate) fn set_shape(&mut self, shape: Shape) {
        // Into S3-FIFO, or to a smaller small queue: the queue's overflow moves to main.
        let entering = shape.s3fifo && (!self.shape.s3fifo || shape.window < self.shape.window);
        if shape.s3fifo && !self.shape.s3fifo {
            self.ghost = Ghost::new(self.table.len());
        } else if !shape.s3fifo {
            self.ghost = Ghost::default();
        }
        self.sketch.set_staggered(shape.staggered);
        self.shape = shape;
        self.size_regions();
        self.entering_s3fifo =
            entering && self.lists[Region::Window as usize].weight > self.window_capacity;
    }

    /// The window's and protected segment's capacities, from the shape's shares of the
    /// shard's capacity.
    fn size_regions(&mut self) {
        self.window_capacity = (self.capacity as f64 * self.shape.window) as u64;
        self.protected_capacity =
            ((self.capacity - self.window_capacity) as f64 * self.shape.protected) as u64;
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slots = &self.slots;
        self.table
            .find(hash, |&i| {
                slots[i as usize]
                    .as_ref()
                    .is_some_and(|e| e.key.borrow() == key)
            })
            .copied()
    }

    fn entry(&self, idx: u32) -> &Entry<K, V> {
        self.slots[idx as usize]
            .as_ref()
            .expect("linked slots hold an entry")
    }

    fn entry_mut(&mut self, idx: u32) -> &mut Entry<K, V> {
        self.slots[idx as usize]
            .as_mut()
            .expect("linked slots hold an entry")
    }

    /// The hash of the entry's key (not stored: see [`Entry`]).
    fn hash_of(&self, idx: u32) -> u64 {
        self.hasher.hash_one(&self.entry(idx).key)
    }

    /// Looks `key` up under the shared lock; `now` is read only for entries that can expire.
    #[inline]
    /// `None` for a missing or expired entry.
    pub(crate) fn get<Q>(&self, hash: u64, key: &Q, now: impl FnOnce() -> u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(idx) = self.find(hash, key) else {
            // A miss is usually followed by an insert, which counts the key.
            if self.counting {
                self.sketch.prefetch(hash);
            }
            return None;
        };
        let entry = self.entry(idx);
        if entry.timed {
            let timing = &self.timing[idx as usize];
            let now = now();
            if timing.deadline(self.tti) <= now {
                return None;
            }
            if self.tti.is_some() {
                timing.last_access.store(now, Ordering::Relaxed);
            }
        }
        entry.mark_hit();
        Some(entry.value.clone())
    }

    /// The live value for `key` without counting an access: the entry's hit counter and idle
    /// time stay as they were.
    pub(crate) fn peek<Q>(&self, hash: u64, key: &Q, now: impl FnOnce() -> u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.find_live(hash, key, now)?;
        Some(self.entry(idx).value.clone())
    }

    /// Changes the live value for `key` in place with `change`, then re-weighs it with `weigh`
    /// (evicting if the shard is over its capacity). Not an access: its place in the eviction
    /// order, its hit counter, expiry and tags stay.
    pub(crate) fn update<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        change: impl FnOnce(&mut V),
        weigh: impl FnOnce(&K, &V) -> u32,
        out: &mut Removals<'_, K, V>,
    ) -> Updated
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(idx) = self.find_live(hash, key, now) else {
            return Updated::Missing;
        };
        let entry = self.entry_mut(idx);
        change(&mut entry.value);
        let weight = weigh(&entry.key, &entry.value);
        self.set_weight(idx, weight);
        if u64::from(weight) > self.capacity {
            return Updated::Outgrew { slot: idx, weight };
        }
        self.evict(out);
        Updated::Done
    }

    /// True if `key` has a live entry; does not count as an access.
    pub(crate) fn contains<Q>(&self, hash: u64, key: &Q, now: impl FnOnce() -> u64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_live(hash, key, now).is_some()
    }

    /// The slot of `key`'s entry if it is live (its deadline, if any, is after `now`).
    fn find_live<Q>(&self, hash: u64, key: &Q, now: impl FnOnce() -> u64) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(hash, key)
            .filter(|&idx| !self.entry(idx).timed || self.deadline(idx) > now())
    }

    /// Inserts or replaces an entry, then evicts until the shard is within capacity.
    /// Returns true if a new key was added.
    pub(crate) fn insert(
        &mut self,
        new: NewEntry<K, V>,
        now: u64,
        out: &mut Removals<'_, K, V>,
    ) -> bool {
        if !self.deadlines.is_empty() {
            let _ = self.expire(now, EXPIRE_BATCH, out);
        }
        if new.loan > 0 {
            self.resize(self.capacity + new.loan);
        }
        if u64::from(new.weight) > self.capacity {
            // Too heavy to ever fit: drop any older value for the key, refuse the new one.
            if let Some(old) = self.find(new.hash, &new.key) {
                let (key, value) = self.unlink_entry(old, out);
                out.push(key, value, RemovalCause::Replaced);
            }
            self.repay(new.loan, out);
            out.push(new.key, new.value, RemovalCause::Size);
            self.evict_if_over(out);
            return false;
        }
        match self.find(new.hash, &new.key) {
            Some(idx) => {
                // Only a heavier value can need room; replacements are most writes in a
                // read-mostly mix, so they skip eviction's checks and the heads' prefetch.
                if self.replace(idx, new, now, out) {
                    self.evict(out);
                }
                false
            }
            None => {
                self.add(new, now);
                self.evict(out);
                self.prefetch_heads();
                true
            }
        }
    }

    /// Gives the entry at `idx` the new value, weight, expiry and tags, as an access. True if
    /// it got heavier (the shard may be over its capacity).
    fn replace(
        &mut self,
        idx: u32,
        new: NewEntry<K, V>,
        now: u64,
        out: &mut Removals<'_, K, V>,
    ) -> bool {
        let untimed = new.expires_at == NEVER && self.tti.is_none();
        // It did not fit with what it had borrowed already: it now needs both loans.
        self.record_loan(idx, new.loan);
        let entry = self.entry_mut(idx);
        let old_value = std::mem::replace(&mut entry.value, new.value);
        entry.mark_hit();
        // Most replacements change the value alone: no expiry or tags, before or after.
        let plain = untimed && !entry.timed && !entry.tagged && new.tags.is_empty();
        let heavier = new.weight > entry.weight;
        if new.weight != entry.weight {
            self.set_weight(idx, new.weight);
        }
        if !plain {
            self.untag(idx);
            self.set_timing(idx, new.expires_at, now);
            self.set_tags(idx, new.tags);
        }
        out.push(new.key, old_value, RemovalCause::Replaced);
        heavier
    }

    /// Gives the entry a new weight, keeping its list's and the shard's totals.
    fn set_weight(&mut self, idx: u32, weight: u32) {
        let entry = self.entry_mut(idx);
        let old = std::mem::replace(&mut entry.weight, weight);
        let region = entry.region as usize;
        self.lists[region].weight = self.lists[region].weight - u64::from(old) + u64::from(weight);
        self.weight = self.weight - u64::from(old) + u64::from(weight);
    }

    fn add(&mut self, new: NewEntry<K, V>, now: u64) {
        let entry = Entry {
            key: new.key,
            value: new.value,
            weight: new.weight,
            prev: NIL,
            next: NIL,
            hits: AtomicU8::new(0),
            region: Region::Window,
            timed: false,
            tagged: false,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots[idx as usize] = Some(entry);
                idx
            }
            None => {
                let idx =
                    u32::try_from(self.slots.len()).expect("fewer than 2^32 entries per shard");
                self.slots.push(Some(entry));
                idx
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table.insert_unique(new.hash, idx, |&i| {
            slots[i as usize]
                .as_ref()
                .map_or(0, |e| hasher.hash_one(&e.key))
        });
        self.weight += u64::from(new.weight);
        // S3-FIFO: a key back while its ghost lasts goes to main, and so does every new key
        // while main has room in a shape that fills it first.
        let region = if self.shape.s3fifo
            && (self.ghost.take(new.hash)
                || (self.shape.fill_main && self.weight <= self.capacity - self.window_capacity))
        {
            Region::Probation
        } else {
            Region::Window
        };
        self.link_tail(region, idx);
        // The entry starts untimed and untagged; most stay so.
        if new.expires_at != NEVER || self.tti.is_some() {
            self.set_timing(idx, new.expires_at, now);
        }
        if !new.tags.is_empty() {
            self.set_tags(idx, new.tags);
        }
        self.record_loan(idx, new.loan);
        if self.counting {
            if self.table.len() > self.sketch.room() {
                self.sketch.reserve(self.table.len());
            }
            self.sketch.increment(new.hash);
        }
    }

    /// Removes `key`, returning its value if it was live; an entry whose deadline had passed
    /// is removed as `Expired` and returns `None`.
    pub(crate) fn remove<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        out: &mut Removals<'_, K, V>,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.find(hash, key)?;
        let expired = self.entry(idx).timed && self.deadline(idx) <= now();
        let (key, value) = self.unlink_entry(idx, out);
        self.evict_if_over(out);
        if expired {
            out.push(key, value, RemovalCause::Expired);
            return None;
        }
        out.push(key, value.clone(), RemovalCause::Explicit);
        Some(value)
    }

    /// Sizes the frequency sketch for `entries` keys, forgetting its counts (a shard the
    /// cache starts using: `Cache::split`).
    pub(crate) fn size_sketch(&mut self, entries: usize) {
        if self.counting {
            self.sketch.start_over(entries);
        }
    }

    /// Takes every entry out, with its expiry, tags and, for a timed entry, the time of its
    /// last access, for another shard to hold (the cache spreads a shard's entries over more
    /// shards, `Cache::split`); the shard is left empty. Not removals: no listener hears of
    /// them.
    pub(crate) fn drain(&mut self) -> Vec<(NewEntry<K, V>, Option<u64>)> {
        let mut entries = Vec::with_capacity(self.table.len());
        for idx in 0..self.slots.len() as u32 {
            let Some(entry) = self.slots[idx as usize].take() else {
                continue;
            };
            let (expires_at, accessed) = if entry.timed {
                let timing = &self.timing[idx as usize];
                (
                    timing.expires_at,
                    Some(timing.last_access.load(Ordering::Relaxed)),
                )
            } else {
                (NEVER, None)
            };
            let tags = self.entry_tags.remove(&idx).unwrap_or_default();
            let hash = self.hasher.hash_one(&entry.key);
            let new = NewEntry::untimed(hash, entry.key, entry.value, entry.weight, tags, 0);
            entries.push((NewEntry { expires_at, ..new }, accessed));
        }
        self.table.clear();
        self.slots.clear();
        self.free.clear();
        self.lists = [List::EMPTY; 3];
        self.weight = 0;
        self.deadlines.clear();
        self.timing.clear();
        self.tags.clear();
        self.loans.clear();
        self.borrowed = 0;
        entries
    }

    /// Removes the live entries for which `keep` returns false, and all expired entries.
    pub(crate) fn retain(
        &mut self,
        now: u64,
        mut keep: impl FnMut(&K, &V) -> bool,
        out: &mut Removals<'_, K, V>,
    ) {
        for idx in 0..self.slots.len() as u32 {
            let Some(entry) = self.slots[idx as usize].as_ref() else {
                continue;
            };
            let cause = if self.deadline(idx) <= now {
                RemovalCause::Expired
            } else if !keep(&entry.key, &entry.value) {
                RemovalCause::Explicit
            } else {
                continue;
            };
            let (key, value) = self.unlink_entry(idx, out);
            out.push(key, value, cause);
        }
        self.evict_if_over(out);
    }

    /// Clones the live entries.
    pub(crate) fn snapshot(&self, now: u64) -> Vec<(K, V)>
    where
        K: Clone,
    {
        (0..self.slots.len() as u32)
            .filter(|&idx| self.slots[idx as usize].is_some() && self.deadline(idx) > now)
            .map(|idx| {
                let entry = self.entry(idx);
                (entry.key.clone(), entry.value.clone())
            })
            .collect()
    }

    /// Removes the entry at `idx` from the table, its list, the tag index and the slab.
    fn unlink_entry(&mut self, idx: u32, out: &mut Removals<'_, K, V>) -> (K, V) {
        // Nearly always empty: no hashing then.
        if !self.loans.is_empty()
            && let Some(loan) = self.loans.remove(&idx)
        {
            self.borrowed -= loan;
            self.repay(loan, out);
        }
        let hash = self.hash_of(idx);
        if let Ok(found) = self.table.find_entry(hash, |&i| i == idx) {
            found.remove();
        }
        self.unlink(idx);
        self.untag(idx);
        let entry = self.slots[idx as usize]
            .take()
            .expect("linked slots hold an entry");
        self.weight -= u64::from(entry.weight);
        self.free.push(idx);
        if self.table.is_empty() {
            self.deadlines.clear();
        }
        (entry.key, entry.value)
    }

    /// Checks the internal invariants (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut count = 0;
        let mut weight = 0;
        for list in &self.lists {
            let mut idx = list.head;
            let mut list_weight = 0;
            let mut prev = NIL;
            while idx != NIL {
                let e = self.entry(idx);
                assert_eq!(e.prev, prev);
                list_weight += u64::from(e.weight);
                count += 1;
                prev = idx;
                idx = e.next;
            }
            assert_eq!(list.tail, prev);
            assert_eq!(list.weight, list_weight);
            weight += list_weight;
        }
        assert_eq!(count, self.table.len());
        assert_eq!(weight, self.weight);
        assert!(self.weight <= self.capacity);
        assert!(
            self.loans
                .keys()
                .all(|&idx| self.slots[idx as usize].is_some())
        );
        assert_eq!(self.borrowed, self.loans.values().sum::<u64>());
        assert!(self.borrowed <= self.capacity);
    }

    /// The hashes of the keys held (tests only).
    #[cfg(test)]
    pub(crate) fn hashes(&self) -> Vec<u64> {
        let live = self.slots.iter().flatten();
        live.map(|entry| self.hasher.hash_one(&entry.key)).collect()
    }
}
