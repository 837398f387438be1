//! `Cache`: the concurrent in-memory tier, a set of shards behind one handle.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::clock::Clock;
use crate::coalesce::{Flights, LeaderGuard, Outcome, Role};
use crate::listener::{Listener, RemovalCause};
use crate::memory::builder::CacheBuilder;
use crate::memory::removals::Removals;
use crate::memory::shard::{Lookup, NEVER, NewEntry, Shard};
use crate::options::InsertOptions;
use crate::policy::climber::Climber;
use crate::policy::minisim::{ACTIVE_EPOCHS, INITIAL, MiniSim, Shape, TARGET_SIM_ENTRIES};
use crate::stats::{CacheInfo, CacheStats, Counter, ThreadCounters, thread_stripe};

/// The default key hasher: foldhash, fast and seeded per cache (resists hash flooding).
pub type DefaultHashBuilder = foldhash::fast::RandomState;

pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
pub(crate) type ExpireAfter<K, V> = Arc<dyn Fn(&K, &V) -> Option<Duration> + Send + Sync>;

/// A shard asks the climber for a new window size once per this many inserts.
const ADAPT_EVERY_INSERTS: u32 = 64;
/// The climber samples 10 requests per unit of capacity (Caffeine's sample size).
const SAMPLE_PER_CAPACITY: u64 = 10;
/// Sampled requests are replayed in the mini caches in batches of this many.
const SAMPLE_BATCH: usize = 64;
/// After an active period the simulations rest this many times as long: a quarter of the
/// requests pay for sampling, which keeps its cost near a nanosecond per read.
const REST_FACTOR: u64 = 3;

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
    pub(crate) expire_after: Option<ExpireAfter<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: S,
}

struct Inner<K, V, S> {
    shards: Box<[RwLock<ShardCell<K, V, S>>]>,
    /// Loads in progress for `get_with` and friends.
    flights: Flights<K, V>,
    capacity: u64,
    ttl: Option<u64>,
    tti: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    expire_after: Option<ExpireAfter<K, V>>,
    listener: Option<Listener<K, V>>,
    clock: Arc<dyn Clock>,
    hasher: S,
    stats: ThreadCounters,
    adaptation: Adaptation,
}

/// A shard plus the window generation it last applied.
struct ShardCell<K, V, S> {
    shard: Shard<K, V, S>,
    window_epoch: u64,
    inserts_since_adapt: u32,
}

/// The window size shared by all shards, and what chooses it: miniature simulations for
/// unit-weight caches, a hill climber for weighted ones (whose entry counts the mini caches
/// cannot model). One per cache, not per shard: it sees every request.
struct Adaptation {
    sampler: Option<Sampler>,
    climber: Mutex<Climber>,
    /// The policy shape in use (read by shards only when `epoch` moved).
    shape: Mutex<Shape>,
    /// Bumped on each change of `shape`; a shard re-reads the shape when it sees a new epoch.
    epoch: AtomicU64,
    /// Set once the cache first evicted for size; the climber ignores warm-up.
    full: AtomicBool,
}

/// Feeds sampled requests to the miniature simulations (see `policy/minisim.rs`). They run in
/// active periods and rest in between; while they rest a read checks one flag.
struct Sampler {
    sim: Mutex<MiniSim>,
    /// False while the simulations rest.
    active: AtomicBool,
    /// The cache's request count at which resting simulations wake up.
    wake_at: AtomicU64,
    /// Sampling rate denominator: one key in `den` is sampled.
    den: u64,
    /// A key is sampled when `(hash >> 40) & mask == 0` (bits the shard and table do not use).
    mask: u64,
    /// Per-thread-stripe buffers of sampled hashes: a sampled read never touches a queue that
    /// other threads write, and only `try_lock`s its own stripe.
    buffers: Box<[CachePadded<Mutex<Vec<u64>>>]>,
}

impl Sampler {
    fn new(capacity: u64) -> Self {
        let rate = (capacity / TARGET_SIM_ENTRIES).max(1);
        let den = (1_u64 << rate.ilog2()).min(1 << 16);
        let stripes =
            (std::thread::available_parallelism().map_or(4, |n| n.get()) * 2).next_power_of_two();
        Self {
            sim: Mutex::new(MiniSim::new(capacity.div_ceil(den))),
            active: AtomicBool::new(true),
            wake_at: AtomicU64::new(0),
            den,
            mask: den - 1,
            buffers: (0..stripes)
                .map(|_| CachePadded::new(Mutex::new(Vec::with_capacity(SAMPLE_BATCH))))
                .collect(),
        }
    }

    #[inline]
    fn samples(&self, hash: u64) -> bool {
        (hash >> 40) & self.mask == 0 && self.active.load(Ordering::Relaxed)
    }

