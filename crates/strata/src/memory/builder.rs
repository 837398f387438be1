//! `CacheBuilder`: how a [`Cache`] is configured.

use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::listener::{Listener, RemovalCause, SyncListener};
use crate::memory::cache::{Cache, DefaultHashBuilder, ExpireAfter, Weigher};
use crate::policy::eviction::EvictionPolicy;

/// Shards per CPU by default. A write holds its shard's lock for the policy's work (a
/// TinyLFU duel, promotions, folded hits: 2–3× as long as quick_cache's CLOCK-Pro write), and
/// readers of that shard wait meanwhile; more shards make that wait rarer. Two threads, 90%
/// reads: 0.85–0.90× quick_cache with 4 per CPU, 1.0× with 8, 1.1× with 16 (one thread: the
/// same with any; docs/benchmarks.md).
const SHARDS_PER_CPU: usize = 16;
/// Shards are never made to hold fewer entries than this by default: W-TinyLFU needs room
/// for a window and a main region to tell recency from frequency, and small shards each evict
/// by their own share of the keys (smaller shards cost ARC's P3 at 20,000 entries 0.1–0.2
/// points; two shards of 250 entries cost one weighted lirs-glimpse cache in 300 a third of
/// its hit ratio).
pub(super) const MIN_SHARD_ENTRIES: u64 = 2048;

/// Configures and builds a [`Cache`].
///
/// ```
/// use std::time::Duration;
/// use strata::Cache;
///
/// // At most 64 MiB of values, each entry weighed by its length; entries live 10 minutes.
/// let cache: Cache<String, Vec<u8>> = Cache::builder()
///     .max_capacity(64 << 20)
///     .weigher(|_key: &String, value: &Vec<u8>| value.len().try_into().unwrap_or(u32::MAX))
///     .time_to_live(Duration::from_secs(600))
///     .build()?;
/// cache.insert("page".to_string(), vec![0; 4096]);
/// assert_eq!(cache.weighted_size(), 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    max_capacity: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    time_to_live: Option<Duration>,
    time_to_idle: Option<Duration>,
    expire_after: Option<ExpireAfter<K, V>>,
    listener: Option<Listener<K, V>>,
    sync_listener: Option<SyncListener<K, V>>,
    clock: Option<Arc<dyn Clock>>,
    shards: Option<usize>,
    policy: EvictionPolicy,
    hasher: S,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self {
            max_capacity: None,
            weigher: None,
            time_to_live: None,
            time_to_idle: None,
            expire_after: None,
            listener: None,
            sync_listener: None,
            clock: None,
            shards: None,
            policy: EvictionPolicy::adaptive(),
            hasher: DefaultHashBuilder::default(),
            _types: PhantomData,
        }
    }
}

