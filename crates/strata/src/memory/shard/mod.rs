//! One shard of the in-memory tier: a hash table over a slab of entries, and the policy that
//! decides which entry leaves when the shard is over its capacity: W-TinyLFU, or S3-FIFO when
//! the adaptation finds it better (the same queues serve both; see [`Shape::s3fifo`]).
//!
//! Reads take the shard's lock shared and only bump the entry's atomic hit counter. Writes
//! take it exclusively and do the policy's bookkeeping: recency order is kept CLOCK-style —
//! an entry that was hit since the policy last looked at it gets a second chance (moves to the
//! back of its queue) instead of being reordered on every hit — and its hits are folded into
//! the frequency sketch at that moment.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash};

use foldhash::HashMap;
use hashbrown::HashTable;

use crate::listener::RemovalCause;
use crate::memory::prefetch::prefetch;
use crate::memory::removals::Removals;
use crate::options::Tag;
use crate::policy::ghost::Ghost;
use crate::policy::minisim::Shape;
use crate::policy::sketch::{FrequencySketch, MAX_FREQUENCY};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// "No entry" in the intrusive lists.
const NIL: u32 = u32::MAX;
/// "Never expires".
pub(crate) const NEVER: u64 = u64::MAX;
/// At most this many expired entries are reclaimed per write, to bound a write's latency.
const EXPIRE_BATCH: usize = 64;
/// At most this many entries per write move out of a region that is over its share after a
/// change of shape: the change completes within a few writes, none of them long.
const REBALANCE_BUDGET: usize = 32;

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

/// Expiry data of a timed entry, in clock nanoseconds.
#[derive(Debug, Default)]
struct Timing {
    /// Bumped each time the slot's expiry is set, so a stale deadline-heap node (of an older
    /// entry in this slot, or an older deadline of this one) never matches.
    version: u32,
    /// Absolute TTL deadline, or [`NEVER`].
    expires_at: u64,
    /// Last access; used only when the cache has a time-to-idle.
    last_access: AtomicU64,
}

impl Timing {
    fn deadline(&self, tti: Option<u64>) -> u64 {
        match tti {
            None => self.expires_at,
            Some(idle) => self.expires_at.min(
                self.last_access
                    .load(Ordering::Relaxed)
                    .saturating_add(idle),
            ),
        }
    }
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

/// A doubly linked list threaded through the slab.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    weight: u64,
}

