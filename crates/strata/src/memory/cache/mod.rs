//! `Cache`: the concurrent in-memory tier, a set of shards behind one handle.
//!
//! `sharding` picks a key's shard (and a weighted cache's shard count); `heavy` borrows
//! capacity from the other shards for an entry heavier than its own shard's share.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::clock::Clock;
use crate::coalesce::{Flights, LeaderGuard};
use crate::listener::{Listener, RemovalCause, SyncListener};
use crate::memory::adaptation::{ADAPT_EVERY_INSERTS, Adaptation};
use crate::memory::builder::CacheBuilder;
use crate::memory::removals::Removals;
use crate::memory::shard::{NEVER, NewEntry, Shard, Updated};
use crate::options::InsertOptions;
use crate::policy::minisim::Shape;
use crate::stats::{Block, CacheInfo, CacheStats, Counter, ThreadCounters};

mod heavy;
mod sharding;
#[cfg(test)]
mod tests;

use sharding::{WEIGHTED_SKETCH_KEYS, share};

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
