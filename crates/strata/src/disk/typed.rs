//! Typed keys and values over the byte store, and get-or-compute with request coalescing.
//!
//! Encoding (version 1, documented so other tools can read a store): a key is its
//! [postcard](https://postcard.jamesmunns.com/wire-format) encoding; a value is one version
//! byte (`1`) followed by its postcard encoding. A value that does not decode (another type, or
//! another version) reads as a miss and is counted in [`DiskStats::decode_errors`].

use std::future::Future;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::coalesce::{Flights, LeaderGuard, Outcome};
use crate::disk::stats::DiskStats;
use crate::disk::store::DiskStore;
use crate::error::{Error, Result};
use crate::options::InsertOptions;

/// The value encoding's version byte.
const VALUE_FORMAT: u8 = 1;

/// A disk tier with typed keys and values (serde), and `get_with` like the memory tier's.
///
/// ```
/// use strata::{DiskCache, DiskStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = DiskStore::builder(dir.path()).max_bytes(64 << 20).open()?;
/// let cache: DiskCache<(u32, String), Vec<f64>> = DiskCache::new(store);
/// let key = (7, "prices".to_string());
/// let prices = cache.get_with(key.clone(), || vec![1.5, 2.5]);
/// assert_eq!(cache.get(&key)?, Some(prices));
/// # Ok::<(), strata::Error>(())
/// ```
pub struct DiskCache<K, V> {
    store: DiskStore,
    flights: Flights<Vec<u8>, V>,
    hasher: foldhash::fast::RandomState,
    _types: PhantomData<fn(K) -> V>,
}