impl List {
    const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        weight: 0,
    };
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

    /// Changes the shard's capacity, keeping its shape, and evicts down to it. Loans are
    /// forgotten: every shard gets its new share, and the loans from now on are of `epoch`.
    pub(crate) fn set_capacity(&mut self, capacity: u64, epoch: u64, out: &mut Removals<'_, K, V>) {
        self.loan_epoch = epoch;
        self.lent = 0;
        self.borrowed = 0;
        self.loans.clear();
        self.resize(capacity);
        self.evict(out);
    }

    /// Changes the capacity, keeping the shape's proportions; no eviction.
    fn resize(&mut self, capacity: u64) {
        self.capacity = capacity;
        self.size_regions();
    }

    /// Lends up to `amount` of this shard's capacity to another shard's entry that is heavier
    /// than that shard can hold: a sharded cache stores any entry up to its whole capacity, as
    /// an unsharded one would. The lenders' shrinking is what the heavy entry displaces, spread
    /// over the shards. They evict down to it only once the entry was admitted
    /// ([`settle`](Self::settle)): an entry TinyLFU turns away displaces nothing. Returns what
    /// was lent: never capacity it borrowed itself.
    pub(crate) fn lend(&mut self, amount: u64) -> u64 {
        let lent = amount.min(self.capacity - self.borrowed);
        self.lent += lent;
        self.resize(self.capacity - lent);
        lent
    }

    /// Takes back up to `amount` of the capacity this shard lent; returns how much.
    pub(crate) fn take_back(&mut self, amount: u64) -> u64 {
        let back = amount.min(self.lent);
        self.lent -= back;
        self.resize(self.capacity + back);
        back
    }

    /// Capacity this shard has lent and not had back.
    pub(crate) fn lent(&self) -> u64 {
        self.lent
    }

    /// Evicts down to the capacity (after lending some).
    pub(crate) fn settle(&mut self, out: &mut Removals<'_, K, V>) {
        self.evict(out);
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

    pub(crate) fn has_deadlines(&self) -> bool {
        !self.deadlines.is_empty()
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

    /// The entry's expiry deadline, or [`NEVER`].
    fn deadline(&self, idx: u32) -> u64 {
        if self.entry(idx).timed {
            self.timing[idx as usize].deadline(self.tti)
        } else {
            NEVER
        }
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

    /// After an [`update`](Self::update) made the entry at `idx` heavier than the shard: adds
    /// `loan` to what the entry borrowed (see [`lend`](Self::lend)), evicts the entry if it is
    /// still too heavy (as `insert` would refuse it), then evicts down to the capacity.
    pub(crate) fn grant(&mut self, idx: u32, loan: u64, out: &mut Removals<'_, K, V>) {
        self.resize(self.capacity + loan);
        self.record_loan(idx, loan);
        if u64::from(self.entry(idx).weight) > self.capacity {
            self.evict_entry(idx, out);
        }
        self.evict(out);
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

    /// Prefetches what the next write's eviction starts with: the sketch block of each queue's
    /// head (its duel or its folded hits; W-TinyLFU only) and the slot after it.
    fn prefetch_heads(&self) {
        for list in &self.lists {
            if list.head != NIL {
                if !self.shape.s3fifo {
                    self.sketch.prefetch(self.hash_of(list.head));
                }
                self.prefetch_slot(self.entry(list.head).next);
            }
        }
    }

    fn prefetch_slot(&self, idx: u32) {
        if let Some(slot) = self.slots.get(idx as usize) {
            prefetch(slot);
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

    /// Records the entry's expiry data and schedules its deadline; older deadline-heap nodes
    /// of this slot stop matching.
    fn set_timing(&mut self, idx: u32, expires_at: u64, now: u64) {
        let timed = expires_at != NEVER || self.tti.is_some();
        self.entry_mut(idx).timed = timed;
        if !timed {
            return;
        }
        if self.timing.len() <= idx as usize {
            self.timing.resize_with(self.slots.len(), Timing::default);
        }
        let timing = &mut self.timing[idx as usize];
        timing.version = timing.version.wrapping_add(1);
        timing.expires_at = expires_at;
        *timing.last_access.get_mut() = now;
        let deadline = timing.deadline(self.tti);
        self.deadlines
            .push(Reverse((deadline, idx, timing.version)));
    }

    /// True if a deadline-heap node `(slot, version)` still stands for a live timed entry.
    fn deadline_is_current(&self, idx: u32, version: u32) -> bool {
        self.slots[idx as usize].as_ref().is_some_and(|e| e.timed)
            && self.timing[idx as usize].version == version
    }

    fn set_tags(&mut self, idx: u32, tags: Box<[Tag]>) {
        self.entry_mut(idx).tagged = !tags.is_empty();
        if tags.is_empty() {
            return;
        }
        for tag in tags.iter() {
            self.tags.entry(tag.clone()).or_default().insert(idx);
        }
        self.entry_tags.insert(idx, tags);
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

    /// Removes every entry carrying `tag`.
    pub(crate) fn invalidate_tag(&mut self, tag: &str, out: &mut Removals<'_, K, V>) {
        if let Some(slots) = self.tags.remove(tag) {
            for idx in slots {
                let (key, value) = self.unlink_entry(idx, out);
                out.push(key, value, RemovalCause::Tag);
            }
            self.evict_if_over(out);
        }
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

    /// Reclaims up to `limit` entries whose deadline passed.
    pub(crate) fn expire(&mut self, now: u64, limit: usize, out: &mut Removals<'_, K, V>) -> bool {
        let mut reclaimed = 0;
        let mut more = false;
        while let Some(&Reverse((deadline, idx, version))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            if reclaimed == limit {
                more = true;
                break;
            }
            self.deadlines.pop();
            if !self.deadline_is_current(idx, version) {
                continue;
            }
            let actual = self.deadline(idx);
            if actual > now {
                // Touched since (time-to-idle): wait for its new deadline.
                self.deadlines.push(Reverse((actual, idx, version)));
                continue;
            }
            let (key, value) = self.unlink_entry(idx, out);
            out.push(key, value, RemovalCause::Expired);
            reclaimed += 1;
        }
        self.evict_if_over(out);
        if self.deadlines.len() > 2 * self.table.len() + 64 {
            let mut nodes = std::mem::take(&mut self.deadlines).into_vec();
            nodes.retain(|Reverse((_, idx, v))| self.deadline_is_current(*idx, *v));
            self.deadlines = BinaryHeap::from(nodes);
        }
        more
    }

    /// Evicts if the shard is over its capacity after a removal: an entry that leaves gives
    /// back all it borrowed (see [`lend`](Self::lend)), which is more than its weight if it
    /// got lighter since (a lighter value, or `update`), and the shard shrinks by that.
    fn evict_if_over(&mut self, out: &mut Removals<'_, K, V>) {
        if self.weight > self.capacity {
            self.evict(out);
        }
    }

    /// Evicts until the shard is within capacity (see the module docs for the policy).
    fn evict(&mut self, out: &mut Removals<'_, K, V>) {
        if self.shape.s3fifo {
            self.evict_s3fifo(out);
            return;
        }
        // The window's overflow competes, one candidate at a time, for a place in main. After a
        // change of shape the overflow can be large: it is worked off a budget per write.
        let mut budget = REBALANCE_BUDGET;
        while self.lists[Region::Window as usize].weight > self.window_capacity && budget > 0 {
            budget -= 1;
            let candidate = self.lists[Region::Window as usize].head;
            if self.forget_hits(candidate) {
                self.move_to_tail(Region::Window, candidate);
                continue;
            }
            // The candidate stays at the window's head during its duels: they only touch main.
            if self.make_room(candidate, out) {
                self.move_to_tail(Region::Probation, candidate);
            } else {
                self.evict_entry(candidate, out);
            }
        }
        self.demote_protected_overflow(REBALANCE_BUDGET);
        // Still over (the window grew, or an update got heavier): evict without a duel.
        while self.weight > self.capacity {
            let victim = match self.main_victim() {
                Some(victim) => victim,
                None => {
                    let head = self.lists[Region::Window as usize].head;
                    if self.take_hits(head) {
                        self.move_to_tail(Region::Window, head);
                        continue;
                    }
                    head
                }
            };
            self.evict_entry(victim, out);
        }
    }

    /// S3-FIFO's eviction (see [`Shape::s3fifo`]).
    fn evict_s3fifo(&mut self, out: &mut Removals<'_, K, V>) {
        if self.entering_s3fifo {
            // The window this cache had is the small queue now; what exceeds its share is
            // older than S3-FIFO's small queue would hold: main's, as if promoted already.
            let mut budget = REBALANCE_BUDGET;
            while self.lists[Region::Window as usize].weight > self.window_capacity && budget > 0 {
                budget -= 1;
                let head = self.lists[Region::Window as usize].head;
                self.move_to_tail(Region::Probation, head);
            }
            self.entering_s3fifo =
                self.lists[Region::Window as usize].weight > self.window_capacity;
        }
        while self.weight > self.capacity {
            let small = self.lists[Region::Window as usize].head;
            let from_small = small != NIL
                && (self.lists[Region::Window as usize].weight > self.window_capacity
                    || self.main_weight() == 0);
            if from_small {
                if self.forget_hits(small) {
                    self.move_to_tail(Region::Probation, small);
                } else {
                    let hash = self.hash_of(small);
                    if self.table.len() > 2 * self.ghost.remembered() {
                        // The shard has filled since its ghost was sized.
                        self.ghost = Ghost::new(self.table.len());
                    }
                    self.ghost.insert(hash);
                    self.evict_entry(small, out);
                }
                continue;
            }
            // S3-FIFO's main is one FIFO: what W-TinyLFU left in protected goes through it
            // first (its oldest part), so no entry is kept out of the FIFO's reach.
            let protected = self.lists[Region::Protected as usize].head;
            let victim = if protected == NIL {
                self.lists[Region::Probation as usize].head
            } else {
                protected
            };
            if victim == NIL {
                break;
            }
            let hits = self.entry_mut(victim).hits.get_mut();
            if *hits > 0 {
                // FIFO-Reinsertion with a 2-bit counter: reinserted, one access forgotten.
                *hits = (*hits).min(3) - 1;
                self.move_to_tail(Region::Probation, victim);
            } else {
                self.evict_entry(victim, out);
            }
        }
    }

    fn main_weight(&self) -> u64 {
        self.lists[Region::Probation as usize].weight
            + self.lists[Region::Protected as usize].weight
    }

    /// The main region's next victim: the oldest probation entry not hit since it was last
    /// examined; hit ones are promoted to protected on the way. Falls back to protected.
    fn main_victim(&mut self) -> Option<u32> {
        loop {
            let victim = self.lists[Region::Probation as usize].head;
            if victim == NIL {
                let oldest = self.lists[Region::Protected as usize].head;
                if oldest == NIL {
                    return None;
                }
                if self.take_hits(oldest) {
                    self.move_to_tail(Region::Protected, oldest);
                    continue;
                }
                return Some(oldest);
            }
            if !self.take_hits(victim) {
                return Some(victim);
            }
            self.unlink(victim);
            self.link_tail(Region::Protected, victim);
            self.demote_protected_overflow(usize::MAX);
        }
    }

    /// Demotes the oldest protected entries (hit ones get a second chance) to probation while
    /// protected is over its share, at most `budget` moves.
    fn demote_protected_overflow(&mut self, mut budget: usize) {
        while self.lists[Region::Protected as usize].weight > self.protected_capacity && budget > 0
        {
            budget -= 1;
            let oldest = self.lists[Region::Protected as usize].head;
            self.unlink(oldest);
            if self.take_hits(oldest) {
                self.link_tail(Region::Protected, oldest);
            } else {
                self.link_tail(Region::Probation, oldest);
            }
        }
    }

    /// Makes room in main for the window's `candidate` by admission duels; false if it lost
    /// one (it must leave). More than one duel only after a change of shape left main over
    /// its share.
    fn make_room(&mut self, candidate: u32, out: &mut Removals<'_, K, V>) -> bool {
        loop {
            let room = self.room_needed(candidate);
            if room == 0 {
                return true;
            }
            if !self.admit(candidate, room) {
                return false;
            }
            if self.victims.is_empty() {
                return true; // main is empty: the eviction after the duels makes room
            }
            let victims = std::mem::take(&mut self.victims);
            for &victim in &victims {
                self.evict_entry(victim, out);
            }
            self.victims = victims;
        }
    }

    /// The room `candidate` needs in main, at most its weight: the shard must fit its
    /// capacity, and the candidate main's share.
    fn room_needed(&self, candidate: u32) -> u64 {
        let weight = u64::from(self.entry(candidate).weight);
        let main_capacity = self.capacity - self.window_capacity;
        self.weight
            .saturating_sub(self.capacity)
            .min((self.main_weight() + weight).saturating_sub(main_capacity))
            .min(weight)
    }

    /// TinyLFU's admission duel, size-aware: does `candidate` deserve `room` in main? Its
    /// victims are main's next entries in eviction order, as many as free `room` (or all
    /// there are); they are left in `self.victims` for the caller to evict. The candidate must
    /// be seen more often than all of them together (Einziger, Eytan, Friedman, Manes,
    /// "Lightweight Robust Size Aware Cache Management", 2022; moka does the same): a heavy
    /// newcomer displaces several entries and wins only if it is worth them all. With unit
    /// weights this is the classic duel against one victim. A [strict](Shape::strict) shape
    /// asks for more than one count beyond them.
    fn admit(&mut self, candidate: u32, room: u64) -> bool {
        self.victims.clear();
        let mut freed = 0;
        let mut next = self.main_victim();
        while let Some(victim) = next {
            self.victims.push(victim);
            freed += u64::from(self.entry(victim).weight);
            if freed >= room {
                break;
            }
            next = self.victim_after(victim);
        }
        // Estimates only after the walk: the hits it folded in may have halved the sketch.
        let candidate_frequency = u32::from(self.sketch.frequency(self.hash_of(candidate)));
        // A strict shape asks for a lead of two counts: the victims start one up.
        let mut frequency = u32::from(self.shape.strict);
        for &victim in &self.victims {
            frequency += u32::from(self.sketch.frequency(self.hash_of(victim)));
            if frequency >= candidate_frequency {
                self.victims.clear();
                return false;
            }
        }
        true
    }

    /// The entry after `victim` in its list that was not hit since it was last examined, hit
    /// ones promoted on the way (as [`main_victim`](Self::main_victim) does from the head);
    /// None at the list's end.
    fn victim_after(&mut self, victim: u32) -> Option<u32> {
        loop {
            let next = self.entry(victim).next;
            if next == NIL {
                return None;
            }
            if !self.take_hits(next) {
                return Some(next);
            }
            self.unlink(next);
            self.link_tail(Region::Protected, next);
            self.demote_protected_overflow(usize::MAX);
        }
    }

    /// Clears the hit counter of an entry in the window without counting the hits as
    /// frequency; true if it had any (it then gets a second chance in the window).
    ///
    /// Hits while an entry is still in the window are *correlated references*: accesses close
    /// in time to its arrival, such as a burst. Following LRU-K (O'Neil, O'Neil, Weikum,
    /// SIGMOD 1993), they earn recency but are not independent evidence of popularity, so
    /// they do not raise the entry's chance to be admitted to the main region.
    fn forget_hits(&mut self, idx: u32) -> bool {
        std::mem::take(self.entry_mut(idx).hits.get_mut()) > 0
    }

    /// Clears the entry's hit counter, folding the hits into the sketch; true if it had any.
    fn take_hits(&mut self, idx: u32) -> bool {
        let entry = self.entry_mut(idx);
        let hits = std::mem::take(entry.hits.get_mut());
        // The policy walks on from a head it examines: load the next one meanwhile.
        let next = entry.next;
        self.prefetch_slot(next);
        if hits > 0 {
            let hash = self.hash_of(idx);
            self.sketch.increment_by(hash, hits);
        }
        hits > 0
    }

    fn evict_entry(&mut self, idx: u32, out: &mut Removals<'_, K, V>) {
        let (key, value) = self.unlink_entry(idx, out);
        out.push(key, value, RemovalCause::Size);
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

    /// Adds `loan` (capacity the shard was just lent for it) to what the entry at `idx`
    /// borrowed; it goes back when the entry leaves (`unlink_entry`).
    fn record_loan(&mut self, idx: u32, loan: u64) {
        if loan > 0 {
            *self.loans.entry(idx).or_default() += loan;
            self.borrowed += loan;
        }
    }

    /// Shrinks back by `amount` borrowed capacity, which `out` carries back to the lenders.
    fn repay(&mut self, amount: u64, out: &mut Removals<'_, K, V>) {
        if amount > 0 {
            self.resize(self.capacity - amount);
            out.repay(amount, self.loan_epoch);
        }
    }

    /// Takes the entry at `idx` out of the tag index (a flag check for an untagged entry).
    #[inline]
    fn untag(&mut self, idx: u32) {
        if self.entry(idx).tagged {
            self.remove_tags(idx);
        }
    }

    fn remove_tags(&mut self, idx: u32) {
        let Some(tags) = self.entry_tags.remove(&idx) else {
            return;
        };
        for tag in tags.iter() {
            if let Some(set) = self.tags.get_mut(tag) {
                set.remove(&idx);
                if set.is_empty() {
                    self.tags.remove(tag);
                }
            }
        }
    }

    fn link_tail(&mut self, region: Region, idx: u32) {
        let tail = self.lists[region as usize].tail;
        let entry = self.entry_mut(idx);
        entry.region = region;
        entry.prev = tail;
        entry.next = NIL;
        let weight = u64::from(entry.weight);
        if tail == NIL {
            self.lists[region as usize].head = idx;
        } else {
            self.entry_mut(tail).next = idx;
        }
        let list = &mut self.lists[region as usize];
        list.tail = idx;
        list.weight += weight;
    }

    fn unlink(&mut self, idx: u32) {
        let entry = self.entry(idx);
        let (prev, next, region, weight) = (
            entry.prev,
            entry.next,
            entry.region as usize,
            u64::from(entry.weight),
        );
        if prev == NIL {
            self.lists[region].head = next;
        } else {
            self.entry_mut(prev).next = next;
        }
        if next == NIL {
            self.lists[region].tail = prev;
        } else {
            self.entry_mut(next).prev = prev;
        }
        self.lists[region].weight -= weight;
    }

    fn move_to_tail(&mut self, region: Region, idx: u32) {
        self.unlink(idx);
        self.link_tail(region, idx);
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

    /// Capacity this shard's heavy entries borrowed (tests only).
    #[cfg(test)]
    pub(crate) fn borrowed(&self) -> u64 {
        self.borrowed
    }

    /// The hashes of the keys held (tests only).
    #[cfg(test)]
    pub(crate) fn hashes(&self) -> Vec<u64> {
        let live = self.slots.iter().flatten();
        live.map(|entry| self.hasher.hash_one(&entry.key)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::minisim::{CANDIDATES, S3FIFO, Shape, w_tinylfu};

    type TestShard = Shard<u64, u64, foldhash::fast::FixedState>;

    /// A peek leaves the entry's hit counter alone: the policy does not see it as an access.
    #[test]
    fn peeking_is_not_an_access() {
        let mut shard = TestShard::new(8, 8, None, 1, foldhash::fast::FixedState::default());
        put(&mut shard, 1);
        let hash = shard.hasher.hash_one(1_u64);
        let hits = |shard: &TestShard| {
            let idx = shard.find(hash, &1).expect("present");
            shard.entry(idx).hits.load(Ordering::Relaxed)
        };
        assert_eq!(shard.peek(hash, &1, || 0), Some(1));
        assert_eq!(hits(&shard), 0);
        assert_eq!(shard.get(hash, &1, || 0), Some(1));
        assert_eq!(hits(&shard), 1);
    }

    /// Counts `key` in the sketch `times` more, as if requested before without being stored.
    fn seen(shard: &mut TestShard, key: u64, times: usize) {
        for _ in 0..times {
            shard.sketch.increment(shard.hasher.hash_one(key));
        }
    }

    fn put(shard: &mut TestShard, key: u64) {
        put_weighing(shard, key, 1);
    }

    fn put_weighing(shard: &mut TestShard, key: u64, weight: u32) {
        let new = NewEntry {
            hash: shard.hasher.hash_one(key),
            key,
            value: key,
            weight,
            expires_at: NEVER,
            tags: Box::default(),
            loan: 0,
        };
        shard.insert(new, 0, &mut Removals::new(false, None));
    }

    /// Size-aware admission: a newcomer ten times as heavy as the entries it would displace
    /// must be seen more often than the ten of them together, not than the first one alone.
    #[test]
    fn a_heavy_newcomer_must_outweigh_all_it_displaces() {
        let mut shard = shard_of(100, w_tinylfu(0.0, 0.0));
        for key in 0..100 {
            put(&mut shard, key); // each seen once
        }
        // Seen 5 times with its insert: more than any one victim, less than ten together.
        seen(&mut shard, 1000, 4);
        put_weighing(&mut shard, 1000, 10);
        assert_eq!(region_of(&shard, 1000), None, "a heavy newcomer got in");
        assert_eq!(shard.len(), 100, "its victims were evicted anyway");
        // Seen 12 times: worth the ten entries it displaces.
        seen(&mut shard, 1001, 11);
        put_weighing(&mut shard, 1001, 10);
        assert_eq!(region_of(&shard, 1001), Some(Region::Probation));
        assert_eq!(shard.len(), 91);
        assert_eq!(shard.weight(), 100);
        // A light newcomer duels one victim, as in classic TinyLFU.
        seen(&mut shard, 1002, 1);
        put(&mut shard, 1002);
        assert_eq!(region_of(&shard, 1002), Some(Region::Probation));
        shard.check();
    }

    fn shard_of(capacity: u64, shape: Shape) -> TestShard {
        seeded_shard_of(capacity, shape, 1)
    }

    /// A shard whose hashes and sketch are seeded with `seed`.
    fn seeded_shard_of(capacity: u64, shape: Shape, seed: u64) -> TestShard {
        let mut shard = Shard::new(
            capacity,
            capacity as usize,
            None,
            seed,
            foldhash::fast::FixedState::with_seed(seed),
        );
        shard.set_shape(shape);
        shard
    }

    fn hit(shard: &TestShard, key: u64) -> bool {
        shard.get(shard.hasher.hash_one(key), &key, || 0).is_some()
    }

    fn region_of(shard: &TestShard, key: u64) -> Option<Region> {
        let idx = shard.find(shard.hasher.hash_one(key), &key)?;
        Some(shard.entry(idx).region)
    }

    /// A shard pinned to S3-FIFO keeps no sketch (S3-FIFO never asks it), and evicts exactly
    /// as an S3-FIFO shard that counts keys for a later switch.
    #[test]
    fn a_shard_pinned_to_s3fifo_keeps_no_sketch_and_evicts_alike() {
        let mut pinned = shard_of(512, CANDIDATES[0]);
        pinned.pin(S3FIFO);
        let mut counting = shard_of(512, S3FIFO);
        let mut x = 7_u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Skewed: a key of the first 400 half the time, of the first 4,000 otherwise.
            let key = if x & 1 == 0 {
                (x >> 8) % 400
            } else {
                (x >> 8) % 4_000
            };
            let hits = (hit(&pinned, key), hit(&counting, key));
            assert_eq!(hits.0, hits.1, "key {key}");
            if !hits.0 {
                put(&mut pinned, key);
                put(&mut counting, key);
            }
        }
        assert_eq!(pinned.hashes(), counting.hashes());
        assert_eq!(pinned.sketch.room(), 8, "one block");
        assert!(counting.sketch.room() >= 512);
        pinned.check();
    }

    /// TinyLFU in front of one queue (moka's shape) on a loop longer than the cache: every key
    /// is equally frequent, so a tie must keep the victim and the cache a fixed set, which is
    /// optimal here (capacity / loop length). Admitting popular losers at random churned that
    /// set: 68% where the optimum is 76%.
    #[test]
    fn a_loop_keeps_a_fixed_set() {
        let (capacity, length, passes) = (768_u64, 1011_u64, 100);
        for seed in 1..=4 {
            let mut shard = seeded_shard_of(capacity, CANDIDATES[0], seed);
            let mut hits = 0;
            for _ in 0..passes {
                for key in 0..length {
                    if hit(&shard, key) {
                        hits += 1;
                    } else {
                        put(&mut shard, key);
                    }
                }
            }
            let ratio = hits as f64 / (passes * length) as f64;
            let optimum = capacity as f64 / length as f64;
            assert!(ratio > optimum - 0.01, "seed {seed}: hit ratio {ratio:.4}");
        }
    }

    /// Without a window, a loop twice the capacity keeps a fixed set only if ties keep the
    /// victim. A collision in the sketch breaks a tie: the newcomer gets in, evicting the
    /// oldest key, which the loop asks for soon after, now one count ahead of the next
    /// oldest: it evicts that one, and so on. A strict duel (a lead of two counts) lets no
    /// single collision start that; the classic one loses hits on most seeds.
    #[test]
    fn a_strict_duel_keeps_a_loops_fixed_set_whatever_the_collisions() {
        let (capacity, length, seeds) = (100_u64, 200_u64, 1..=12);
        let hits_after_the_first_pass = |strict: bool, seed: u64| {
            let shape = Shape {
                strict,
                ..w_tinylfu(0.0, 0.0)
            };
            let mut shard = seeded_shard_of(capacity, shape, seed);
            let mut hits = 0;
            for pass in 0..4 {
                for key in 0..length {
                    if hit(&shard, key) {
                        hits += u64::from(pass > 0);
                    } else {
                        put(&mut shard, key);
                    }
                }
            }
            hits
        };
        for seed in seeds.clone() {
            let hits = hits_after_the_first_pass(true, seed);
            assert_eq!(
                hits,
                3 * capacity,
                "seed {seed}: the strict shape lost its set"
            );
        }
        let classic: u64 = seeds
            .clone()
            .map(|seed| hits_after_the_first_pass(false, seed))
            .sum();
        let all = 3 * capacity * seeds.count() as u64;
        assert!(classic < all * 95 / 100, "classic {classic} of {all}");
    }

    /// The strict duel's rule itself: a newcomer one count ahead of its victim gets in with
    /// the classic duel, not with the strict one; two counts ahead, it gets in with both.
    #[test]
    fn a_strict_duel_asks_for_a_lead_of_two_counts() {
        for strict in [false, true] {
            let shape = Shape {
                strict,
                ..w_tinylfu(0.0, 0.0)
            };
            let mut shard = shard_of(10, shape);
            for key in 0..10 {
                put(&mut shard, key); // each seen once
            }
            // Seen once before: two counts with its insert, one ahead of its victim.
            seen(&mut shard, 100, 1);
            put(&mut shard, 100);
            assert_eq!(hit(&shard, 100), !strict, "strict {strict}");
            // Seen twice before: two counts ahead.
            seen(&mut shard, 101, 2);
            put(&mut shard, 101);
            assert!(hit(&shard, 101), "strict {strict}");
            shard.check();
        }
    }

    /// S3-FIFO: what was hit while in the small queue moves to main and stays there through a
    /// scan of one-hit wonders, which pass through the small queue only.
    #[test]
    fn s3fifo_keeps_what_was_hit_through_a_scan() {
        const { assert!(S3FIFO.s3fifo) };
        let mut shard = shard_of(100, S3FIFO);
        for key in 0..80 {
            put(&mut shard, key);
            assert!(hit(&shard, key));
        }
        for key in 1000..6000 {
            put(&mut shard, key);
            shard.check();
        }
        let lost: Vec<u64> = (0..80).filter(|&key| !hit(&shard, key)).collect();
        assert!(lost.is_empty(), "the scan displaced hit entries {lost:?}");
    }

    /// S3-FIFO: a key the small queue let go, requested again while its ghost lasts, goes
    /// straight to main.
    #[test]
    fn s3fifo_sends_a_key_back_from_the_ghost_to_main() {
        let mut shard = shard_of(100, S3FIFO);
        for key in 0..100 {
            put(&mut shard, key);
        }
        put(&mut shard, 1000); // the cache is full: the oldest unhit entry, 0, leaves
        assert_eq!(region_of(&shard, 0), None);
        put(&mut shard, 0);
        assert_eq!(region_of(&shard, 0), Some(Region::Probation));
        put(&mut shard, 1001);
        assert_eq!(region_of(&shard, 1001), Some(Region::Window));
    }

    /// S3-FIFO that fills main first (as LIRS makes its first keys LIR, and quick_cache fills
    /// its hot region): the keys that filled the cache are in main, and a scan of one-hit
    /// wonders passes through the small queue without displacing them. Filled through the
    /// small queue, as published S3-FIFO is, they are the first to go.
    #[test]
    fn filling_main_first_keeps_the_first_keys_through_a_scan() {
        let fill_main = CANDIDATES
            .into_iter()
            .find(|shape| shape.fill_main)
            .expect("a candidate fills main first");
        for (shape, kept) in [
            (fill_main, 99),
            (
                Shape {
                    fill_main: false,
                    ..fill_main
                },
                0,
            ),
        ] {
            let mut shard = shard_of(100, shape);
            for key in 0..100 {
                put(&mut shard, key);
            }
            if shape.fill_main {
                // Main holds 99 (the small queue 1%): the last key of the fill goes to small.
                assert_eq!(region_of(&shard, 98), Some(Region::Probation));
                assert_eq!(region_of(&shard, 99), Some(Region::Window));
            }
            for key in 1000..6000 {
                put(&mut shard, key);
                shard.check();
            }
            let first = (0..99).filter(|&key| hit(&shard, key)).count();
            assert_eq!(first, kept, "{shape:?}");
        }
    }

    /// A change to a smaller small queue moves the queue's overflow to main, a budget per
    /// write, as entering S3-FIFO does, instead of evicting all of it to the ghost first.
    #[test]
    fn shrinking_the_small_queue_moves_its_overflow_to_main() {
        let mut shard = shard_of(1000, S3FIFO);
        for key in 0..1200 {
            put(&mut shard, key); // nothing hit: all of it in the small queue
        }
        assert_eq!(shard.lists[Region::Probation as usize].weight, 0);
        shard.set_shape(Shape {
            window: 0.01,
            ..S3FIFO
        });
        for key in 2000..2004 {
            put(&mut shard, key);
            shard.check();
        }
        let moved = 4 * REBALANCE_BUDGET as u64;
        assert_eq!(shard.lists[Region::Probation as usize].weight, moved);
        assert_eq!(shard.lists[Region::Window as usize].weight, 1000 - moved);
        // The oldest of the small queue went to main; each write's victim was the small
        // queue's head after the entries it moved.
        assert_eq!(region_of(&shard, 200), Some(Region::Probation));
        assert_eq!(region_of(&shard, 200 + REBALANCE_BUDGET as u64), None);
    }

    proptest::proptest! {
        /// Any mix of inserts (weights 1–3), reads, removals and changes of shape among every
        /// candidate keeps the shard's lists, table and weights consistent and within its
        /// capacity, and a key it holds has the value last inserted for it.
        #[test]
        fn any_mix_of_operations_and_shapes_keeps_the_invariants(
            ops in proptest::collection::vec((0..4_u8, 0..48_u64, 1..4_u32), 1..400),
            capacity in 1..40_u64,
        ) {
            let mut shard = shard_of(capacity, CANDIDATES[1]);
            let mut latest = std::collections::HashMap::new();
            for (i, (op, key, n)) in ops.into_iter().enumerate() {
                let hash = shard.hasher.hash_one(key);
                let mut out = Removals::new(false, None);
                match op {
                    0 => {
                        let new = NewEntry::untimed(hash, key, i as u64, n, Box::default(), 0);
                        shard.insert(new, 0, &mut out);
                        if u64::from(n) > capacity {
                            latest.remove(&key); // refused, and the older value dropped
                        } else {
                            latest.insert(key, i as u64);
                        }
                    }
                    1 => {
                        if let Some(value) = shard.get(hash, &key, || 0) {
                            proptest::prop_assert_eq!(Some(&value), latest.get(&key));
                        }
                    }
                    2 => {
                        if let Some(value) = shard.remove(hash, &key, || 0, &mut out) {
                            proptest::prop_assert_eq!(Some(&value), latest.get(&key));
                        }
                        latest.remove(&key);
                    }
                    _ => shard.set_shape(CANDIDATES[(key as usize * 7 + n as usize) % CANDIDATES.len()]),
                }
                shard.check();
            }
        }
    }

    /// Entering S3-FIFO from W-TinyLFU: what W-TinyLFU kept in its protected region goes
    /// through S3-FIFO's main FIFO like the rest (first, being its oldest part), instead of
    /// staying out of its reach.
    #[test]
    fn entering_s3fifo_drains_the_protected_region() {
        let mut shard = shard_of(1000, CANDIDATES[1]);
        for round in 0..4 {
            for key in 0..1500 {
                put(&mut shard, key);
                if round > 0 && key < 700 {
                    hit(&shard, key);
                }
            }
        }
        assert!(shard.lists[Region::Protected as usize].weight > 0);
        shard.set_shape(S3FIFO);
        // New keys hit while in the small queue move to main, which must evict.
        for key in 10_000..13_000 {
            put(&mut shard, key);
            hit(&shard, key);
            shard.check();
        }
        assert_eq!(shard.lists[Region::Protected as usize].weight, 0);
    }

    /// Two slots per cache line: a hit costs one line (two for the half of them that
    /// straddle a line, see [`Entry`]).
    #[test]
    fn a_slot_of_u64_keys_and_values_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Option<Entry<u64, u64>>>(), 32);
    }

    /// After a change of shape the regions reach their new shares within a few writes, each
    /// write moving a bounded number of entries, and every invariant holds on the way.
    /// Lending and taking back capacity, again and again, leaves the regions the shares the
    /// shape gives them: sizing them from their own rounded sizes let the window shrink by a
    /// slot at each round trip.
    #[test]
    fn lending_keeps_the_shape() {
        let mut shard = shard_of(2048, crate::policy::minisim::INITIAL);
        let regions = |shard: &TestShard| (shard.window_capacity, shard.protected_capacity);
        let before = regions(&shard);
        for _ in 0..100 {
            assert_eq!(shard.lend(300), 300);
            assert_eq!(shard.take_back(300), 300);
        }
        assert_eq!(regions(&shard), before);
        assert_eq!(shard.capacity(), 2048);
    }

    #[test]
    fn a_change_of_shape_completes_within_a_few_writes() {
        let mut shard = shard_of(1000, CANDIDATES[4]);
        for (from, to) in [
            (CANDIDATES[4], CANDIDATES[0]),
            (CANDIDATES[0], CANDIDATES[5]),
            (CANDIDATES[5], CANDIDATES[1]),
        ] {
            shard.set_shape(from);
            for k in 0..5000 {
                put(&mut shard, k % 1500);
                let hash = shard.hasher.hash_one(k % 700);
                let _ = shard.get(hash, &(k % 700), || 0); // some hits, so hits get folded
            }
            shard.set_shape(to);
            let mut writes = 0;
            while shard.lists[Region::Window as usize].weight > shard.window_capacity
                || shard.lists[Region::Protected as usize].weight > shard.protected_capacity
            {
                put(&mut shard, 10_000 + writes);
                shard.check();
                writes += 1;
                // Each entry is looked at most twice (a hit one first gets a second chance).
                let bound = 2 * 1000 / REBALANCE_BUDGET as u64 + 2;
                assert!(
                    writes <= bound,
                    "{from:?} → {to:?} took over {writes} writes"
                );
            }
        }
    }
}
