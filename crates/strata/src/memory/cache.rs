//! `Cache`: the concurrent in-memory tier, a set of shards behind one handle.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockWriteGuard};

use crate::clock::Clock;
use crate::coalesce::{Flights, LeaderGuard};
use crate::listener::{Listener, RemovalCause, SyncListener};
use crate::memory::adaptation::{ADAPT_EVERY_INSERTS, Adaptation};
use crate::memory::builder::CacheBuilder;
use crate::memory::removals::{Removals, Repaid};
use crate::memory::shard::{NEVER, NewEntry, Shard, Updated};
use crate::options::InsertOptions;
use crate::policy::minisim::Shape;
use crate::stats::{Block, CacheInfo, CacheStats, Counter, ThreadCounters};

/// The default key hasher: foldhash, fast and seeded per cache (resists hash flooding).
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// Expired entries [`Cache::run_pending_tasks`] reclaims per hold of a shard's lock.
const PENDING_TASKS_BATCH: usize = 1024;

pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
pub(crate) type ExpireAfter<K, V> = Arc<dyn Fn(&K, &V) -> Option<Duration> + Send + Sync>;

/// A concurrent, bounded in-memory cache with an adaptive W-TinyLFU policy, TTL/TTI, tags and
/// statistics. Cloning a `Cache` gives another handle to the same cache.
///
/// ```
/// use strata::Cache;
///
/// let cache = Cache::new(10_000);
/// cache.insert("answer", 42);
/// assert_eq!(cache.get("answer"), Some(42));
/// cache.remove("answer");
/// assert_eq!(cache.get("answer"), None);
/// ```
///
/// # Concurrency
/// Keys are spread over shards, each behind a reader-writer lock. `get` takes the lock shared
/// and marks the entry with an atomic counter, so readers never block each other; inserts and
/// removals take one shard's lock exclusively and do the policy's work there. Listeners run
/// after the lock is released.
///
/// # Bounds
/// The total weight never exceeds `max_capacity`, even under concurrent inserts: each shard
/// owns an exact share of the capacity and enforces it under its lock.
pub struct Cache<K, V, S = DefaultHashBuilder> {
    pub(super) inner: Arc<Inner<K, V, S>>,
}

impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V, S> std::fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.inner.capacity.load(Ordering::Relaxed))
            .field("shards", &(self.inner.mask.load(Ordering::Relaxed) + 1))
            .finish_non_exhaustive()
    }
}

/// Everything the builder decided.
pub(crate) struct Parts<K, V, S> {
    pub(crate) capacity: u64,
    pub(crate) shards: usize,
    /// Start as one shard and choose the shard count at the first report (see `split`).
    pub(crate) deferred: bool,
    /// A pinned shape, or `None` to adapt.
    pub(crate) policy: Option<Shape>,
    pub(crate) ttl: Option<u64>,
    pub(crate) tti: Option<u64>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) expire_after: Option<ExpireAfter<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) sync_listener: Option<SyncListener<K, V>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: S,
}

pub(super) struct Inner<K, V, S> {
    /// All the shards the cache may use; the first `mask + 1` are in use.
    shards: Box<[RwLock<ShardCell<K, V, S>>]>,
    /// Picks a key's shard from its hash: shards in use − 1. Changes once at most, from 0,
    /// when a weighted cache chooses its shard count (see `split`).
    mask: AtomicUsize,
    /// A weighted cache that has not chosen its shard count yet.
    unsplit: AtomicBool,
    /// Loads in progress for `get_with` and friends (see `loading.rs`).
    pub(super) flights: Flights<K, V>,
    capacity: AtomicU64,
    ttl: Option<u64>,
    tti: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    expire_after: Option<ExpireAfter<K, V>>,
    listener: Option<Listener<K, V>>,
    sync_listener: Option<SyncListener<K, V>>,
    clock: Arc<dyn Clock>,
    pub(super) hasher: S,
    stats: ThreadCounters,
    adaptation: Adaptation,
    /// Held while capacity moves between shards (see [`Shard::lend`]). Taken before any
    /// shard's lock, or only tried while holding one (`grant`). Whoever holds several shard
    /// locks at once holds it: so no two threads wait for each other's shards. It holds the
    /// loans' epoch: a new bound ends every loan and starts the next epoch, and a loan given
    /// back from an earlier one is void (its remover let go of the shard's lock before
    /// handing it back, and a new bound may have come between).
    loans: Mutex<u64>,
}

/// A weighted shard's sketch is first sized for this many keys (it cannot know how many it
/// will hold, and starts over when it outgrows the guess: `FrequencySketch::reserve`).
const WEIGHTED_SKETCH_KEYS: usize = 1024;

/// Shard `i`'s exact share of `capacity` among `n` shards: the shares add up to it.
fn share(capacity: u64, n: u64, i: u64) -> u64 {
    capacity / n + u64::from(i < capacity % n)
}

/// A shard plus the adaptation epoch it last applied.
pub(super) struct ShardCell<K, V, S> {
    pub(super) shard: Shard<K, V, S>,
    window_epoch: u64,
    inserts_since_adapt: u32,
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq,
    V: Clone,
{
    /// A cache of at most `max_capacity` entries with the default settings.
    pub fn new(max_capacity: u64) -> Self {
        Self::builder()
            .max_capacity(max_capacity)
            .build()
            .expect("a capacity is all the default configuration needs")
    }

    /// A builder for a cache with more options.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    pub(crate) fn from_parts(parts: Parts<K, V, S>) -> Self {
        let n = parts.shards as u64;
        // A deferred cache starts as one shard: the first has all the capacity.
        let in_use = if parts.deferred { 1 } else { n };
        // Seeds the shards' sketches from the cache's hasher, seeded per cache by default:
        // nobody outside can tell which keys share counters. A cache given a fixed hasher
        // (as the model test is, to replay its failures exactly) is deterministic.
        let seeds = parts.hasher.clone();
        let shards = (0..n)
            .map(|i| {
                // Exact shares: the shard capacities add up to the cache's capacity. The
                // shards not in use have none.
                let capacity = if i < in_use {
                    share(parts.capacity, in_use, i)
                } else {
                    0
                };
                let estimated_entries = if i >= in_use {
                    // Unused until a split sizes it (`split`): the least memory meanwhile.
                    0
                } else if parts.weigher.is_some() {
                    WEIGHTED_SKETCH_KEYS
                } else {
                    usize::try_from(capacity).unwrap_or(usize::MAX)
                };
                let mut shard = Shard::new(
                    capacity,
                    estimated_entries,
                    parts.tti,
                    seeds.hash_one(("sketch", i)),
                    parts.hasher.clone(),
                );
                if let Some(shape) = parts.policy {
                    shard.pin(shape);
                }
                RwLock::new(ShardCell {
                    shard,
                    window_epoch: 0,
                    inserts_since_adapt: 0,
                })
            })
            .collect();
        let adaptation = match parts.policy {
            Some(shape) => Adaptation::fixed(shape),
            None => Adaptation::new(parts.capacity, parts.weigher.is_some()),
        };
        Self {
            inner: Arc::new(Inner {
                flights: Flights::new(parts.shards),
                shards,
                mask: AtomicUsize::new(in_use as usize - 1),
                unsplit: AtomicBool::new(parts.deferred),
                capacity: AtomicU64::new(parts.capacity),
                ttl: parts.ttl,
                tti: parts.tti,
                weigher: parts.weigher,
                expire_after: parts.expire_after,
                listener: parts.listener,
                sync_listener: parts.sync_listener,
                clock: parts.clock,
                hasher: parts.hasher,
                stats: ThreadCounters::new(),
                adaptation,
                loans: Mutex::new(0),
            }),
        }
    }

