//! `Loader`: a cache that computes its own values, refreshes them without stampedes, and keeps
//! serving while the source is slow or down.
//!
//! Each value is stored with the time it stops being *fresh* and the time its computation took.
//! A read then falls in one of four windows:
//!
//! | window | read returns | and |
//! |---|---|---|
//! | fresh | the value | with XFetch on, refreshes early with a probability that rises as the end of freshness nears |
//! | stale (`stale_while_revalidate`) | the stale value, at hit latency | exactly one caller starts a refresh, on the executor if one is set |
//! | stale-if-error | a new value, computed once for all callers | if that computation fails, the stale value instead of the error |
//! | past all | a new value, computed once for all callers | an error goes to every waiting caller, not cached |

mod builder;

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use builder::LoaderBuilder;

use crate::clock::Clock;
use crate::memory::Cache;
use crate::stats::CacheStats;

/// Runs a refresh in the background (e.g. `|job| { std::thread::spawn(job); }`).
pub(crate) type Executor = Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;
/// Spawns an async refresh (e.g. `|task| { tokio::spawn(task); }`).
pub(crate) type Spawner = Arc<dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync>;

/// Tells a "not found" value (for negative caching).
pub(crate) type IsNegative<V> = fn(&V) -> bool;

/// A value with its freshness.
#[derive(Debug, Clone)]
pub(crate) struct Stamped<V> {
    value: V,
    /// Clock nanoseconds at which the value stops being fresh.
    fresh_until: u64,
    /// How long the cache keeps it (fresh + the longer of the stale windows).
    keep_for: Duration,
    /// How long its computation took, in nanoseconds (XFetch's δ).
    took: u64,
}

/// A self-loading cache with stampede protection; see the module docs.
///
/// ```
/// use std::time::Duration;
/// use strata::Loader;
///
/// let users = Loader::builder()
///     .max_capacity(10_000)
///     .fresh_for(Duration::from_secs(60))
///     .stale_while_revalidate(Duration::from_secs(300))
///     .build()?;
/// let name = users.get(42_u64, || "Ada".to_string());
/// assert_eq!(name, "Ada");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Loader<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Loader<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Loader<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("fresh", &self.inner.fresh)
            .field("stale", &self.inner.stale)
            .field("stale_if_error", &self.inner.stale_if_error)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<K, V> {
    cache: Cache<K, Stamped<V>>,
    clock: Arc<dyn Clock>,
    /// Windows, in nanoseconds.
    fresh: u64,
    stale: u64,
    stale_if_error: u64,
    /// For `Option` values: the TTL of `None`, and how to recognise it.
    negative: Option<(u64, IsNegative<V>)>,
    /// XFetch's β; 0 turns early refresh off.
    beta: f64,
    /// xorshift state for XFetch's draw.
    random: AtomicU64,
    /// Keys with a refresh under way (at most one per key).
    refreshing: Mutex<HashSet<K>>,
    executor: Option<Executor>,
    spawner: Option<Spawner>,
    /// Successful computations (loads and refreshes), for tests and diagnostics.
    computations: AtomicU64,
}

