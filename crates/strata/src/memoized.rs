//! `Memoized`: a function wrapped with a cache, for people who prefer closures to macros.

use std::hash::Hash;

use crate::memory::Cache;
use crate::stats::CacheInfo;

/// A function with a cache in front: `call` computes each argument's result once and serves
/// it from the cache after that, with the same request coalescing as [`Cache::get_with`].
///
/// ```
/// use strata::Memoized;
///
/// let slow_square = Memoized::new(1_000, |n: &u64| n * n);
/// assert_eq!(slow_square.call(12), 144);
/// assert_eq!(slow_square.call(12), 144); // from the cache
/// assert_eq!(slow_square.info().hits, 1);
/// ```
pub struct Memoized<K, V, F> {
    cache: Cache<K, V>,
    function: F,
}

impl<K, V, F> std::fmt::Debug for Memoized<K, V, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memoized")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<K, V, F> Memoized<K, V, F>
where
    K: Hash + Eq + Clone,
    V: Clone,
    F: Fn(&K) -> V,
{
    /// Wraps `function` with a cache of `capacity` results.
    pub fn new(capacity: u64, function: F) -> Self {
        Self::with_cache(Cache::new(capacity), function)
    }

    /// Wraps `function` with a cache you configured (TTL, weigher, listener …) or share.
    pub fn with_cache(cache: Cache<K, V>, function: F) -> Self {
        Self { cache, function }
    }

    /// The function's result for `arg`, from the cache when present.
    pub fn call(&self, arg: K) -> V {
        let function = &self.function;
        self.cache.get_with(arg.clone(), || function(&arg))
    }

    /// Recomputes the result for `arg` and caches it.
    pub fn refresh(&self, arg: K) -> V {
        let value = (self.function)(&arg);
        self.cache.insert(arg, value.clone());
        value
    }

    /// Drops the cached result for `arg`.
    pub fn invalidate(&self, arg: &K) {
        self.cache.remove(arg);
    }

    /// Drops every cached result.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Hits, misses, size and capacity.
    pub fn info(&self) -> CacheInfo {
        self.cache.info()
    }

    /// The cache behind the function.
    pub fn cache(&self) -> &Cache<K, V> {
        &self.cache
    }
}