impl<K, V> DiskCache<K, V>
where
    K: Serialize,
    V: Serialize + DeserializeOwned + Clone,
{
    /// A typed view of `store`. Use one value type per store (or per key space).
    pub fn new(store: DiskStore) -> Self {
        Self {
            store,
            flights: Flights::new(64),
            hasher: foldhash::fast::RandomState::default(),
            _types: PhantomData,
        }
    }

    /// The byte store underneath.
    pub fn store(&self) -> &DiskStore {
        &self.store
    }

    /// The value for `key`, if stored, live and decodable.
    ///
    /// # Errors
    /// [`Error::Encode`] if the key cannot be serialized; [`Error::Io`] if the read fails.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let key = encode_key(key)?;
        Ok(self.decode(self.store.get(&key)?))
    }

    /// Stores `value` for `key`.
    ///
    /// # Errors
    /// As [`DiskStore::insert`], and [`Error::Encode`].
    pub fn insert(&self, key: &K, value: &V) -> Result<()> {
        self.insert_with(key, value, &InsertOptions::new())
    }

    /// Stores `value` for `key` with a TTL and tags.
    ///
    /// # Errors
    /// As [`DiskStore::insert_with`], and [`Error::Encode`].
    pub fn insert_with(&self, key: &K, value: &V, options: &InsertOptions) -> Result<()> {
        let key = encode_key(key)?;
        self.outdate(&key);
        self.store.insert_with(&key, &encode_value(value)?, options)
    }

    /// Removes `key`; true if a live entry was removed.
    ///
    /// # Errors
    /// As [`DiskStore::remove`], and [`Error::Encode`].
    pub fn remove(&self, key: &K) -> Result<bool> {
        let key = encode_key(key)?;
        self.outdate(&key);
        self.store.remove(&key)
    }

    /// Before a write of `key` through this cache: a `get_with` computing it meanwhile must
    /// not keep its value, read from the source before the write. Marked before the write,
    /// and checked by the leader after its own insert (`settle`): whichever order the two
    /// writes land in, the leader sees the mark, or wrote first.
    fn outdate(&self, key: &[u8]) {
        self.flights.outdate(self.hasher.hash_one(key), key);
    }

    /// Removes every entry carrying `tag`.
    ///
    /// # Errors
    /// As [`DiskStore::invalidate_tag`].
    pub fn invalidate_tag(&self, tag: &str) -> Result<usize> {
        self.flights.outdate_all();
        self.store.invalidate_tag(tag)
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// As [`DiskStore::invalidate_all`].
    pub fn invalidate_all(&self) -> Result<()> {
        self.flights.outdate_all();
        self.store.invalidate_all()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The store's counters.
    pub fn stats(&self) -> DiskStats {
        self.store.stats()
    }

    /// The value for `key`, computing and storing it with `init` on a miss. Concurrent
    /// callers missing the same key run `init` once (as the memory tier's `get_with`).
    ///
    /// The disk never fails this call: a read error counts as a miss, a key that cannot be
    /// encoded or a failed write just leaves the value uncached (both are counted in
    /// [`DiskStats`]).
    pub fn get_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        match self.try_get_with(key, || Ok::<V, std::convert::Infallible>(init())) {
            Ok(value) => value,
            Err(never) => match *never {},
        }
    }

    /// Like [`get_with`](Self::get_with) for a fallible computation: errors go to the caller
    /// and its waiters and are not stored.
    ///
    /// # Errors
    /// The error returned by `init` (this call's or the one it waited on).
    pub fn try_get_with<E>(&self, key: K, init: impl FnOnce() -> Result<V, E>) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let Ok(key) = encode_key(&key) else {
            self.store.count_decode_error();
            return init().map_err(Arc::new);
        };
        if let Some(value) = self.lookup(&key) {
            return Ok(value);
        }
        let hash = self.hasher.hash_one(&key);
        let flight = match self.flights.lead(hash, &key) {
            Ok(flight) => flight,
            Err(result) => return result,
        };
        if let Some(value) = self.peek(&key) {
            flight.land(Outcome::Done(value.clone()));
            return Ok(value);
        }
        let result = init();
        self.settle(&key, result, flight)
    }

    /// Async [`get_with`](Self::get_with). The disk reads and writes run on the calling
    /// thread (they are short for small values; wrap large ones in `spawn_blocking`).
    pub async fn get_with_async(&self, key: K, init: impl Future<Output = V>) -> V {
        let init = async { Ok::<V, std::convert::Infallible>(init.await) };
        match self.try_get_with_async(key, init).await {
            Ok(value) => value,
            Err(never) => match *never {},
        }
    }

    /// Async [`try_get_with`](Self::try_get_with).
    ///
    /// # Errors
    /// The error returned by `init` (this call's or the one it waited on).
    pub async fn try_get_with_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let Ok(key) = encode_key(&key) else {
            self.store.count_decode_error();
            return init.await.map_err(Arc::new);
        };
        if let Some(value) = self.lookup(&key) {
            return Ok(value);
        }
        let hash = self.hasher.hash_one(&key);
        let flight = match self.flights.lead_async(hash, &key).await {
            Ok(flight) => flight,
            Err(result) => return result,
        };
        if let Some(value) = self.peek(&key) {
            flight.land(Outcome::Done(value.clone()));
            return Ok(value);
        }
        let result = init.await;
        self.settle(&key, result, flight)
    }

    /// A counted read that treats errors as misses.
    fn lookup(&self, key: &[u8]) -> Option<V> {
        self.decode(self.store.get(key).ok().flatten())
    }

    /// A second look by the leader (not counted: the caller's miss was).
    fn peek(&self, key: &[u8]) -> Option<V> {
        self.decode(self.store.peek(key).ok().flatten())
    }

    /// The leader's last step: store the value, and hand the value or error to the waiters.
    fn settle<E: Send + Sync + 'static>(
        &self,
        key: &[u8],
        result: Result<V, E>,
        flight: LeaderGuard<'_, Vec<u8>, V>,
    ) -> Result<V, Arc<E>> {
        match result {
            Ok(value) => {
                if let Ok(bytes) = encode_value(&value) {
                    // A failed write is counted by the store; the value is still good.
                    let _ = self.store.insert(key, &bytes);
                    // Stored, then checked: a write of the key since the flight took off,
                    // before or after this insert, made the value stale. Removing it costs a
                    // miss at worst; keeping it would serve the stale value.
                    if flight.outdated() {
                        let _ = self.store.remove(key);
                    }
                }
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

    fn decode(&self, bytes: Option<Vec<u8>>) -> Option<V> {
        let bytes = bytes?;
        let decoded = match bytes.split_first() {
            Some((&VALUE_FORMAT, body)) => postcard::from_bytes(body).ok(),
            _ => None,
        };
        if decoded.is_none() {
            self.store.count_decode_error();
        }
        decoded
    }
}

impl<K, V> std::fmt::Debug for DiskCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("store", &self.store)
            .finish()
    }
}

fn encode_key<K: Serialize>(key: &K) -> Result<Vec<u8>> {
    postcard::to_allocvec(key).map_err(|e| Error::Encode {
        what: "key",
        reason: e.to_string(),
    })
}

fn encode_value<V: Serialize>(value: &V) -> Result<Vec<u8>> {
    postcard::to_extend(value, vec![VALUE_FORMAT]).map_err(|e| Error::Encode {
        what: "value",
        reason: e.to_string(),
    })
}