impl<K, V> Loader<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A builder; `max_capacity` and `fresh_for` are required.
    pub fn builder() -> LoaderBuilder<K, V> {
        LoaderBuilder::default()
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_nanos()
    }

    /// The value for `key`, computed by `init` when missing or too old; see the module docs.
    /// `init` runs at most once per key at a time, however many callers arrive.
    pub fn get(&self, key: K, init: impl FnOnce() -> V + Send + 'static) -> V {
        match self.try_get(key, move || Ok::<V, std::convert::Infallible>(init())) {
            Ok(value) => value,
            Err(never) => match *never {},
        }
    }

    /// Like [`get`](Self::get) for a fallible computation.
    ///
    /// # Errors
    /// The computation's error when there is no value usable in its place (none cached, or
    /// past the stale-if-error window). Shared by every caller that waited on it; not cached.
    pub fn try_get<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E> + Send + 'static,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let now = self.now();
        let cached = self.inner.cache.get(&key);
        if let Some(stamped) = &cached
            && let Some(refresh) = self.serve_cached(now, stamped)
        {
            if refresh {
                self.refresh(key, init);
            }
            return Ok(stamped.value.clone());
        }
        let this = self.clone();
        let loaded = self.inner.cache.load_if(
            key,
            |s| now < s.fresh_until,
            move || {
                let start = this.now();
                init().map(|value| this.stamp(value, start))
            },
        );
        self.fall_back(now, cached, loaded)
    }

    /// Async [`get`](Self::get). Background refreshes go to the spawner if one is set.
    pub async fn get_async(&self, key: K, init: impl Future<Output = V> + Send + 'static) -> V {
        let init = async move { Ok::<V, std::convert::Infallible>(init.await) };
        match self.try_get_async(key, init).await {
            Ok(value) => value,
            Err(never) => match *never {},
        }
    }

    /// Async [`try_get`](Self::try_get).
    ///
    /// # Errors
    /// As [`try_get`](Self::try_get).
    pub async fn try_get_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>> + Send + 'static,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let now = self.now();
        let cached = self.inner.cache.get(&key);
        if let Some(stamped) = &cached
            && let Some(refresh) = self.serve_cached(now, stamped)
        {
            if refresh {
                self.refresh_async(key, init).await;
            }
            return Ok(stamped.value.clone());
        }
        let this = self.clone();
        let load = async move {
            let start = this.now();
            init.await.map(|value| this.stamp(value, start))
        };
        let loaded = self
            .inner
            .cache
            .load_async_if(key, |s| now < s.fresh_until, load)
            .await;
        self.fall_back(now, cached, loaded)
    }

    /// Whether a cached value may be served as is: `Some(refresh?)`, or `None` when it is too
    /// old and a new value must be loaded.
    fn serve_cached(&self, now: u64, stamped: &Stamped<V>) -> Option<bool> {
        if now < stamped.fresh_until {
            return Some(self.early_refresh_due(now, stamped));
        }
        (now < stamped.fresh_until.saturating_add(self.inner.stale)).then_some(true)
    }

    /// A load's result, or the stale value in its place if it failed within stale-if-error.
    fn fall_back<E>(
        &self,
        now: u64,
        cached: Option<Stamped<V>>,
        loaded: Result<Stamped<V>, Arc<E>>,
    ) -> Result<V, Arc<E>> {
        match (loaded, cached) {
            (Ok(stamped), _) => Ok(stamped.value),
            (Err(_), Some(stale))
                if now < stale.fresh_until.saturating_add(self.inner.stale_if_error) =>
            {
                Ok(stale.value)
            }
            (Err(error), _) => Err(error),
        }
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh early when
    /// `now − δ·β·ln(u) ≥ expiry`, u uniform in (0, 1]. The longer the computation took (δ),
    /// the earlier refreshes begin; the closer expiry, the likelier.
    fn early_refresh_due(&self, now: u64, stamped: &Stamped<V>) -> bool {
        if self.inner.beta <= 0.0 || stamped.took == 0 {
            return false;
        }
        let u = self.uniform();
        let gap = stamped.took as f64 * self.inner.beta * -u.ln();
        now as f64 + gap >= stamped.fresh_until as f64
    }

    /// A uniform draw in (0, 1] from the loader's xorshift generator.
    fn uniform(&self) -> f64 {
        let next = |mut x: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let previous = self
            .inner
            .random
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(next(x)))
            .unwrap_or_else(|x| x);
        ((next(previous) >> 11) + 1) as f64 / (1_u64 << 53) as f64
    }

    fn stamp(&self, value: V, start: u64) -> Stamped<V> {
        let inner = &*self.inner;
        let end = self.now();
        self.inner.computations.fetch_add(1, Ordering::Relaxed);
        let (fresh, keep) = match inner.negative {
            Some((ttl, is_negative)) if is_negative(&value) => (ttl, ttl),
            _ => (
                inner.fresh,
                inner
                    .fresh
                    .saturating_add(inner.stale.max(inner.stale_if_error)),
            ),
        };
        Stamped {
            value,
            fresh_until: end.saturating_add(fresh),
            keep_for: Duration::from_nanos(keep),
            took: end.saturating_sub(start),
        }
    }

    /// Claims the key's refresh slot; `None` if another caller is refreshing it.
    fn claim_refresh(&self, key: &K) -> Option<RefreshSlot<K, V>> {
        self.inner
            .refreshing
            .lock()
            .insert(key.clone())
            .then(|| RefreshSlot {
                inner: self.inner.clone(),
                key: key.clone(),
            })
    }

    /// Refreshes `key` unless a refresh is under way: on the executor if set, else inline.
    fn refresh<E>(&self, key: K, init: impl FnOnce() -> Result<V, E> + Send + 'static) {
        let Some(slot) = self.claim_refresh(&key) else {
            return;
        };
        let this = self.clone();
        let job = move || {
            let start = this.now();
            // A failed refresh keeps the stale value (stale-if-error); nothing to store. A
            // write of the key meanwhile keeps the refreshed value out (`refresh_with`).
            this.inner
                .cache
                .refresh_with(key, || init().map(|value| this.stamp(value, start)));
            drop(slot);
        };
        match &self.inner.executor {
            Some(executor) => executor(Box::new(job)),
            None => job(),
        }
    }

    /// Async [`refresh`](Self::refresh): on the spawner if set, else awaited inline.
    async fn refresh_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>> + Send + 'static,
    ) {
        let Some(slot) = self.claim_refresh(&key) else {
            return;
        };
        let this = self.clone();
        let task = async move {
            let start = this.now();
            let stamped = async { init.await.map(|value| this.stamp(value, start)) };
            this.inner.cache.refresh_with_async(key, stamped).await;
            drop(slot);
        };
        match &self.inner.spawner {
            Some(spawn) => spawn(Box::pin(task)),
            None => task.await,
        }
    }

    /// Drops `key`'s value: the next read computes it.
    pub fn invalidate(&self, key: &K) {
        self.inner.cache.remove(key);
    }

    /// Drops every value.
    pub fn invalidate_all(&self) {
        self.inner.cache.invalidate_all();
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.inner.cache.len()
    }

    /// True when no values are held.
    pub fn is_empty(&self) -> bool {
        self.inner.cache.is_empty()
    }

    /// The bound given to the builder.
    pub fn capacity(&self) -> u64 {
        self.inner.cache.capacity()
    }

    /// The underlying cache's counters (a stale or early-refreshed read counts as a hit).
    pub fn stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Successful computations so far (loads and refreshes), for diagnostics and tests.
    pub fn computations(&self) -> u64 {
        self.inner.computations.load(Ordering::Relaxed)
    }
}