    /// Buffers a sampled request; replays a full buffer. Returns a newly chosen shape, and
    /// puts the simulations to rest (until `requests()` has grown enough) after their active
    /// period.
    fn record(&self, hash: u64, requests: impl FnOnce() -> u64) -> Option<Shape> {
        let stripe = &self.buffers[thread_stripe() & (self.buffers.len() - 1)];
        let mut buffer = stripe.try_lock()?;
        buffer.push(hash);
        if buffer.len() < SAMPLE_BATCH {
            return None;
        }
        let batch = std::mem::replace(&mut *buffer, Vec::with_capacity(SAMPLE_BATCH));
        drop(buffer);
        // Lossy like Caffeine's read buffer: if another thread is replaying, drop this batch.
        let mut sim = self.sim.try_lock()?;
        let shape = batch.into_iter().filter_map(|hash| sim.access(hash)).last();
        if sim.wants_rest() && self.active.load(Ordering::Relaxed) {
            let active_requests = u64::from(ACTIVE_EPOCHS) * sim.epoch_length() * self.den;
            self.wake_at.store(
                requests() + REST_FACTOR * active_requests,
                Ordering::Relaxed,
            );
            self.active.store(false, Ordering::Relaxed);
        }
        shape
    }

    /// Wakes resting simulations once enough requests went by (called from writes).
    fn maybe_wake(&self, requests: impl FnOnce() -> u64) {
        if self.active.load(Ordering::Relaxed) || requests() < self.wake_at.load(Ordering::Relaxed)
        {
            return;
        }
        if let Some(mut sim) = self.sim.try_lock() {
            sim.wake();
            self.active.store(true, Ordering::Relaxed);
        }
    }
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
                    shard: Shard::new(
                        capacity,
                        estimated_entries,
                        parts.tti,
                        0x9E37_79B9 ^ i,
                        parts.hasher.clone(),
                    ),
                    window_epoch: 0,
                    inserts_since_adapt: 0,
                })
            })
            .collect();
        let sampler = parts
            .weigher
            .is_none()
            .then(|| Sampler::new(parts.capacity));
        Self {
            inner: Arc::new(Inner {
                flights: Flights::new(parts.shards),
                shards,
                capacity: parts.capacity,
                ttl: parts.ttl,
                tti: parts.tti,
                weigher: parts.weigher,
                expire_after: parts.expire_after,
                listener: parts.listener,
                clock: parts.clock,
                hasher: parts.hasher,
                stats: ThreadCounters::new(),
                adaptation: Adaptation {
                    sampler,
                    climber: Mutex::new(Climber::new(SAMPLE_PER_CAPACITY * parts.capacity)),
                    shape: Mutex::new(INITIAL),
                    epoch: AtomicU64::new(1),
                    full: AtomicBool::new(false),
                },
            }),
        }
    }

    #[inline]
    fn shard_for<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, &RwLock<ShardCell<K, V, S>>) {
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
        if let Some(sampler) = &self.inner.adaptation.sampler
            && sampler.samples(hash)
            && let Some(shape) = sampler.record(hash, || self.requests())
        {
            self.publish(shape);
        }
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

    /// Like `get` but not counted in the statistics (a second look after a counted miss).
    fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard_for(key);
        match shard.read().shard.get(hash, key, || self.now()) {
            Lookup::Hit(value) => Some(value),
            Lookup::Expired | Lookup::Missing => None,
        }
    }

    /// The value for `key`, computing and caching it with `init` on a miss.
    ///
    /// # Concurrent calls on the same key
    /// Callers that miss the same key while it is being computed wait for that one computation
    /// and all receive its value: `init` runs once, however many callers arrive. If the
    /// computing caller panics, its waiters are released and one of them computes instead.
    ///
    /// ```
    /// let cache = strata::Cache::new(100);
    /// let v = cache.get_with("answer", || 6 * 7);
    /// assert_eq!(v, 42);
    /// assert_eq!(cache.get_with("answer", || unreachable!()), 42);
    /// ```
    pub fn get_with(&self, key: K, init: impl FnOnce() -> V) -> V
    where
        K: Clone,
    {
        match self.try_get_with(key, || Ok::<V, std::convert::Infallible>(init())) {
            Ok(value) => value,
            Err(never) => match *never {},
        }
    }

    /// Like [`get_with`](Self::get_with) for a fallible computation. An error is handed to the
    /// caller that computed and to every caller waiting on it (as the same `Arc`), and is not
    /// cached: the next call computes again.
    ///
    /// # Errors
    /// The error returned by `init` (this call's, or the one it waited on).
    pub fn try_get_with<E>(&self, key: K, init: impl FnOnce() -> Result<V, E>) -> Result<V, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        self.try_get_with_if(key, |_| true, init)
    }

    /// `try_get_with` where a cached value counts only if `accept` says so (a value that is
    /// present but no longer fresh is computed again, coalesced).
    pub(crate) fn try_get_with_if<E>(
        &self,
        key: K,
        accept: impl Fn(&V) -> bool,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        if let Some(value) = self.get(&key).filter(|v| accept(v)) {
            return Ok(value);
        }
        let hash = self.inner.hasher.hash_one(&key);
        let flight = loop {
            match self.inner.flights.join(hash, &key) {
                Role::Leader(flight) => break flight,
                Role::Waiter(flight) => {
                    if let Some(result) = landed(flight.wait()) {
                        return result;
                    }
                }
            }
        };
        // A previous leader may have landed between our miss and our flight.
        if let Some(value) = self.peek(&key).filter(|v| accept(v)) {
            flight.land(Outcome::Done(value.clone()));
            return Ok(value);
        }
        self.settle(key, flight, init())
    }

    /// Async [`get_with`](Self::get_with): waiting callers await instead of blocking. If the
    /// computing caller's future is dropped, a waiting caller takes over with its own `init`.
    pub async fn get_with_async(&self, key: K, init: impl Future<Output = V>) -> V
    where
        K: Clone,
    {
        let init = async { Ok::<V, std::convert::Infallible>(init.await) };
        match self.try_get_with_async(key, init).await {
            Ok(value) => value,
            Err(never) => match *never {},
        }
    }

    /// Async [`try_get_with`](Self::try_get_with).
    ///
    /// # Errors
    /// The error returned by `init` (this call's, or the one it waited on).
    pub async fn try_get_with_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        self.try_get_with_async_if(key, |_| true, init).await
    }

    /// Async [`try_get_with_if`](Self::try_get_with_if).
    pub(crate) async fn try_get_with_async_if<E>(
        &self,
        key: K,
        accept: impl Fn(&V) -> bool,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        if let Some(value) = self.get(&key).filter(|v| accept(v)) {
            return Ok(value);
        }
        let hash = self.inner.hasher.hash_one(&key);
        let flight = loop {
            match self.inner.flights.join(hash, &key) {
                Role::Leader(flight) => break flight,
                Role::Waiter(flight) => {
                    if let Some(result) = landed(flight.wait_async().await) {
                        return result;
                    }
                }
            }
        };
        if let Some(value) = self.peek(&key).filter(|v| accept(v)) {
            flight.land(Outcome::Done(value.clone()));
            return Ok(value);
        }
        let result = init.await;
        self.settle(key, flight, result)
    }

    /// The leader's last step: cache a value, and hand the value or error to the waiters.
    fn settle<E>(
        &self,
        key: K,
        flight: LeaderGuard<'_, K, V>,
        result: Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        match result {
            Ok(value) => {
                self.insert(key, value.clone());
                flight.land(Outcome::Done(value.clone()));
                Ok(value)
            }
            Err(error) => {
                let error = Arc::new(error);
                flight.land(Outcome::Failed(error.clone()));
                Err(error)
            }
        }
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
        self.insert_entry(
            key,
            value,
            options.ttl,
            options.tags.clone().into_boxed_slice(),
        );
    }

    fn insert_entry(&self, key: K, value: V, ttl: Option<Duration>, tags: Box<[crate::Tag]>) {
        let inner = &*self.inner;
        let weight = inner.weigher.as_ref().map_or(1, |w| w(&key, &value));
        let ttl = ttl
            .or_else(|| inner.expire_after.as_ref().and_then(|f| f(&key, &value)))
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
                cell.shard.set_shape(*inner.adaptation.shape.lock());
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
        inner.stats.add(
            if added {
                Counter::Inserts
            } else {
                Counter::Updates
            },
            1,
        );
        self.finish(removals);
        if adapt {
            self.adapt();
        }
    }

    /// Feeds the climber (weighted caches); publishes a new window size when a sample completes.
    fn adapt(&self) {
        let inner = &*self.inner;
        let adaptation = &inner.adaptation;
        if let Some(sampler) = &adaptation.sampler {
            sampler.maybe_wake(|| self.requests());
            return;
        }
        if !adaptation.full.load(Ordering::Relaxed) {
            if inner.stats.get(Counter::EvictedSize) == 0 {
                return;
            }
            adaptation.full.store(true, Ordering::Relaxed);
        }
        let Some(mut climber) = adaptation.climber.try_lock() else {
            return; // another thread is adapting right now
        };
        let (hits, misses) = (
            inner.stats.get(Counter::Hits),
            inner.stats.get(Counter::Misses),
        );
        if let Some(window) = climber.record(hits, misses) {
            drop(climber);
            self.publish(Shape {
                window,
                protected: INITIAL.protected,
            });
        }
    }

    /// Requests (hits + misses) so far.
    fn requests(&self) -> u64 {
        let stats = &self.inner.stats;
        stats.get(Counter::Hits) + stats.get(Counter::Misses)
    }

    /// Makes every shard take `shape` at its next write.
    fn publish(&self, shape: Shape) {
        let adaptation = &self.inner.adaptation;
        *adaptation.shape.lock() = shape;
        adaptation.epoch.fetch_add(1, Ordering::Release);
    }

    /// Removes `key`, returning its value if it had a live one.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, lock) = self.shard_for(key);
        let mut removals = Removals::new(self.inner.listener.is_some());
        let removed = lock.write().shard.remove(hash, key, || self.now());
        let value = match removed {
            Some((key, value, false)) => {
                removals.push(key, value.clone(), RemovalCause::Explicit);
                Some(value)
            }
            Some((key, value, true)) => {
                removals.push(key, value, RemovalCause::Expired);
                None
            }
            None => None,
        };
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
        self.inner
            .shards
            .iter()
            .map(|s| s.read().shard.weight())
            .sum()
    }

    /// The bound given to the builder.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
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
}