impl<K, V, S> std::fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("weigher", &self.weigher.is_some())
            .field("time_to_live", &self.time_to_live)
            .field("time_to_idle", &self.time_to_idle)
            .field("shards", &self.shards)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> CacheBuilder<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// The bound: a number of entries, or a total weight when a [`weigher`](Self::weigher) is set.
    /// 0 is a cache that keeps nothing: caching turned off by configuration, with the same
    /// code path (and [`Cache::set_max_capacity`](crate::Cache::set_max_capacity) can turn it
    /// on).
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = Some(max_capacity);
        self
    }

    /// Weighs each entry (e.g. its size in bytes); the cache keeps the total within capacity.
    /// An entry heavier than the whole capacity is not stored (the listener hears `Size`).
    /// Entries of weight 0 count nothing against the bound, so nothing bounds how many of
    /// them stay (as in Caffeine): weigh at least 1 per entry unless that is meant.
    /// One heavier than its shard's share of the capacity borrows the rest from the other
    /// shards for as long as it stays, so that it displaces what it would in an unsharded
    /// cache; the policy admits it or not as any entry. While it is being inserted the cache
    /// may hold up to its weight above the bound, until the other shards have evicted their
    /// part.
    ///
    /// A weighted cache cannot know how many entries its capacity holds before they come: by
    /// default it starts as one shard and chooses its shard count at its first 64 new keys,
    /// from their mean weight (see [`shards`](Self::shards)).
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Default time-to-live of every entry, counted from its insert.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = Some(ttl);
        self
    }

    /// A TTL computed from each inserted entry (e.g. from an HTTP `max-age` in the value); it
    /// overrides the default TTL, and `None` means the default applies. A TTL given to
    /// `insert_with_ttl` / `insert_with` overrides both.
    pub fn expire_after(
        mut self,
        ttl: impl Fn(&K, &V) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.expire_after = Some(Arc::new(ttl));
        self
    }

    /// Time-to-idle: an entry not read or written for this long expires.
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.time_to_idle = Some(tti);
        self
    }

    /// Called with every entry that leaves the cache and why, after internal locks are released
    /// (so the listener may use the cache).
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Called with every entry that leaves the cache and why, by reference, while the cache
    /// still holds the lock that removed it: at no moment is an entry neither in the cache nor
    /// known to this listener. For a tier behind the cache that takes over what it evicts
    /// (the Strata server hands evicted entries to its disk tier this way). It must be quick
    /// and must not use the cache, which would deadlock.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use strata::{Cache, RemovalCause};
    ///
    /// let evicted = Arc::new(Mutex::new(Vec::new()));
    /// let sink = evicted.clone();
    /// let cache = Cache::builder()
    ///     .max_capacity(1)
    ///     .shards(1)
    ///     .synchronous_eviction_listener(move |k: &u32, _: &u32, cause| {
    ///         if cause == RemovalCause::Size {
    ///             sink.lock().unwrap().push(*k);
    ///         }
    ///     })
    ///     .build()?;
    /// cache.insert(1, 10);
    /// cache.insert(2, 20);
    /// assert_eq!(evicted.lock().unwrap().len(), 1, "one of the two left, and was heard of");
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn synchronous_eviction_listener(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.sync_listener = Some(Arc::new(listener));
        self
    }

    /// The time source for expiry; [`SystemClock`] by default, [`MockClock`](crate::MockClock)
    /// in tests.
    pub fn clock(self, clock: impl Clock) -> Self {
        self.clock_shared(Arc::new(clock))
    }

    /// Uses a clock another part of Strata already holds (a `Loader` and its cache).
    pub(crate) fn clock_shared(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Number of independently locked shards (a power of two). By default 16 × the CPUs,
    /// fewer for small caches so that each shard holds at least 2,048 entries (a weighted
    /// cache counts them once its first 64 new keys tell their mean weight). More shards let
    /// more threads work at once; fewer keep each shard's policy better informed (each sees
    /// its own share of the keys).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The eviction policy: adaptive by default, or pinned to one shape (see
    /// [`EvictionPolicy`]).
    pub fn eviction_policy(mut self, policy: EvictionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The hasher for keys.
    pub fn hasher<S2: BuildHasher + Clone>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            max_capacity: self.max_capacity,
            weigher: self.weigher,
            time_to_live: self.time_to_live,
            time_to_idle: self.time_to_idle,
            expire_after: self.expire_after,
            listener: self.listener,
            sync_listener: self.sync_listener,
            clock: self.clock,
            shards: self.shards,
            policy: self.policy,
            hasher,
            _types: PhantomData,
        }
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`Error::MissingCapacity`] without `max_capacity`; [`Error::InvalidDuration`] for a zero
    /// or unrepresentable TTL/TTI; [`Error::InvalidShards`] for a shard count that is not a
    /// power of two; [`Error::InvalidWindow`] for a pinned window outside `0.0..=1.0`.
    pub fn build(self) -> Result<Cache<K, V, S>> {
        let capacity = self.max_capacity.ok_or(Error::MissingCapacity)?;
        let ttl = self
            .time_to_live
            .map(|d| nanos("time_to_live", d))
            .transpose()?;
        let tti = self
            .time_to_idle
            .map(|d| nanos("time_to_idle", d))
            .transpose()?;
        let shards = match self.shards {
            Some(n) if n == 0 || !n.is_power_of_two() => return Err(Error::InvalidShards(n)),
            Some(n) => n,
            // A weighted cache chooses later, up to the most it may have.
            None if self.weigher.is_some() => shard_count(u64::MAX),
            None => shard_count(capacity),
        };
        let deferred = self.shards.is_none() && self.weigher.is_some();
        if let Some(window) = self.policy.invalid_window() {
            return Err(Error::InvalidWindow(window));
        }
        Ok(Cache::from_parts(crate::memory::cache::Parts {
            capacity,
            shards,
            deferred,
            policy: self.policy.fixed,
            ttl,
            tti,
            weigher: self.weigher,
            expire_after: self.expire_after,
            listener: self.listener,
            sync_listener: self.sync_listener,
            clock: self
                .clock
                .unwrap_or_else(|| Arc::new(SystemClock::default())),
            hasher: self.hasher,
        }))
    }
}

/// A builder duration in nanoseconds: at least 1 ns and representable (under ~584 years).
pub(crate) fn nanos(what: &'static str, given: Duration) -> Result<u64> {
    match u64::try_from(given.as_nanos()) {
        Ok(n) if n > 0 && n < u64::MAX => Ok(n),
        _ => Err(Error::InvalidDuration { what, given }),
    }
}

/// The default shard count for a cache of `entries`: 16 per CPU, fewer so that each holds
/// at least [`MIN_SHARD_ENTRIES`].
pub(super) fn shard_count(entries: u64) -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    let mut shards = (cpus * SHARDS_PER_CPU).next_power_of_two();
    while shards > 1 && entries / (shards as u64) < MIN_SHARD_ENTRIES {
        shards /= 2;
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configuration() {
        let no_capacity = CacheBuilder::<u32, u32>::default().build();
        assert!(matches!(no_capacity.err(), Some(Error::MissingCapacity)));
        let zero_ttl = CacheBuilder::<u32, u32>::default()
            .max_capacity(10)
            .time_to_live(Duration::ZERO)
            .build();
        assert!(matches!(
            zero_ttl.err(),
            Some(Error::InvalidDuration {
                what: "time_to_live",
                ..
            })
        ));
        let shards = CacheBuilder::<u32, u32>::default()
            .max_capacity(10)
            .shards(3)
            .build();
        assert!(matches!(shards.err(), Some(Error::InvalidShards(3))));
    }

    #[test]
    fn small_caches_get_few_shards() {
        assert_eq!(shard_count(500), 1);
        assert!(shard_count(1 << 30) >= 4);
    }

    #[test]
    fn a_64_kib_cache_weighed_in_bytes_stores_a_5_kib_value() {
        // It had 16 shards per CPU of 2 or 4 KiB each, and refused the value.
        let cache = CacheBuilder::default()
            .max_capacity(64 << 10)
            .weigher(|_: &u32, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
            .build()
            .expect("valid configuration");
        cache.insert(1, vec![0; 5 << 10]);
        assert_eq!(cache.get(&1).map(|v| v.len()), Some(5 << 10));
        assert_eq!(cache.weighted_size(), 5 << 10);
    }
}
