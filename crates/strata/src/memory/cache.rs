//! `Cache`: the concurrent in-memory tier, a set of shards behind one handle.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::clock::Clock;
use crate::listener::Listener;
use crate::memory::builder::CacheBuilder;
use crate::memory::removals::Removals;
use crate::memory::shard::{Lookup, NEVER, NewEntry, Shard};
use crate::options::InsertOptions;
use crate::policy::climber::{Climber, INITIAL_WINDOW};
use crate::stats::{CacheStats, Counter, StripedCounters};

/// The default key hasher: foldhash, fast and seeded per cache (resists hash flooding).
pub type DefaultHashBuilder = foldhash::fast::RandomState;

pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// A shard asks the climber for a new window size once per this many inserts.
const ADAPT_EVERY_INSERTS: u32 = 64;
/// The climber samples 10 requests per unit of capacity (Caffeine's sample size).
const SAMPLE_PER_CAPACITY: u64 = 10;

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
    inner: Arc<Inner<K, V, S>>,
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
            .field("capacity", &self.inner.capacity)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

/// Everything the builder decided.
pub(crate) struct Parts<K, V, S> {
    pub(crate) capacity: u64,
    pub(crate) shards: usize,
    pub(crate) ttl: Option<u64>,
    pub(crate) tti: Option<u64>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: S,
}

struct Inner<K, V, S> {
    shards: Box<[RwLock<ShardCell<K, V>>]>,
    capacity: u64,
    ttl: Option<u64>,
    tti: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    clock: Arc<dyn Clock>,
    hasher: S,
    stats: StripedCounters,
    adaptation: Adaptation,
}

/// A shard plus the window generation it last applied.
struct ShardCell<K, V> {
    shard: Shard<K, V>,
    window_epoch: u64,
    inserts_since_adapt: u32,
}

/// The window size shared by all shards and the climber that moves it. One climber for the
/// whole cache: it sees every request, so its samples are as large as they can be.
struct Adaptation {
    climber: Mutex<Climber>,
    /// Window fraction as `f64` bits.
    window: AtomicU64,
    /// Bumped on each change of `window`; shards re-read the window when it moves.
    epoch: AtomicU64,
    /// Set once the cache first evicted for size; the climber ignores warm-up.
    full: AtomicBool,
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
    S: BuildHasher,
{
    pub(crate) fn from_parts(parts: Parts<K, V, S>) -> Self {
        let n = parts.shards as u64;
        let shards = (0..n)
            .map(|i| {
                // Exact shares: the shard capacities add up to the cache's capacity.
                let capacity = parts.capacity / n + u64::from(i < parts.capacity % n);
                let estimated_entries = if parts.weigher.is_some() {
                    1024
                } else {
                    usize::try_from(capacity).unwrap_or(usize::MAX)
                };
                RwLock::new(ShardCell {
                    shard: Shard::new(capacity, estimated_entries, parts.tti, 0x9E37_79B9 ^ i),
                    window_epoch: 0,
                    inserts_since_adapt: 0,
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                capacity: parts.capacity,
                ttl: parts.ttl,
                tti: parts.tti,
                weigher: parts.weigher,
                listener: parts.listener,
                clock: parts.clock,
                hasher: parts.hasher,
                stats: StripedCounters::new(),
                adaptation: Adaptation {
                    climber: Mutex::new(Climber::new(SAMPLE_PER_CAPACITY * parts.capacity)),
                    window: AtomicU64::new(INITIAL_WINDOW.to_bits()),
                    epoch: AtomicU64::new(1),
                    full: AtomicBool::new(false),
                },
            }),
        }
    }

    #[inline]
    fn shard_for<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, &RwLock<ShardCell<K, V>>) {
        let hash = self.inner.hasher.hash_one(key);
        let shards = &self.inner.shards;
        (hash, &shards[(hash >> 32) as usize & (shards.len() - 1)])
    }

    fn now(&self) -> u64 {
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
        let lookup = shard.read().shard.get(hash, key, || self.now());
        match lookup {
            Lookup::Hit(value) => {
                self.inner.stats.add(Counter::Hits, 1);
                Some(value)
            }
            Lookup::Expired | Lookup::Missing => {
                self.inner.stats.add(Counter::Misses, 1);
                None
            }
        }
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
        self.insert_entry(key, value, None, Box::default());
    }

    /// Inserts with a TTL of its own, overriding the cache's default.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        self.insert_entry(key, value, Some(ttl), Box::default());
    }

    /// Inserts with options: TTL and tags (see [`InsertOptions`]).
    pub fn insert_with(&self, key: K, value: V, options: &InsertOptions) {
        self.insert_entry(key, value, options.ttl, options.tags.clone().into_boxed_slice());
    }