    #[inline]
    pub(super) fn shard_for<Q: Hash + ?Sized>(
        &self,
        key: &Q,
    ) -> (u64, &RwLock<ShardCell<K, V, S>>) {
        let hash = self.inner.hasher.hash_one(key);
        (hash, &self.inner.shards[self.shard_index(hash)])
    }

    /// Relaxed: what a shard holds is ordered by its lock, and a writer reads the mask again
    /// once it holds one (`write_shard`), after the split's unlock if the split came first.
    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.inner.mask.load(Ordering::Relaxed)
    }

    /// The shards in use.
    fn in_use(&self) -> usize {
        self.inner.mask.load(Ordering::Relaxed) + 1
    }

    /// The shard of `hash`, locked for writing. A weighted cache's shard count changes once
    /// (`split`), under every shard's lock: a writer that chose its shard before and locked it
    /// after looks again.
    fn write_shard(&self, hash: u64) -> RwLockWriteGuard<'_, ShardCell<K, V, S>> {
        loop {
            let index = self.shard_index(hash);
            let cell = self.inner.shards[index].write();
            if self.shard_index(hash) == index {
                return cell;
            }
        }
    }

    /// The entry's weight: the weigher's, or 1 in a cache bounded by entry count.
    fn weight_of(&self, key: &K, value: &V) -> u32 {
        self.inner.weigher.as_ref().map_or(1, |w| w(key, value))
    }

    pub(super) fn now(&self) -> u64 {
        self.inner.clock.now_nanos()
    }

    /// The value for `key`, if present and not expired. Counts a hit or a miss.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard_for(key);
        let value = shard.read().shard.get(hash, key, || self.now());
        self.inner.adaptation.on_read(hash, &self.inner.stats);
        let counter = if value.is_some() {
            Counter::Hits
        } else {
            Counter::Misses
        };
        self.inner.stats.add(counter, 1);
        value
    }

    /// True if `key` has a live entry. Not counted as an access or in the statistics.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard_for(key);
        shard.read().shard.contains(hash, key, || self.now())
    }

    /// Inserts `value` for `key` with the cache's default TTL, replacing any previous value.
    pub fn insert(&self, key: K, value: V) {
        self.insert_entry(key, value, None, Box::default(), None);
    }

    /// Inserts with a TTL of its own, overriding the cache's default.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        self.insert_entry(key, value, Some(ttl), Box::default(), None);
    }

    /// Inserts with options: TTL and tags (see [`InsertOptions`]).
    pub fn insert_with(&self, key: K, value: V, options: &InsertOptions) {
        self.insert_entry(
            key,
            value,
            options.ttl,
            options.tags.clone().into_boxed_slice(),
            None,
        );
    }

    /// A loaded value (get-or-compute) for `key`, cached unless the key was written since its
    /// flight took off (see `coalesce.rs`).
    pub(super) fn insert_loaded(&self, key: K, value: V, flight: &LeaderGuard<'_, K, V>) {
        self.insert_entry(key, value, None, Box::default(), Some(flight));
    }

    /// Inserts, as a write of the key (a flight in the air for it is outdated), or, for
    /// `load`'s leader, only if no write of the key came since the flight took off: checked
    /// under the shard's lock, where writes outdate flights.
    #[inline]
    fn insert_entry(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        tags: Box<[crate::Tag]>,
        load: Option<&LeaderGuard<'_, K, V>>,
    ) {
        let inner = &*self.inner;
        let weight = self.weight_of(&key, &value);
        let ttl = ttl
            .or_else(|| inner.expire_after.as_ref().and_then(|f| f(&key, &value)))
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(NEVER - 1))
            .or(inner.ttl);
        let hash = inner.hasher.hash_one(&key);
        let mut removals = self.removals();
        let (added, adapt) = {
            let mut cell = self.write_shard(hash);
            if !self.may_write(hash, &key, load) {
                return;
            }
            if u64::from(weight) > cell.shard.capacity() {
                drop(cell);
                let new = NewEntry::untimed(hash, key, value, weight, tags, 0);
                return self.insert_heavy(new, ttl, removals, load);
            }
            let new = NewEntry::untimed(hash, key, value, weight, tags, 0);
            self.insert_locked(&mut cell, new, ttl, &mut removals)
        };
        self.after_insert(hash, weight, added, adapt, removals);
    }

    /// [`insert_entry`](Self::insert_entry) for an entry heavier than its shard can hold: it
    /// borrows capacity from the other shards first (see [`Shard::lend`]). Rare and slow.
    #[cold]
    #[inline(never)]
    fn insert_heavy(
        &self,
        mut new: NewEntry<K, V>,
        ttl: Option<u64>,
        mut removals: Removals<'_, K, V>,
        load: Option<&LeaderGuard<'_, K, V>>,
    ) {
        let (hash, weight) = (new.hash, new.weight);
        // Held until the lenders have settled: no change of capacity comes between, and one
        // heavy insert at a time puts the cache above its bound (by at most its loan, until
        // the lenders evict).
        let loans;
        (loans, new.loan) = self.borrow(hash, u64::from(weight));
        let (added, adapt) = {
            let mut cell = self.write_shard(hash);
            if !self.may_write(hash, &new.key, load) {
                // Outdated meanwhile: the lenders take their loan back, nobody evicts.
                drop(cell);
                self.return_loan(new.loan);
                return;
            }
            self.insert_locked(&mut cell, new, ttl, &mut removals)
        };
        if let Some(epoch) = &loans {
            self.settle_loans(**epoch, &mut removals);
        }
        drop(loans);
        self.after_insert(hash, weight, added, adapt, removals);
    }

    /// Called under the key's shard lock before a write: outdates the key's flight, if one is
    /// in the air; for a leader's own insert (`load`), false if its flight was outdated.
    #[inline]
    fn may_write<Q>(&self, hash: u64, key: &Q, load: Option<&LeaderGuard<'_, K, V>>) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match load {
            Some(flight) => !flight.outdated(),
            None => {
                self.inner.flights.outdate(hash, key);
                true
            }
        }
    }

    /// The part of an insert under the shard's lock, `new` expiring `ttl` from now. Returns
    /// whether a new key was added, and every [`ADAPT_EVERY_INSERTS`] new keys the entries the
    /// cache holds when full, as this shard sees it (its count, scaled to its whole capacity
    /// and to every shard).
    #[inline]
    fn insert_locked(
        &self,
        cell: &mut ShardCell<K, V, S>,
        mut new: NewEntry<K, V>,
        ttl: Option<u64>,
        removals: &mut Removals<'_, K, V>,
    ) -> (bool, Option<u64>) {
        let inner = &*self.inner;
        if let Some(shape) = inner.adaptation.changed_since(&mut cell.window_epoch) {
            cell.shard.set_shape(shape);
        }
        let now = if ttl.is_some() || inner.tti.is_some() || cell.shard.has_deadlines() {
            self.now()
        } else {
            0
        };
        new.expires_at = ttl.map_or(NEVER, |t| now.saturating_add(t).min(NEVER - 1));
        let added = cell.shard.insert(new, now, removals);
        cell.inserts_since_adapt += u32::from(added);
        let adapt = (cell.inserts_since_adapt >= ADAPT_EVERY_INSERTS).then(|| {
            cell.inserts_since_adapt = 0;
            let shard = &cell.shard;
            let full =
                (shard.len() as u64).saturating_mul(shard.capacity()) / shard.weight().max(1);
            full.saturating_mul(self.in_use() as u64)
        });
        (added, adapt)
    }

    /// The part of an insert after the shard's lock: statistics, listener, adaptation.
    #[inline]
    fn after_insert(
        &self,
        hash: u64,
        weight: u32,
        added: bool,
        adapt: Option<u64>,
        removals: Removals<'_, K, V>,
    ) {
        let inner = &*self.inner;
        inner.adaptation.on_insert(hash, weight);
        let counters = inner.stats.local();
        counters.add(
            if added {
                Counter::Inserts
            } else {
                Counter::Updates
            },
            1,
        );
        self.finish_counted(removals, counters);
        if let Some(entries) = adapt {
            if inner.unsplit.load(Ordering::Relaxed) {
                self.split(entries);
            }
            inner.adaptation.on_inserts(&inner.stats, entries);
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
    fn split(&self, entries: u64) {
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

    /// Lends capacity from the other shards to the shard of `hash`, which cannot hold an
    /// entry of `weight`: what the entry displaces in an unsharded cache, spread evenly over
    /// all shards (the home shard evicts its part itself), and at least what the home shard
    /// lacks. Returns `loans`, held until the lenders settle, and the loan; nothing for an
    /// entry heavier than the whole cache, which the shard refuses.
    fn borrow(&self, hash: u64, weight: u64) -> (Option<MutexGuard<'_, u64>>, u64) {
        let guard = self.inner.loans.lock();
        let home = self.inner.shards[self.shard_index(hash)]
            .read()
            .shard
            .capacity();
        match self.lend_to(hash, home, weight) {
            0 => (None, 0),
            loan => (Some(guard), loan),
        }
    }

    /// The lending of [`borrow`](Self::borrow), for an entry of `weight` in the shard of
    /// `hash`, whose capacity is `home` (and which the caller may hold locked). The caller
    /// holds `loans`. Returns the loan.
    fn lend_to(&self, hash: u64, home: u64, weight: u64) -> u64 {
        let shards = &self.inner.shards[..self.in_use()];
        let n = shards.len() as u64;
        if n == 1 || weight > self.capacity() {
            return 0;
        }
        let home_index = self.shard_index(hash);
        let lacking = weight.saturating_sub(home);
        let need = (weight - weight / n).max(lacking);
        let part = need.div_ceil(n - 1);
        let mut loan = 0;
        for (i, lock) in shards.iter().enumerate() {
            if i != home_index && loan < need {
                loan += lock.write().shard.lend(part.min(need - loan));
            }
        }
        loan
    }

    /// After a heavy entry's insert: the lenders evict down to what they have left. If the
    /// policy turned the entry away, its loan goes back first and they evict nothing. The
    /// caller holds `loans`, of `epoch`.
    #[cold]
    #[inline(never)]
    fn settle_loans(&self, epoch: u64, removals: &mut Removals<'_, K, V>) {
        self.repay_locked(epoch, removals.take_repaid());
        for lock in self.inner.shards.iter() {
            let mut cell = lock.write();
            if cell.shard.lent() > 0 {
                cell.shard.settle(removals);
            }
        }
        // A lender may have evicted a heavy entry of its own.
        self.repay_locked(epoch, removals.take_repaid());
    }

    /// Gives capacity that heavy entries handed back by leaving to the shards that lent it.
    #[cold]
    #[inline(never)]
    fn repay(&self, repaid: Repaid) {
        let epoch = self.inner.loans.lock();
        self.repay_locked(*epoch, repaid);
    }

    /// [`repay`](Self::repay), for a caller that holds `loans`, of `epoch`. A loan lent
    /// before the epoch began is void: the new bound gave every shard its share.
    fn repay_locked(&self, epoch: u64, repaid: Repaid) {
        if repaid.epoch == epoch {
            self.return_loan(repaid.amount);
        }
    }

    /// The lenders take back `amount`, lent in the current epoch. The caller holds `loans`.
    fn return_loan(&self, mut amount: u64) {
        for lock in self.inner.shards.iter() {
            if amount == 0 {
                break;
            }
            let mut cell = lock.write();
            if cell.shard.lent() > 0 {
                amount -= cell.shard.take_back(amount);
            }
        }
    }

    /// Changes the live value for `key` in place; false if there is none. Not an access and
    /// not a replacement: the entry keeps its place in the eviction order, its expiry and its
    /// tags; no statistic counts it and no listener hears of it. The entry is re-weighed (and
    /// the cache evicts if it is now over its bound). `change` runs under a shard's lock: it
    /// must not use this cache. An entry that `change` makes heavier than its shard's share
    /// of the capacity borrows room from the other shards, as one inserted that heavy does
    /// (see [`CacheBuilder::weigher`](crate::CacheBuilder::weigher)), unless another such
    /// heavy write is under way at that moment; then, or if it is heavier than the whole
    /// capacity, it is evicted (`Size`).
    ///
    /// For bookkeeping a value carries (a version, where a copy of it was written) rather than
    /// for a new value, which [`insert`](Self::insert) sets as an access.
    ///
    /// ```
    /// let cache = strata::Cache::new(10);
    /// cache.insert("page", (String::from("<h1>Hi</h1>"), false));
    /// assert!(cache.update(&"page", |(_, saved)| *saved = true));
    /// assert_eq!(cache.peek(&"page"), Some((String::from("<h1>Hi</h1>"), true)));
    /// assert!(!cache.update(&"absent", |(_, saved)| *saved = true));
    /// assert_eq!(cache.stats().inserts, 1);
    /// ```
    pub fn update<Q>(&self, key: &Q, change: impl FnOnce(&mut V)) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let mut removals = self.removals();
        let (updated, loans) = {
            let mut cell = self.write_shard(hash);
            let updated = cell.shard.update(
                hash,
                key,
                || self.now(),
                change,
                |key, value| self.weight_of(key, value),
                &mut removals,
            );
            let loans = match updated {
                Updated::Outgrew { slot, weight } => {
                    self.grant(&mut cell, hash, slot, weight, &mut removals)
                }
                _ => None,
            };
            (!matches!(updated, Updated::Missing), loans)
        };
        if let Some(epoch) = &loans {
            self.settle_loans(**epoch, &mut removals);
        }
        drop(loans);
        self.finish(removals);
        updated
    }

    /// [`update`](Self::update) made the entry at `slot` of the shard `cell` (locked)
    /// heavier than the shard: borrows for it as [`insert_heavy`](Self::insert_heavy) does,
    /// and returns `loans`, to hold until the lenders have settled. Only if no other heavy
    /// write is in flight: `loans` is only tried, since a heavy write holding it may be
    /// waiting for this shard. Otherwise, or if the entry is heavier than the cache, the
    /// entry is evicted.
    #[cold]
    #[inline(never)]
    fn grant(
        &self,
        cell: &mut ShardCell<K, V, S>,
        hash: u64,
        slot: u32,
        weight: u32,
        removals: &mut Removals<'_, K, V>,
    ) -> Option<MutexGuard<'_, u64>> {
        let loans = self.inner.loans.try_lock();
        let loan = loans.as_ref().map_or(0, |_| {
            self.lend_to(hash, cell.shard.capacity(), u64::from(weight))
        });
        cell.shard.grant(slot, loan, removals);
        loans.filter(|_| loan > 0)
    }

    /// Removes `key`, returning its value if it had a live one.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let mut removals = self.removals();
        let value = {
            let mut cell = self.write_shard(hash);
            self.inner.flights.outdate(hash, key);
            cell.shard.remove(hash, key, || self.now(), &mut removals)
        };
        self.finish(removals);
        value
    }

    /// Removes every entry carrying `tag` (see [`InsertOptions::tag`]); returns how many.
    pub fn invalidate_tag(&self, tag: &str) -> usize {
        let mut removals = self.removals();
        // Before any shard: a load that caches after this sees its flight outdated, one that
        // cached before is in a shard still to be gone through.
        self.inner.flights.outdate_all();
        for lock in self.inner.shards.iter() {
            lock.write().shard.invalidate_tag(tag, &mut removals);
        }
        let removed = removals.count(RemovalCause::Tag);
        self.finish(removals);
        removed as usize
    }

    /// Removes every entry.
    pub fn invalidate_all(&self) {
        self.retain(|_, _| false);
    }

    /// Keeps only the entries for which `keep` returns true (and reclaims expired ones).
    /// `keep` runs under a shard's lock: it must not use this cache.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut removals = self.removals();
        let now = self.now();
        // As in `invalidate_tag`.
        self.inner.flights.outdate_all();
        for lock in self.inner.shards.iter() {
            lock.write().shard.retain(now, &mut keep, &mut removals);
        }
        self.finish(removals);
    }

    /// Removes the entries for which `predicate` returns true; the opposite of [`retain`](Self::retain).
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) {
        self.retain(|k, v| !predicate(k, v));
    }

    /// Reclaims expired entries now. Not required: writes reclaim them too, a batch at a time;
    /// an application that goes quiet can call this periodically to free their memory (the
    /// Strata server does, ten times a second).
    pub fn run_pending_tasks(&self) {
        let now = self.now();
        for lock in self.inner.shards.iter() {
            // In batches, with the lock released between them: reclaiming a mass expiry does
            // not stall the shard's readers and writers.
            loop {
                let mut removals = self.removals();
                let more = lock
                    .write()
                    .shard
                    .expire(now, PENDING_TASKS_BATCH, &mut removals);
                self.finish(removals);
                if !more {
                    break;
                }
            }
        }
    }

    /// A snapshot of the live entries, taken one shard at a time (no lock is held while you
    /// iterate, so the cache may change meanwhile).
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + '_
    where
        K: Clone,
    {
        let now = self.now();
        self.inner
            .shards
            .iter()
            .flat_map(move |lock| lock.read().shard.snapshot(now))
    }

    /// Number of entries held, including expired ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.read().shard.len()).sum()
    }

    /// True when no entries are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight of the entries held (their count without a weigher).
    pub fn weighted_size(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|s| s.read().shard.weight())
            .sum()
    }

    /// The bound: given to the builder, or later to
    /// [`set_max_capacity`](Self::set_max_capacity).
    pub fn capacity(&self) -> u64 {
        self.inner.capacity.load(Ordering::Relaxed)
    }

    /// Changes the bound (entries, or total weight with a weigher). A smaller bound evicts, by
    /// the cache's policy, before this returns; the eviction listener hears of each entry.
    ///
    /// ```
    /// let cache = strata::Cache::new(100);
    /// for i in 0..100 {
    ///     cache.insert(i, i);
    /// }
    /// cache.set_max_capacity(10);
    /// assert!(cache.weighted_size() <= 10);
    /// assert_eq!(cache.capacity(), 10);
    /// // 0, as in the builder, is a cache that holds nothing (caching turned off), until a
    /// // bound above 0 makes room again.
    /// cache.set_max_capacity(0);
    /// cache.insert(1, 1);
    /// assert!(cache.is_empty());
    /// ```
    pub fn set_max_capacity(&self, capacity: u64) {
        self.inner.capacity.store(capacity, Ordering::Relaxed);
        let mut removals = self.removals();
        {
            // Loans end: every shard gets its share of the new bound. First every shard
            // shrinks to it if above (a borrower included), then every shard grows to it: the
            // shards' capacities never add up to more than the old or the new bound.
            let mut epoch = self.inner.loans.lock();
            *epoch += 1;
            let in_use = self.in_use() as u64;
            let shards = &self.inner.shards[..in_use as usize];
            for (i, lock) in shards.iter().enumerate() {
                let mut cell = lock.write();
                let shrunk = cell.shard.capacity().min(share(capacity, in_use, i as u64));
                cell.shard.set_capacity(shrunk, *epoch, &mut removals);
            }
            for (i, lock) in shards.iter().enumerate() {
                let share = share(capacity, in_use, i as u64);
                lock.write()
                    .shard
                    .set_capacity(share, *epoch, &mut removals);
            }
        }
        self.finish(removals);
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }

    /// Hits, misses, size and capacity, like `lru_cache`'s `cache_info()`.
    pub fn info(&self) -> CacheInfo {
        let stats = self.stats();
        CacheInfo {
            hits: stats.hits,
            misses: stats.misses,
            size: self.len() as u64,
            capacity: self.capacity(),
        }
    }

    /// Collects what a write removes; keeps the entries only when a listener wants them.
    fn removals(&self) -> Removals<'_, K, V> {
        Removals::new(
            self.inner.listener.is_some(),
            self.inner.sync_listener.as_ref(),
        )
    }

    /// Records removal counts and hands entries to the listener, outside any lock.
    fn finish(&self, removals: Removals<'_, K, V>) {
        self.finish_counted(removals, self.inner.stats.local());
    }

    /// [`finish`](Self::finish) with the calling thread's counters already at hand.
    #[inline]
    fn finish_counted(&self, mut removals: Removals<'_, K, V>, counters: &Block) {
        let repaid = removals.take_repaid();
        if repaid.amount > 0 {
            self.repay(repaid);
        }
        let entries = removals.finish(counters);
        if let Some(listener) = &self.inner.listener {
            for (key, value, cause) in entries {
                listener(key, value, cause);
            }
        }
    }

    /// Checks every shard's internal invariants (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let (mut capacity, mut lent, mut borrowed) = (0, 0, 0);
        for (i, lock) in self.inner.shards.iter().enumerate() {
            let cell = lock.read();
            cell.shard.check();
            // Every key is in the shard its hash picks; the shards not in use are empty.
            assert!(
                cell.shard
                    .hashes()
                    .iter()
                    .all(|&h| self.shard_index(h) == i)
            );
            capacity += cell.shard.capacity();
            lent += cell.shard.lent();
            borrowed += cell.shard.borrowed();
        }
        // Capacity only moves between shards, and every loan is owed to a lender.
        assert_eq!(capacity, self.capacity());
        assert_eq!(lent, borrowed);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex as StdMutex;

    use proptest::prelude::*;

    use super::*;
    use crate::{EvictionPolicy, MockClock};

    #[derive(Debug, Clone)]
    enum Op {
        Insert {
            key: u8,
            ttl: Option<u8>,
            tag: Option<u8>,
        },
        Get(u8),
        /// `get_with`: the live value, or a new one computed and inserted.
        GetWith(u8),
        /// Neither of these is an access: the idle time goes on.
        Peek(u8),
        Contains(u8),
        Iter,
        Update(u8),
        Remove(u8),
        InvalidateAll,
        InvalidateTag(u8),
        Advance(u8),
        RetainEven,
        Maintain,
        /// A new bound, 1 to 24 (× 65,536 for a roomy cache).
        Resize(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), proptest::option::of(1..20_u8), proptest::option::of(0..4_u8))
                .prop_map(|(key, ttl, tag)| Op::Insert { key: key % 64, ttl, tag }),
            4 => any::<u8>().prop_map(|k| Op::Get(k % 64)),
            1 => any::<u8>().prop_map(|k| Op::GetWith(k % 64)),
            1 => any::<u8>().prop_map(|k| Op::Peek(k % 64)),
            1 => any::<u8>().prop_map(|k| Op::Contains(k % 64)),
            1 => Just(Op::Iter),
            1 => any::<u8>().prop_map(|k| Op::Update(k % 64)),
            1 => any::<u8>().prop_map(|k| Op::Remove(k % 64)),
            1 => (0..4_u8).prop_map(Op::InvalidateTag),
            1 => (1..10_u8).prop_map(Op::Advance),
            1 => Just(Op::RetainEven),
            1 => Just(Op::Maintain),
            1 => (0..25_u8).prop_map(Op::Resize),
            1 => Just(Op::InvalidateAll),
        ]
    }

    /// What the model knows of a key: the value written last, its deadline and tag, and
    /// when it was last read or written.
    #[derive(Debug, Clone, Copy)]
    struct Model {
        value: u32,
        deadline: Option<u64>,
        tag: Option<u8>,
        last_access: u64,
    }

    impl Model {
        /// Neither its TTL nor, in a cache with a time-to-idle of `idle`, its idle time has run
        /// out at `now`.
        fn alive(&self, now: u64, idle: Option<u8>) -> bool {
            self.deadline.is_none_or(|d| d > now)
                && idle.is_none_or(|idle| self.last_access + u64::from(idle) > now)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random operation sequences against a map model: the cache never exceeds its bound,
        /// never returns a value that is not the latest one written, and never returns a
        /// removed, tag-invalidated or expired entry. The listener accounts for every entry.
        /// Weighted, entries weigh 1 to 8: often more than a shard's share, so that capacity
        /// moves between shards (on inserts and on updates), and the bound changes meanwhile (`check` sees that no
        /// capacity is created or lost). With room for every key ("roomy", bounds in the
        /// hundreds of thousands) and the default shards, a weighted cache chooses its shard
        /// count midway (7 cases in 256). Some caches have a time-to-idle, a default TTL, a
        /// TTL computed from the value (`expire_after`), or several.
        #[test]
        fn behaves_like_a_bounded_map(ops in proptest::collection::vec(op(), 1..300), mut capacity in 1..24_u64, seed in any::<u64>(), idle in proptest::option::of(1..12_u8), default_ttl in proptest::option::of(1..20_u8), by_value in any::<bool>(), roomy in any::<bool>(), shards in 0..4_u32, policy in 0..4_usize, weighted in any::<bool>()) {
            if roomy {
                capacity = 1 << 20;
            }
            let clock = MockClock::new();
            let removed = Arc::new(StdMutex::new(Vec::new()));
            let sink = removed.clone();
            let heard_sync = Arc::new(StdMutex::new(Vec::new()));
            let sync_sink = heard_sync.clone();
            let policy = [
                EvictionPolicy::adaptive(),
                EvictionPolicy::tiny_lfu_with_window(0.0),
                EvictionPolicy::tiny_lfu_with_window(1.0),
                EvictionPolicy::s3_fifo(),
            ][policy];
            let mut builder = Cache::<u8, u32>::builder()
                .hasher(foldhash::fast::FixedState::with_seed(seed))
                .max_capacity(capacity)
                .eviction_policy(policy)
                .clock(clock.clone())
                .eviction_listener(move |k, v, cause| sink.lock().expect("listener lock").push((k, v, cause)))
                // The synchronous listener (the server's path to its disk tier) must hear of
                // the same removals, each once.
                .synchronous_eviction_listener(move |k: &u8, v: &u32, cause| sync_sink.lock().expect("listener lock").push((*k, *v, cause)));
            if shards < 3 {
                builder = builder.shards(1 << shards);
            }
            if let Some(idle) = idle {
                builder = builder.time_to_idle(Duration::from_secs(idle.into()));
            }
            if let Some(ttl) = default_ttl {
                builder = builder.time_to_live(Duration::from_secs(ttl.into()));
            }
            // A value's own TTL, for one value in three: between an explicit TTL and the
            // default one.
            let value_ttl = move |v: u32| (by_value && v.is_multiple_of(3)).then_some(1 + v % 7);
            if by_value {
                builder = builder.expire_after(move |_, v| value_ttl(*v).map(|t| Duration::from_secs(t.into())));
            }
            let ttl_of = move |explicit: Option<u8>, v: u32| {
                explicit.map(u32::from).or(value_ttl(v)).or(default_ttl.map(u32::from))
            };
            if weighted {
                // By value too: an update re-weighs its entry, often past its shard's share.
                builder = builder.weigher(|k, v| 1 + (u32::from(*k) + *v) % 8);
            }
            let cache = builder.build().expect("valid config");
            if roomy {
                // 40 keys the operations never touch: a weighted cache with the default
                // shards splits at its 64th new key, amid the operations.
                for key in 128..168 {
                    cache.insert(key, 0);
                }
            }
            let mut model: HashMap<u8, Model> = HashMap::new();
            let mut now = 0_u64;
            let mut version = 0_u32;
            for op in ops {
                match op {
                    Op::Insert { key, ttl, tag } => {
                        version += 1;
                        let mut options = InsertOptions::new();
                        if let Some(ttl) = ttl {
                            options = options.ttl(Duration::from_secs(ttl.into()));
                        }
                        if let Some(tag) = tag {
                            options = options.tag(format!("t{tag}"));
                        }
                        cache.insert_with(key, version, &options);
                        model.insert(key, Model {
                            value: version,
                            deadline: ttl_of(ttl, version).map(|t| now + u64::from(t)),
                            tag,
                            last_access: now,
                        });
                    }
                    Op::Get(key) => {
                        let live = model.get_mut(&key).filter(|m| m.alive(now, idle));
                        // None is allowed (evicted); a value must be the latest live one.
                        if let Some(value) = cache.get(&key) {
                            let expected = live.map(|m| {
                                m.last_access = now;
                                m.value
                            });
                            prop_assert_eq!(Some(value), expected, "key {} returned a stale or dead value", key);
                        }
                    }
                    Op::GetWith(key) => {
                        version += 1;
                        let loaded = std::cell::Cell::new(false);
                        let got = cache.get_with(key, || {
                            loaded.set(true);
                            version
                        });
                        let live = model.get_mut(&key).filter(|m| m.alive(now, idle));
                        match live {
                            // Still cached: a hit, an access. (Told by the loader not running,
                            // not by the value: an updated value may equal the new version.)
                            Some(m) if !loaded.get() => {
                                prop_assert_eq!(got, m.value, "key {} returned a stale value", key);
                                m.last_access = now;
                            }
                            None if !loaded.get() => prop_assert!(false, "key {} returned {} though dead", key, got),
                            _ => {
                                prop_assert_eq!(got, version, "key {} did not return its load", key);
                                let deadline = ttl_of(None, version).map(|t| now + u64::from(t));
                                model.insert(key, Model { value: version, deadline, tag: None, last_access: now });
                            }
                        }
                    }
                    Op::Peek(key) => {
                        if let Some(value) = cache.peek(&key) {
                            let live = model.get(&key).filter(|m| m.alive(now, idle));
                            prop_assert_eq!(Some(value), live.map(|m| m.value), "key {} peeked a stale or dead value", key);
                        }
                    }
                    Op::Contains(key) => {
                        if cache.contains_key(&key) {
                            prop_assert!(model.get(&key).is_some_and(|m| m.alive(now, idle)), "key {} contained though dead", key);
                        }
                    }
                    Op::Iter => {
                        for (key, value) in cache.iter() {
                            if key < 64 {
                                let live = model.get(&key).filter(|m| m.alive(now, idle));
                                prop_assert_eq!(Some(value), live.map(|m| m.value), "key {} listed stale or dead", key);
                            }
                        }
                    }
                    Op::InvalidateAll => {
                        cache.invalidate_all();
                        model.clear();
                        prop_assert!(cache.is_empty());
                    }
                    Op::Update(key) => {
                        // +2 keeps the value's parity, which `RetainEven` goes by.
                        let updated = cache.update(&key, |v| *v += 2);
                        let live = model.get_mut(&key).filter(|m| m.alive(now, idle));
                        match live {
                            Some(m) if updated => m.value += 2,
                            Some(_) => {} // evicted
                            None => prop_assert!(!updated, "key {} updated though dead", key),
                        }
                    }
                    Op::Remove(key) => {
                        let got = cache.remove(&key);
                        let live = model.remove(&key).filter(|m| m.alive(now, idle));
                        if let Some(value) = got {
                            prop_assert_eq!(Some(value), live.map(|m| m.value));
                        }
                    }
                    Op::InvalidateTag(tag) => {
                        cache.invalidate_tag(&format!("t{tag}"));
                        model.retain(|_, m| m.tag != Some(tag));
                    }
                    Op::Advance(secs) => {
                        clock.advance(Duration::from_secs(secs.into()));
                        now += u64::from(secs);
                    }
                    Op::RetainEven => {
                        cache.retain(|_, v| v % 2 == 0);
                        model.retain(|_, m| m.value % 2 == 0);
                    }
                    Op::Maintain => cache.run_pending_tasks(),
                    Op::Resize(bound) => {
                        capacity = u64::from(bound) << if roomy { 16 } else { 0 };
                        cache.set_max_capacity(capacity);
                    }
                }
                prop_assert!(cache.weighted_size() <= capacity);
                prop_assert!(cache.len() as u64 <= capacity);
                cache.check();
            }
            // Every key the model still holds alive is either in the cache with the latest
            // value or was evicted for size (never silently lost).
            let removed = removed.lock().expect("listener lock").clone();
            for (key, m) in &model {
                if !m.alive(now, idle) {
                    continue;
                }
                match cache.get(key) {
                    Some(v) => prop_assert_eq!(v, m.value),
                    None => prop_assert!(
                        removed.iter().any(|(k, v, c)| k == key && *v == m.value && *c == RemovalCause::Size),
                        "key {} vanished without a size eviction", key
                    ),
                }
            }
            let stats = cache.stats();
            prop_assert_eq!(stats.removals() as usize, removed.len());
            prop_assert_eq!(&*heard_sync.lock().expect("listener lock"), &removed);
        }
    }

    /// Found by `behaves_like_a_bounded_map`: `remove` handed back the value of an entry whose
    /// TTL had passed but which was not reclaimed yet.
    #[test]
    fn remove_does_not_return_an_expired_value() {
        let clock = MockClock::new();
        let causes = Arc::new(StdMutex::new(Vec::new()));
        let sink = causes.clone();
        let cache = Cache::<u32, u32>::builder()
            .max_capacity(10)
            .clock(clock.clone())
            .eviction_listener(move |_, _, cause| sink.lock().expect("lock").push(cause))
            .build()
            .expect("valid config");
        cache.insert_with_ttl(8, 1, Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.remove(&8), None);
        assert_eq!(*causes.lock().expect("lock"), [RemovalCause::Expired]);
    }

    /// `update` changes a value without being an access or a replacement: no statistic, no
    /// listener; the entry keeps its expiry and its tags, and is re-weighed.
    #[test]
    fn update_changes_a_value_in_place() {
        let clock = MockClock::new();
        let causes = Arc::new(StdMutex::new(Vec::new()));
        let sink = causes.clone();
        let cache = Cache::<u32, Vec<u8>>::builder()
            .max_capacity(100)
            .weigher(|_, v: &Vec<u8>| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .shards(1)
            .clock(clock.clone())
            .eviction_listener(move |k, _, cause| sink.lock().expect("lock").push((k, cause)))
            .build()
            .expect("valid config");
        let options = InsertOptions::new().ttl(Duration::from_secs(10)).tag("t");
        cache.insert_with(1, vec![0; 10], &options);
        cache.insert(2, vec![0; 10]);
        let before = cache.stats();

        assert!(cache.update(&1, |v| v.push(7)));
        assert!(
            !cache.update(&3, |v| v.push(7)),
            "no entry, nothing to change"
        );
        assert_eq!(cache.peek(&1).map(|v| v.len()), Some(11));
        assert_eq!(cache.weighted_size(), 21, "re-weighed");
        assert_eq!(cache.stats(), before, "not counted");
        assert!(causes.lock().expect("lock").is_empty(), "not a removal");
        assert_eq!(cache.invalidate_tag("t"), 1, "its tags stay");

        cache.insert_with_ttl(1, vec![0; 10], Duration::from_secs(10));
        clock.advance(Duration::from_secs(10));
        assert!(!cache.update(&1, |v| v.push(7)), "its expiry stays");

        // Heavier than the bound now: evicted, as an insert of it would be refused.
        assert!(cache.update(&2, |v| v.resize(101, 0)));
        assert_eq!(cache.peek(&2), None);
        assert!(cache.weighted_size() <= 100);
        cache.check();
    }

    /// A peek does not reset the time-to-idle; a get does.
    #[test]
    fn peek_is_not_an_access() {
        let clock = MockClock::new();
        let cache = Cache::<u32, u32>::builder()
            .max_capacity(10)
            .time_to_idle(Duration::from_secs(10))
            .clock(clock.clone())
            .build()
            .expect("valid config");
        cache.insert(1, 1);
        cache.insert(2, 2);
        clock.advance(Duration::from_secs(6));
        assert_eq!(cache.peek(&1), Some(1));
        assert_eq!(cache.get(&2), Some(2));
        clock.advance(Duration::from_secs(6));
        assert_eq!(cache.peek(&1), None, "idle for 12 s");
        assert_eq!(cache.peek(&2), Some(2), "idle for 6 s");
    }

    #[test]
    fn stale_deadline_nodes_do_not_expire_a_rewritten_entry() {
        let clock = MockClock::new();
        let cache = Cache::<u32, u32>::builder()
            .max_capacity(10)
            .clock(clock.clone())
            .build()
            .expect("valid config");
        cache.insert_with_ttl(1, 1, Duration::from_secs(5));
        cache.insert(1, 2); // no TTL any more
        clock.advance(Duration::from_secs(10));
        cache.run_pending_tasks();
        assert_eq!(cache.get(&1), Some(2));
        cache.check();
    }

    /// A cache of 8,000 bytes in 8 shards (a 1,000-byte share each), pinned to TinyLFU.
    fn bytes_cache() -> Cache<u32, Vec<u8>> {
        Cache::builder()
            .max_capacity(8_000)
            .shards(8)
            .weigher(|_, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
            .eviction_policy(EvictionPolicy::tiny_lfu())
            .build()
            .expect("valid config")
    }

    /// [`bytes_cache`] holding 40 entries of 10 bytes. The hasher is seeded per process, and
    /// 40 sequential keys sometimes crowd into a few shards: 400 bytes fit beside a 3,000-byte
    /// entry in any one shard, so whatever the spread, nothing needs evicting.
    fn lightly_filled() -> Cache<u32, Vec<u8>> {
        let cache = bytes_cache();
        for key in 0..40 {
            cache.insert(key, vec![0; 10]);
        }
        cache
    }

    /// Each shard's capacity and what it has lent.
    fn shares(cache: &Cache<u32, Vec<u8>>) -> Vec<(u64, u64)> {
        let cells = cache.inner.shards.iter().map(|lock| lock.read());
        cells
            .map(|cell| (cell.shard.capacity(), cell.shard.lent()))
            .collect()
    }

    /// The invariants hold and every shard has its `share`, no loan outstanding.
    fn assert_no_loans(cache: &Cache<u32, Vec<u8>>, share: u64) {
        cache.check();
        assert!(
            shares(cache).iter().all(|&s| s == (share, 0)),
            "{:?}",
            shares(cache)
        );
    }

    /// An entry three times its shard's share is stored, as in an unsharded cache: the other
    /// shards lend it capacity, and have it back when it leaves.
    #[test]
    fn an_entry_heavier_than_its_shard_borrows_from_the_others() {
        let cache = lightly_filled();
        cache.insert(1_000, vec![0; 3_000]);
        assert_eq!(cache.get(&1_000).map(|v| v.len()), Some(3_000));
        assert!(cache.weighted_size() <= 8_000);
        cache.check();
        let home = cache.shard_index(cache.inner.hasher.hash_one(1_000_u32));
        for (i, (capacity, lent)) in shares(&cache).into_iter().enumerate() {
            if i == home {
                assert!(capacity >= 3_000, "the home shard holds the entry");
            } else {
                assert!(lent > 0 && capacity < 1_000, "shard {i} lent its part");
            }
        }
        cache.remove(&1_000);
        assert_no_loans(&cache, 1_000);
    }

    /// A heavy newcomer that TinyLFU turns away (its one sighting against the many entries it
    /// would displace) leaves every other entry in place: the lenders evict only for an entry
    /// that stays.
    #[test]
    fn a_heavy_newcomer_turned_away_displaces_nothing() {
        let cache = bytes_cache();
        for key in 0..200 {
            cache.insert(key, vec![0; 50]);
        }
        let held: Vec<u32> = (0..200).filter(|key| cache.contains_key(key)).collect();
        // A key whose shard is full, so that it must displace entries there: a shard that
        // the hasher left emptier would take it without a duel.
        let heavy = (1_000..)
            .find(|key: &u32| {
                let home = cache.shard_index(cache.inner.hasher.hash_one(key));
                cache.inner.shards[home].read().shard.weight() >= 950
            })
            .expect("200 keys of 50 bytes fill some shard of 1,000");
        let evicted = cache.stats().evicted_size;
        cache.insert(heavy, vec![0; 3_000]);
        assert_eq!(cache.get(&heavy), None);
        assert!(held.iter().all(|key| cache.contains_key(key)));
        assert_eq!(cache.stats().evicted_size, evicted + 1);
        assert_no_loans(&cache, 1_000);
    }

    /// A new bound ends the loans: every shard gets its share of it, whatever it had lent or
    /// borrowed, and the heavy entry leaving later gives nothing back twice.
    #[test]
    fn a_new_bound_ends_the_loans() {
        let cache = bytes_cache();
        cache.insert(1_000, vec![0; 3_000]);
        assert!(shares(&cache).iter().any(|&(_, lent)| lent > 0));
        cache.set_max_capacity(16_000);
        assert_no_loans(&cache, 2_000);
        cache.remove(&1_000);
        assert_no_loans(&cache, 2_000);
    }

    /// A loan that comes back after a new bound ended the loans is void: the bound gave every
    /// shard its share, and what the shards have lent since is another entry's. (Paid back
    /// to them, it made capacity: a remover hands the loan back after its shard's lock, and
    /// a thread changing the bound can come between.)
    #[test]
    fn a_loan_repaid_after_a_new_bound_is_void() {
        let cache = bytes_cache();
        cache.insert(1_000, vec![0; 3_000]);
        // A remover, up to the moment it hands the loan back.
        let hash = cache.inner.hasher.hash_one(1_000_u32);
        let mut removals = cache.removals();
        let removed = (cache.write_shard(hash).shard).remove(hash, &1_000, || 0, &mut removals);
        assert!(removed.is_some());
        cache.set_max_capacity(8_000);
        cache.insert(2_000, vec![0; 3_000]);
        assert!(cache.contains_key(&2_000));
        cache.finish(removals);
        cache.check();
        cache.remove(&2_000);
        assert_no_loans(&cache, 1_000);
    }

    /// An entry that an update makes heavier than its shard keeps its place, as one
    /// inserted that heavy would: the other shards lend. Made heavier than the whole cache, it
    /// is evicted, and the loans go back.
    #[test]
    fn an_update_that_outgrows_the_shard_borrows() {
        let cache = lightly_filled();
        cache.insert(1_000, vec![0; 500]);
        assert!(cache.update(&1_000, |v| v.resize(3_000, 1)));
        assert_eq!(cache.peek(&1_000).map(|v| v.len()), Some(3_000));
        assert!(cache.weighted_size() <= 8_000);
        assert!(
            shares(&cache)
                .iter()
                .any(|&(capacity, _)| capacity >= 3_000)
        );
        cache.check();
        let evicted = cache.stats().evicted_size;
        assert!(cache.update(&1_000, |v| v.resize(9_000, 1)));
        assert_eq!(cache.peek(&1_000), None, "heavier than the cache");
        assert_eq!(cache.stats().evicted_size, evicted + 1);
        assert_no_loans(&cache, 1_000);
    }

    /// An entry that got lighter since it borrowed keeps its loan, and its shard fills the
    /// room. When it leaves it gives back the whole loan, more than its weight: the shard
    /// evicts down to what it has left (it stayed above its capacity before).
    #[test]
    fn a_lightened_entry_gives_back_its_whole_loan() {
        let cache = bytes_cache();
        cache.insert(1_000, vec![0; 3_000]);
        cache.insert(1_000, vec![0; 10]);
        let home = cache.shard_index(cache.inner.hasher.hash_one(1_000_u32));
        let home_weight = || cache.inner.shards[home].read().shard.weight();
        for key in (0..100_000)
            .filter(|key: &u32| cache.shard_index(cache.inner.hasher.hash_one(key)) == home)
        {
            if home_weight() >= 2_000 {
                break;
            }
            cache.insert(key, vec![0; 50]);
        }
        assert!(home_weight() >= 2_000, "the home shard filled its loan");
        cache.remove(&1_000);
        assert_no_loans(&cache, 1_000);
    }

    /// An entry heavier than the whole cache is refused, and no capacity moves.
    #[test]
    fn an_entry_heavier_than_the_cache_is_refused() {
        let cache = bytes_cache();
        cache.insert(1, vec![0; 8_001]);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.stats().evicted_size, 1);
        assert_no_loans(&cache, 1_000);
    }

    /// Four threads insert light and heavy entries (up to 3 shards' worth), replace, grow
    /// (`update`) and remove them, and one of them changes the bound now and then. The weight never exceeds the
    /// bound by more than one heavy entry being inserted, no capacity is made or lost, and
    /// once the entries are gone every shard has its share back.
    #[test]
    fn heavy_entries_under_concurrent_writes() {
        const CAPACITY: u64 = 64 << 10;
        const HEAVY: usize = 24 << 10;
        let cache: Cache<u32, Vec<u8>> = Cache::builder()
            .max_capacity(CAPACITY)
            .shards(8)
            .weigher(|_, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
            .build()
            .expect("valid config");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (cache, stop) = (cache.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut snapshots = 0;
                while !stop.load(Ordering::Relaxed) {
                    // All shards at one instant (`weighted_size` reads them in turn, and
                    // capacity moves between them meanwhile). Only tried: a thread holding
                    // several shards must hold `loans` (a blocking read here deadlocked with
                    // an update borrowing under its shard's lock).
                    let shards: Option<Vec<_>> =
                        cache.inner.shards.iter().map(|s| s.try_read()).collect();
                    if let Some(shards) = shards {
                        let weight: u64 = shards.iter().map(|cell| cell.shard.weight()).sum();
                        let capacity: u64 = shards.iter().map(|cell| cell.shard.capacity()).sum();
                        // A bound changing meanwhile is at most `CAPACITY`.
                        assert!(capacity <= CAPACITY, "capacity made: {capacity}");
                        assert!(weight <= CAPACITY + HEAVY as u64, "{weight}");
                        snapshots += 1;
                    }
                }
                snapshots
            })
        };
        let workers: Vec<_> = (0..4_u32)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let mut x = u64::from(t) + 1;
                    for i in 0..20_000 {
                        if t == 0 && i % 2_000 == 1_999 {
                            let bound = if i % 4_000 == 1_999 {
                                CAPACITY * 3 / 4
                            } else {
                                CAPACITY
                            };
                            cache.set_max_capacity(bound);
                        }
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = (x % 4_096) as u32;
                        match x >> 60 {
                            0 => {
                                cache.remove(&key);
                            }
                            1 => cache.insert(
                                key,
                                vec![t as u8; HEAVY / 2 + (x >> 20) as usize % (HEAVY / 2)],
                            ),
                            2 => {
                                // Grows a light entry past its shard's share, or shrinks it.
                                let len = HEAVY / 2 + (x >> 20) as usize % (HEAVY / 2);
                                cache.update(&key, |value| value.resize(len % 9_000, t as u8));
                            }
                            _ => {
                                if cache.get(&key).is_none() {
                                    cache.insert(key, vec![t as u8; 1 + (x >> 20) as usize % 512]);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        stop.store(true, Ordering::Relaxed);
        let snapshots = watcher.join().expect("the bound held");
        assert!(snapshots > 0, "the watcher saw every shard at once");
        assert!(cache.weighted_size() <= CAPACITY);
        cache.check();
        cache.invalidate_all();
        assert_no_loans(&cache, 8 << 10);
    }

    /// A weighted cache of entries weighing 1.
    fn light_cache(capacity: u64) -> Cache<u32, u32> {
        Cache::builder()
            .max_capacity(capacity)
            .weigher(|_, _| 1)
            .build()
            .expect("valid config")
    }

    /// A weighted cache starts as one shard and chooses its shard count from its first new
    /// keys' mean weight, as a cache bounded by entries does from its bound: light entries get
    /// the shards their number calls for, large values few.
    #[test]
    fn a_weighted_cache_chooses_its_shards_from_its_first_entries() {
        let light = light_cache(1 << 24);
        assert_eq!(light.in_use(), 1);
        for key in 0..100 {
            light.insert(key, key);
        }
        assert_eq!(light.in_use(), crate::memory::builder::shard_count(1 << 24));
        light.check();
        // 64 MiB of 64 KiB values: 1,024 entries, one shard.
        let large: Cache<u32, Vec<u8>> = Cache::builder()
            .max_capacity(64 << 20)
            .weigher(|_, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
            .build()
            .expect("valid config");
        for key in 0..100 {
            large.insert(key, vec![0; 64 << 10]);
        }
        assert_eq!(large.in_use(), 1);
    }

    /// The entries a weighted cache held when it chose its shards move to their new shards
    /// whole: found, with their tags and deadlines.
    #[test]
    fn entries_keep_their_tags_and_deadlines_across_the_split() {
        let clock = MockClock::new();
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(1 << 24)
            .weigher(|_, _| 1)
            .clock(clock.clone())
            .build()
            .expect("valid config");
        let tagged = InsertOptions::new().tag("early");
        let timed = InsertOptions::new().ttl(Duration::from_secs(10));
        for key in 0..63 {
            cache.insert_with(key, key, if key < 31 { &tagged } else { &timed });
        }
        assert_eq!(cache.in_use(), 1);
        cache.insert(63, 63);
        assert!(cache.in_use() > 1);
        cache.check();
        assert!((0..64).all(|key| cache.get(&key) == Some(key)));
        assert_eq!(cache.invalidate_tag("early"), 31);
        clock.advance(Duration::from_secs(11));
        cache.run_pending_tasks();
        assert_eq!(
            cache.stats().evicted_expired,
            32,
            "their deadlines moved too"
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&63), Some(63));
    }

    /// In a cache with a time-to-idle, an entry's idle time goes on across the split: moved
    /// at its 64th key, the entries last read 6 s before still leave 4 s later (they did not
    /// start a new 10 s). Found by `behaves_like_a_bounded_map` once it had caches with a
    /// time-to-idle.
    #[test]
    fn idle_times_go_on_across_the_split() {
        let clock = MockClock::new();
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(1 << 24)
            .weigher(|_, _| 1)
            .time_to_idle(Duration::from_secs(10))
            .clock(clock.clone())
            .build()
            .expect("valid config");
        for key in 0..63 {
            cache.insert(key, key);
        }
        clock.advance(Duration::from_secs(6));
        cache.insert(63, 63);
        assert!(cache.in_use() > 1, "split");
        clock.advance(Duration::from_secs(4));
        assert!((0..63).all(|key| cache.get(&key).is_none()));
        assert_eq!(cache.get(&63), Some(63));
    }

    /// Four threads insert from the start, so that the shard count changes under them: no
    /// key is lost or stored in the wrong shard (`check`), and every one is found after.
    #[test]
    fn the_split_under_concurrent_writers() {
        let cache = light_cache(1 << 24);
        let start = Arc::new(std::sync::Barrier::new(4));
        let workers: Vec<_> = (0..4_u32)
            .map(|t| {
                let (cache, start) = (cache.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..5_000 {
                        let key = t * 1_000_000 + i;
                        cache.insert(key, key);
                        if i % 7 == 0 {
                            assert_eq!(cache.remove(&key), Some(key), "a writer finds its key");
                            cache.insert(key, key);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        assert!(cache.in_use() > 1);
        cache.check();
        assert_eq!(cache.len(), 20_000);
        assert!((0..4).all(|t| (0..5_000).all(|i| cache.get(&(t * 1_000_000 + i)).is_some())));
    }
}