/// A claimed refresh slot; frees it when dropped (after the refresh, or if it panicked).
struct RefreshSlot<K: Hash + Eq, V> {
    inner: Arc<Inner<K, V>>,
    key: K,
}

impl<K: Hash + Eq, V> Drop for RefreshSlot<K, V> {
    fn drop(&mut self) {
        self.inner.refreshing.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockClock;

    /// XFetch's law: with δ·β = 1 s, a read x seconds before expiry refreshes with probability
    /// e^(−x). Checked on 20 000 seeded draws at three distances.
    #[test]
    fn early_refresh_probability_follows_xfetch() {
        let loader: Loader<u32, u32> = Loader::builder()
            .max_capacity(10)
            .fresh_for(Duration::from_secs(100))
            .early_refresh(1.0)
            .seed(7)
            .clock(MockClock::new())
            .build()
            .expect("valid config");
        let second = 1_000_000_000_u64;
        let stamped = Stamped {
            value: 0,
            fresh_until: 100 * second,
            keep_for: Duration::ZERO,
            took: second,
        };
        for x in [0.1_f64, 1.0, 3.0] {
            let now = 100 * second - (x * second as f64) as u64;
            let n = 20_000;
            let due = (0..n)
                .filter(|_| loader.early_refresh_due(now, &stamped))
                .count();
            let expected = (-x).exp();
            let observed = due as f64 / n as f64;
            assert!(
                (observed - expected).abs() < 0.02,
                "x={x}: observed {observed}, expected {expected}"
            );
        }
        let fresh_long_ago = Stamped { took: 0, ..stamped };
        assert!(
            !loader.early_refresh_due(0, &fresh_long_ago),
            "no δ measured: no early refresh"
        );
    }
}