    fn insert_entry(&self, key: K, value: V, ttl: Option<Duration>, tags: Box<[crate::Tag]>) {
        let inner = &*self.inner;
        let weight = inner.weigher.as_ref().map_or(1, |w| w(&key, &value));
        let ttl = ttl
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(NEVER - 1))
            .or(inner.ttl);
        let (hash, lock) = self.shard_for(&key);
        let mut removals = Removals::new(inner.listener.is_some());
        let added;
        let adapt;
        {
            let mut cell = lock.write();
            let epoch = inner.adaptation.epoch.load(Ordering::Acquire);
            if cell.window_epoch != epoch {
                cell.window_epoch = epoch;
                let window = f64::from_bits(inner.adaptation.window.load(Ordering::Acquire));
                cell.shard.set_window(window);
            }
            let now = if ttl.is_some() || inner.tti.is_some() || cell.shard.has_deadlines() {
                self.now()
            } else {
                0
            };
            let new = NewEntry {
                hash,
                key,
                value,
                weight,
                expires_at: ttl.map_or(NEVER, |t| now.saturating_add(t).min(NEVER - 1)),
                tags,
            };
            added = cell.shard.insert(new, now, &mut removals);
            cell.inserts_since_adapt += u32::from(added);
            adapt = cell.inserts_since_adapt >= ADAPT_EVERY_INSERTS;
            if adapt {
                cell.inserts_since_adapt = 0;
            }
        }
        inner.stats.add(if added { Counter::Inserts } else { Counter::Updates }, 1);
        self.finish(removals);
        if adapt {
            self.adapt();
        }
    }

    /// Feeds the climber; publishes a new window size when a sample completes.
    fn adapt(&self) {
        let inner = &*self.inner;
        let adaptation = &inner.adaptation;
        if !adaptation.full.load(Ordering::Relaxed) {
            if inner.stats.get(Counter::EvictedSize) == 0 {
                return;
            }
            adaptation.full.store(true, Ordering::Relaxed);
        }
        let Some(mut climber) = adaptation.climber.try_lock() else {
            return; // another thread is adapting right now
        };
        let (hits, misses) = (inner.stats.get(Counter::Hits), inner.stats.get(Counter::Misses));
        if let Some(window) = climber.record(hits, misses) {
            adaptation.window.store(window.to_bits(), Ordering::Release);
            adaptation.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Removes `key`, returning its value if it had a live one.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, lock) = self.shard_for(key);
        let mut removals = Removals::new(self.inner.listener.is_some());
        let removed = lock.write().shard.remove(hash, key);
        let value = removed.map(|(key, value)| {
            removals.push(key, value.clone(), crate::RemovalCause::Explicit);
            value
        });
        self.finish(removals);
        value
    }

    /// Removes every entry carrying `tag` (see [`InsertOptions::tag`]).
    pub fn invalidate_tag(&self, tag: &str) {
        let mut removals = Removals::new(self.inner.listener.is_some());
        for lock in self.inner.shards.iter() {
            lock.write().shard.invalidate_tag(tag, &mut removals);
        }
        self.finish(removals);
    }

    /// Removes every entry.
    pub fn invalidate_all(&self) {
        self.retain(|_, _| false);
    }

    /// Keeps only the entries for which `keep` returns true (and reclaims expired ones).
    /// `keep` runs under a shard's lock: it must not use this cache.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut removals = Removals::new(self.inner.listener.is_some());
        let now = self.now();
        for lock in self.inner.shards.iter() {
            lock.write().shard.retain(now, &mut keep, &mut removals);
        }
        self.finish(removals);
    }

    /// Removes the entries for which `predicate` returns true; the opposite of [`retain`](Self::retain).
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) {
        self.retain(|k, v| !predicate(k, v));
    }

    /// Reclaims expired entries now. Not required: writes reclaim them too, a batch at a time.
    pub fn run_pending_tasks(&self) {
        let mut removals = Removals::new(self.inner.listener.is_some());
        let now = self.now();
        for lock in self.inner.shards.iter() {
            lock.write().shard.expire(now, usize::MAX, &mut removals);
        }
        self.finish(removals);
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
        self.inner.shards.iter().map(|s| s.read().shard.weight()).sum()
    }

    /// The bound given to the builder.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }

    /// Records removal counts and hands entries to the listener, outside any lock.
    fn finish(&self, removals: Removals<K, V>) {
        let entries = removals.finish(&self.inner.stats);
        if let Some(listener) = &self.inner.listener {
            for (key, value, cause) in entries {
                listener(key, value, cause);
            }
        }
    }

    /// Checks every shard's internal invariants (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        for lock in self.inner.shards.iter() {
            lock.read().shard.check();
        }
    }

    /// The current window fraction (tests and diagnostics).
    #[doc(hidden)]
    pub fn window_fraction(&self) -> f64 {
        f64::from_bits(self.inner.adaptation.window.load(Ordering::Relaxed))
    }
}
