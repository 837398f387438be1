//! Get-or-compute: `get_with` and its fallible and async variants, on top of request
//! coalescing (`coalesce.rs`): concurrent misses on one key run one computation.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::coalesce::{LeaderGuard, Outcome, Role};
use crate::memory::cache::Cache;

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// Like [`get`](Self::get), but not an access: not counted in the statistics, not seen by
    /// the eviction policy, and it does not reset a time-to-idle (as quick_cache's `peek`). For
    /// a second look after a counted miss (a tier below re-checking under its own lock, a
    /// coalesced load), or for maintenance that reads entries.
    ///
    /// ```
    /// let cache = strata::Cache::new(10);
    /// cache.insert(1, "one");
    /// assert_eq!(cache.peek(&1), Some("one"));
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard_for(key);
        shard.read().shard.peek(hash, key, || self.now())
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
        self.load_if(key, accept, init)
    }

    /// The coalesced load of [`try_get_with_if`](Self::try_get_with_if), for a caller that
    /// already looked (and counted the lookup).
    pub(crate) fn load_if<E>(
        &self,
        key: K,
        accept: impl Fn(&V) -> bool,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        let hash = self.inner.hasher.hash_one(&key);
        let flight = match self.inner.flights.lead(hash, &key) {
            Ok(flight) => flight,
            Err(result) => return result,
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
        self.load_async_if(key, accept, init).await
    }

    /// Async [`load_if`](Self::load_if).
    pub(crate) async fn load_async_if<E>(
        &self,
        key: K,
        accept: impl Fn(&V) -> bool,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        let hash = self.inner.hasher.hash_one(&key);
        let flight = match self.inner.flights.lead_async(hash, &key).await {
            Ok(flight) => flight,
            Err(result) => return result,
        };
        if let Some(value) = self.peek(&key).filter(|v| accept(v)) {
            flight.land(Outcome::Done(value.clone()));
            return Ok(value);
        }
        let result = init.await;
        self.settle(key, flight, result)
    }

    /// Recomputes `key`'s value with `init`, which nobody waits on (a refresh), in a flight of
    /// its own: callers that miss meanwhile wait for it, and a write of the key meanwhile
    /// keeps it out of the cache, as for `get_with`. Nothing if a flight for the key is in
    /// the air already (it brings a value). A failure caches nothing, and the callers
    /// waiting compute for themselves.
    pub(crate) fn refresh_with<E>(&self, key: K, init: impl FnOnce() -> Result<V, E>)
    where
        K: Clone,
    {
        let hash = self.inner.hasher.hash_one(&key);
        let Role::Leader(flight) = self.inner.flights.join(hash, &key) else {
            return;
        };
        if let Ok(value) = init() {
            self.insert_loaded(key, value.clone(), &flight);
            flight.land(Outcome::Done(value));
        }
    }

    /// Async [`refresh_with`](Self::refresh_with).
    pub(crate) async fn refresh_with_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) where
        K: Clone,
    {
        let hash = self.inner.hasher.hash_one(&key);
        let Role::Leader(flight) = self.inner.flights.join(hash, &key) else {
            return;
        };
        if let Ok(value) = init.await {
            self.insert_loaded(key, value.clone(), &flight);
            flight.land(Outcome::Done(value));
        }
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
                // Not cached if the key was written meanwhile: the value predates the write.
                self.insert_loaded(key, value.clone(), &flight);
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
}