/// What a waiter makes of a landed flight: the value or (if it has the waiter's type) the
/// error; `None` means "lead a new flight" (abandoned, or another call site's error type).
fn landed<V, E: Send + Sync + 'static>(outcome: Outcome<V>) -> Option<Result<V, Arc<E>>> {
    match outcome {
        Outcome::Done(value) => Some(Ok(value)),
        Outcome::Failed(error) => error.downcast::<E>().ok().map(Err),
        Outcome::Abandoned => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex as StdMutex;

    use proptest::prelude::*;

    use super::*;
    use crate::MockClock;

    #[derive(Debug, Clone)]
    enum Op {
        Insert {
            key: u8,
            ttl: Option<u8>,
            tag: Option<u8>,
        },
        Get(u8),
        Remove(u8),
        InvalidateTag(u8),
        Advance(u8),
        RetainEven,
        Maintain,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), proptest::option::of(1..20_u8), proptest::option::of(0..4_u8))
                .prop_map(|(key, ttl, tag)| Op::Insert { key: key % 64, ttl, tag }),
            4 => any::<u8>().prop_map(|k| Op::Get(k % 64)),
            1 => any::<u8>().prop_map(|k| Op::Remove(k % 64)),
            1 => (0..4_u8).prop_map(Op::InvalidateTag),
            1 => (1..10_u8).prop_map(Op::Advance),
            1 => Just(Op::RetainEven),
            1 => Just(Op::Maintain),
        ]
    }

    /// What the model knows of a key: the value written last, its deadline and tag.
    #[derive(Debug, Clone, Copy)]
    struct Model {
        value: u32,
        deadline: Option<u64>,
        tag: Option<u8>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random operation sequences against a map model: the cache never exceeds its bound,
        /// never returns a value that is not the latest one written, and never returns a
        /// removed, tag-invalidated or expired entry. The listener accounts for every entry.
        #[test]
        fn behaves_like_a_bounded_map(ops in proptest::collection::vec(op(), 1..300), capacity in 1..24_u64, shards in 0..3_u32) {
            let clock = MockClock::new();
            let removed = Arc::new(StdMutex::new(Vec::new()));
            let sink = removed.clone();
            let cache = Cache::<u8, u32>::builder()
                .max_capacity(capacity)
                .shards(1 << shards)
                .clock(clock.clone())
                .eviction_listener(move |k, v, cause| sink.lock().expect("listener lock").push((k, v, cause)))
                .build()
                .expect("valid config");
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
                            deadline: ttl.map(|t| now + u64::from(t)),
                            tag,
                        });
                    }
                    Op::Get(key) => {
                        let live = model.get(&key).filter(|m| m.deadline.is_none_or(|d| d > now));
                        // None is allowed (evicted); a value must be the latest live one.
                        if let Some(value) = cache.get(&key) {
                            let expected = live.map(|m| m.value);
                            prop_assert_eq!(Some(value), expected, "key {} returned a stale or dead value", key);
                        }
                    }
                    Op::Remove(key) => {
                        let got = cache.remove(&key);
                        let live = model.remove(&key).filter(|m| m.deadline.is_none_or(|d| d > now));
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
                }
                prop_assert!(cache.weighted_size() <= capacity);
                prop_assert!(cache.len() as u64 <= capacity);
                cache.check();
            }
            // Every key the model still holds alive is either in the cache with the latest
            // value or was evicted for size (never silently lost).
            let removed = removed.lock().expect("listener lock").clone();
            for (key, m) in &model {
                if m.deadline.is_some_and(|d| d <= now) {
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
}
