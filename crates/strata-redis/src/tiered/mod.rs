//! The tiered cache: memory → disk → Redis, coherent across processes.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strata::{Cache, DiskStore, InsertOptions, Tag};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use crate::codec::Codec;
use crate::coherence::{self, LocalTiers, Message, Subscription};
use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::stats::TierStats;
use crate::tier::{Lease, RedisTier};

mod builder;

pub use builder::TieredBuilder;

/// What a computation that failed returned, shared by everyone who waited for it.
type Failure = Arc<dyn std::error::Error + Send + Sync>;

/// A `get_with` load in flight in this process.
struct Flight<V> {
    /// Its callers share the one value, or the computation's error.
    cell: OnceCell<Result<V, Failure>>,
    /// The key was written through this cache since the load began: the value it stored
    /// may predate the write, and is taken back (see `get_with`).
    outdated: AtomicBool,
}

impl<V> Default for Flight<V> {
    fn default() -> Self {
        Self {
            cell: OnceCell::new(),
            outdated: AtomicBool::new(false),
        }
    }
}

/// At most this many keys in one invalidation message (a tag's members).
const KEYS_PER_MESSAGE: usize = 1024;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A value in the memory tier, with its absolute expiry (so promotion keeps what is left).
#[derive(Clone)]
struct Stamped<V> {
    value: V,
    expires_at: Option<u64>,
}

/// The local tiers, shared with the invalidation subscriber.
struct Local<V> {
    memory: Option<Cache<Vec<u8>, Stamped<V>>>,
    disk: Option<DiskStore>,
}

impl<V: Clone + Send + Sync + 'static> LocalTiers for Local<V> {
    fn apply(&self, message: &Message) {
        match message {
            Message::Key(key) => {
                if let Some(m) = &self.memory {
                    m.remove(key);
                }
                if let Some(d) = &self.disk {
                    let _ = d.remove(key);
                }
            }
            Message::Keys(keys) => {
                for key in keys {
                    self.apply(&Message::Key(key.clone()));
                }
            }
            Message::Tag(tag) => {
                if let Some(m) = &self.memory {
                    m.invalidate_tag(tag);
                }
                if let Some(d) = &self.disk {
                    let _ = d.invalidate_tag(tag);
                }
            }
            Message::All => {
                if let Some(m) = &self.memory {
                    m.invalidate_all();
                }
                if let Some(d) = &self.disk {
                    let _ = d.invalidate_all();
                }
            }
        }
    }
}

/// Counters of every tier.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TieredStats {
    /// The memory tier (hits and misses of its lookups).
    pub memory: TierStats,
    /// The disk tier.
    pub disk: TierStats,
    /// The Redis tier (with latency and errors).
    pub redis: TierStats,
    /// Invalidations received from other processes and applied locally.
    pub invalidations_received: u64,
    /// Times the local tiers were flushed after the invalidation channel reconnected.
    pub flushes_after_reconnect: u64,
    /// Whether the invalidation channel is connected now.
    pub subscribed: bool,
}

struct Inner<V> {
    codec: Arc<dyn Codec<V>>,
    /// For entries written without a TTL of their own.
    ttl: Option<Duration>,
    local: Arc<Local<V>>,
    redis: Option<RedisTier>,
    origin: u128,
    subscription: Arc<Subscription>,
    subscriber: Option<JoinHandle<()>>,
    /// In-flight loads in this process, one per key.
    flights: Mutex<HashMap<Vec<u8>, Arc<Flight<V>>>>,
}

impl<V> Drop for Inner<V> {
    fn drop(&mut self) {
        if let Some(task) = &self.subscriber {
            task.abort();
        }
    }
}

/// Learns of other processes' changes: RESP3 tracking where it works, pub/sub otherwise.
async fn listen<V: Clone + Send + Sync + 'static>(
    redis: &RedisTier,
    config: &RedisConfig,
    origin: u128,
    local: Arc<Local<V>>,
    subscription: Arc<Subscription>,
) -> JoinHandle<()> {
    if let Some(pushes) = redis.take_pushes() {
        let enabled = tokio::time::timeout(config.timeout * 4, redis.enable_tracking()).await;
        if enabled.is_ok_and(|r| r.is_ok()) {
            return tokio::spawn(coherence::track(redis.clone(), pushes, local, subscription));
        }
    }
    let url = config.urls.first().cloned().unwrap_or_default();
    tokio::spawn(coherence::subscribe(
        url,
        redis.channel(),
        origin,
        local,
        subscription,
        config.timeout,
    ))
}

/// Memory → disk → Redis (any subset) behind one API, coherent across processes. Cloning
/// shares it.
pub struct TieredCache<K, V> {
    inner: Arc<Inner<V>>,
    _types: PhantomData<fn(K) -> V>,
}

impl<K, V> Clone for TieredCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> TieredCache<K, V>
where
    K: Serialize,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A builder; add the tiers you want ([`memory`](TieredBuilder::memory),
    /// [`disk`](TieredBuilder::disk), [`redis`](TieredBuilder::redis)).
    pub fn builder() -> TieredBuilder<K, V> {
        TieredBuilder::new()
    }

    /// The Redis tier underneath, if there is one.
    pub fn redis(&self) -> Option<&RedisTier> {
        self.inner.redis.as_ref()
    }

    /// How long a local copy may live: until the entry expires, and (with Redis, the
    /// coherence backstop) at most `max_local_ttl`. `None`: forever.
    fn local_ttl(&self, expires_at: Option<u64>) -> Option<Duration> {
        let now = now_ms();
        let left = expires_at.map(|at| Duration::from_millis(at.saturating_sub(now).max(1)));
        match (&self.inner.redis, left) {
            (Some(redis), Some(left)) => Some(left.min(redis.config().max_local_ttl)),
            (Some(redis), None) => Some(redis.config().max_local_ttl),
            (None, left) => left,
        }
    }

    /// Invalidations applied so far that may concern `key` (from other processes, or
    /// Redis's tracking).
    fn epoch(&self, key: &[u8]) -> u64 {
        self.inner.subscription.epoch_of(key)
    }

    /// Stores in the local tiers what was just read from Redis or written to it, unless an
    /// invalidation that may concern `key` arrived since `epoch` (taken before the Redis
    /// operation): a slow read may hold the value just invalidated, and another process's
    /// write may have landed in Redis after ours. Then any local copy goes instead, and the
    /// next read asks Redis. Checked again after the store, for an invalidation landing
    /// between the check and the store.
    fn store_local_since(
        &self,
        epoch: u64,
        key: &[u8],
        value: &V,
        wrapped: &[u8],
        expires_at: Option<u64>,
        tags: &[Tag],
    ) {
        if self.epoch(key) == epoch {
            self.store_local(key, value, wrapped, expires_at, tags);
            if self.epoch(key) == epoch {
                return;
            }
        }
        self.inner.local.apply(&Message::Key(key.to_vec()));
    }

    /// Stores in the local tiers (capped at `max_local_ttl`).
    /// `wrapped` is the value's encoding with its tags in front, as Redis stores it.
    fn store_local(
        &self,
        key: &[u8],
        value: &V,
        wrapped: &[u8],
        expires_at: Option<u64>,
        tags: &[Tag],
    ) {
        let mut options = InsertOptions::new().tags(tags.iter().cloned());
        if let Some(ttl) = self.local_ttl(expires_at) {
            options = options.ttl(ttl);
        }
        if let Some(disk) = &self.inner.local.disk {
            // Expiry and tags travel with the value, so promoting it into memory keeps both.
            let mut stamped = expires_at.unwrap_or(0).to_le_bytes().to_vec();
            stamped.extend_from_slice(wrapped);
            // A failed local write only costs a later miss.
            let _ = disk.insert_with(key, &stamped, &options);
        }
        if let Some(memory) = &self.inner.local.memory {
            memory.insert_with(
                key.to_vec(),
                Stamped {
                    value: value.clone(),
                    expires_at,
                },
                &options,
            );
        }
    }

    /// The value for `key`: from memory, else disk, else Redis, promoting it into the tiers
    /// above with the TTL it has left.
    ///
    /// # Errors
    /// [`Error::Encode`] for a key that cannot be serialized; in strict mode, a Redis failure.
    pub async fn get(&self, key: &K) -> Result<Option<V>> {
        let key = encode(key, "key")?;
        self.get_bytes(&key).await
    }

    async fn get_bytes(&self, key: &[u8]) -> Result<Option<V>> {
        let now = now_ms();
        let local = &self.inner.local;
        if let Some(memory) = &local.memory
            && let Some(s) = memory
                .get(key)
                .filter(|s| s.expires_at.is_none_or(|at| at > now))
        {
            return Ok(Some(s.value));
        }
        if let Some(disk) = &local.disk
            && let Ok(Some(bytes)) = disk.get(key)
            && let Some((expires_at, tags, value)) = split_stamp(&bytes).and_then(|(at, b)| {
                let (tags, payload) = strata::decode_tagged(b)?;
                Some((at, tags, self.inner.codec.decode(payload)?))
            })
            && expires_at.is_none_or(|at| at > now)
        {
            if let Some(memory) = &local.memory {
                let mut options = InsertOptions::new().tags(tags);
                if let Some(ttl) = self.local_ttl(expires_at) {
                    options = options.ttl(ttl);
                }
                let stamped = Stamped {
                    value: value.clone(),
                    expires_at,
                };
                memory.insert_with(key.to_vec(), stamped, &options);
            }
            return Ok(Some(value));
        }
        let epoch = self.epoch(key);
        let Some(redis) = &self.inner.redis else {
            return Ok(None);
        };
        let Some((stored, ttl)) = redis.get(key).await? else {
            return Ok(None);
        };
        let Some((tags, bytes)) = strata::decode_tagged(&stored) else {
            return Ok(None);
        };
        let Some(value) = self.inner.codec.decode(bytes) else {
            return Ok(None);
        };
        let expires_at = ttl.map(|t| now_ms() + t.as_millis() as u64);
        self.store_local_since(epoch, key, &value, &stored, expires_at, &tags);
        Ok(Some(value))
    }

    /// Stores `value` in every tier (write-through) and tells other processes to drop their
    /// local copies.
    ///
    /// # Errors
    /// [`Error::Encode`]; in strict mode, a Redis failure.
    pub async fn insert(&self, key: &K, value: V) -> Result<()> {
        self.insert_with(key, value, None, &[]).await
    }

    /// Like [`insert`](Self::insert), with a TTL (`None`: the cache's
    /// [`time_to_live`](TieredBuilder::time_to_live), if any) and tags.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub async fn insert_with(
        &self,
        key: &K,
        value: V,
        ttl: Option<Duration>,
        tags: &[Tag],
    ) -> Result<()> {
        let key = encode(key, "key")?;
        self.outdate(&key);
        self.insert_bytes(&key, &value, ttl.or(self.inner.ttl), tags, None)
            .await
    }

    /// Writes `value` through every tier and announces it. A lease holder's computed value
    /// goes under its `lease`: only if no write of the key, by any process, came since the
    /// lease was taken (see [`RedisTier::fill`]); otherwise it is stored nowhere.
    async fn insert_bytes(
        &self,
        key: &[u8],
        value: &V,
        ttl: Option<Duration>,
        tags: &[Tag],
        lease: Option<&Lease>,
    ) -> Result<()> {
        let bytes = self
            .inner
            .codec
            .encode(value)
            .map_err(|reason| Error::Encode {
                what: "value",
                reason,
            })?;
        let mut wrapped = Vec::new();
        strata::encode_tagged(tags, &bytes, &mut wrapped)?;
        let epoch = self.epoch(key);
        if let Some(redis) = &self.inner.redis {
            let stored = match lease {
                Some(lease) => redis.fill(lease, &wrapped, ttl).await?,
                None => redis
                    .insert(key, &wrapped, ttl, tags)
                    .await
                    .map(|()| true)?,
            };
            if !stored {
                return Ok(());
            }
        }
        let expires_at = ttl.map(|t| now_ms() + t.as_millis() as u64);
        self.store_local_since(epoch, key, value, &wrapped, expires_at, tags);
        self.announce(Message::Key(key.to_vec())).await;
        Ok(())
    }

    /// Removes `key` from every tier, here and (through the channel) in other processes.
    ///
    /// # Errors
    /// [`Error::Encode`]; in strict mode, a Redis failure.
    pub async fn remove(&self, key: &K) -> Result<()> {
        let key = encode(key, "key")?;
        self.outdate(&key);
        self.remove_bytes(key).await
    }

    /// Removes `key` (encoded) from every tier, here and elsewhere.
    async fn remove_bytes(&self, key: Vec<u8>) -> Result<()> {
        if let Some(redis) = &self.inner.redis {
            redis.remove(&key).await?;
        }
        let message = Message::Key(key);
        self.inner.local.apply(&message);
        self.announce(message).await;
        Ok(())
    }

    /// Removes every entry carrying `tag` from every tier, in every process; how many Redis
    /// held.
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<usize> {
        self.outdate_all();
        let n = match &self.inner.redis {
            Some(redis) => {
                // The keys Redis deleted for the tag: their local copies (here and elsewhere)
                // go by name as well, whatever tags those copies carry.
                let deleted = redis.invalidate_tag_keys(tag, true).await?;
                for chunk in deleted.chunks(KEYS_PER_MESSAGE) {
                    let message = Message::Keys(chunk.to_vec());
                    self.inner.local.apply(&message);
                    self.announce(message).await;
                }
                deleted.len()
            }
            // Without Redis, the deepest local tier holds them all.
            None => {
                let local = &self.inner.local;
                let in_memory = local.memory.as_ref().map_or(0, |m| m.invalidate_tag(tag));
                let on_disk = local
                    .disk
                    .as_ref()
                    .map_or(Ok(0), |d| d.invalidate_tag(tag))?;
                in_memory.max(on_disk)
            }
        };
        let message = Message::Tag(tag.to_string());
        self.inner.local.apply(&message);
        self.announce(message).await;
        Ok(n)
    }

    /// Removes every entry of this cache's prefix from every tier, in every process.
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn invalidate_all(&self) -> Result<()> {
        self.outdate_all();
        if let Some(redis) = &self.inner.redis {
            redis.invalidate_all().await?;
        }
        self.inner.local.apply(&Message::All);
        self.announce(Message::All).await;
        Ok(())
    }

    async fn announce(&self, message: Message) {
        if let Some(redis) = &self.inner.redis {
            redis
                .publish(coherence::encode(self.inner.origin, &message))
                .await;
        }
    }

    /// The value for `key`, computing it with `init` if no tier has it. Concurrent callers
    /// in this process share one computation; across processes, a lease in Redis (`SET NX
    /// PX`) lets one compute while the others wait for its value (up to `lease_wait`; a
    /// lease whose holder died expires after `lease_ttl`). If Redis is down, each process
    /// computes for itself.
    ///
    /// # Errors
    /// [`Error::Encode`]; in strict mode, a Redis failure.
    pub async fn get_with(&self, key: K, init: impl Future<Output = V>) -> Result<V> {
        self.get_with_options(key, None, &[], init).await
    }

    /// Like [`get_with`](Self::get_with), storing the computed value with a TTL (`None`: the
    /// cache's [`time_to_live`](TieredBuilder::time_to_live), if any) and tags. An
    /// invalidation of one of the tags during the computation, in any process, wins as a
    /// write of the key does: the value goes to the callers, and is stored nowhere.
    ///
    /// ```no_run
    /// # async fn profile(id: u32) -> String { String::new() }
    /// # async fn demo(cache: strata_redis::TieredCache<u32, String>) -> strata_redis::Result<()> {
    /// use std::time::Duration;
    /// let ttl = Some(Duration::from_secs(60));
    /// let html = cache
    ///     .get_with_options(42, ttl, &["user:42".into()], profile(42))
    ///     .await?;
    /// cache.invalidate_tag("user:42").await?; // user 42 changed: gone from every tier
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`get_with`](Self::get_with).
    pub async fn get_with_options(
        &self,
        key: K,
        ttl: Option<Duration>,
        tags: &[Tag],
        init: impl Future<Output = V>,
    ) -> Result<V> {
        let init = async { Ok::<V, std::convert::Infallible>(init.await) };
        self.try_get_with_options(key, ttl, tags, init).await
    }

    /// Like [`get_with`](Self::get_with), for a computation that can fail. Its error goes to
    /// every caller that waited for it in this process, as [`Error::Load`], and nothing is
    /// stored: the next call computes again. Callers in other processes waiting for its
    /// lease then compute for themselves, one at a time.
    ///
    /// # Errors
    /// [`Error::Load`] with the computation's error; otherwise as [`get_with`](Self::get_with).
    pub async fn try_get_with<E>(
        &self,
        key: K,
        init: impl Future<Output = std::result::Result<V, E>>,
    ) -> Result<V>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.try_get_with_options(key, None, &[], init).await
    }

    /// [`try_get_with`](Self::try_get_with) with the TTL and tags of
    /// [`get_with_options`](Self::get_with_options).
    ///
    /// # Errors
    /// As [`try_get_with`](Self::try_get_with).
    pub async fn try_get_with_options<E>(
        &self,
        key: K,
        ttl: Option<Duration>,
        tags: &[Tag],
        init: impl Future<Output = std::result::Result<V, E>>,
    ) -> Result<V>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let ttl = ttl.or(self.inner.ttl);
        let key = encode(&key, "key")?;
        if let Some(v) = self.get_bytes(&key).await? {
            return Ok(v);
        }
        let flight = self
            .inner
            .flights
            .lock()
            .entry(key.clone())
            .or_default()
            .clone();
        let init = async { init.await.map_err(|e| Arc::new(e) as Failure) };
        let result = flight
            .cell
            .get_or_try_init(|| async {
                let (value, overwrote) = match self.load(&key, ttl, tags, init).await? {
                    Ok(loaded) => loaded,
                    Err(failure) => return Ok(Err(failure)),
                };
                // Stored, then checked: a write of the key through this cache since the load
                // began (marked before it landed) means the value stored may predate it.
                // Taking it back costs a miss at worst; keeping it would serve it. A value
                // read from Redis, or filled there under a lease, cannot have outlived the
                // write in Redis (the write ended the lease, see `fill`): only the local
                // copy goes then.
                if flight.outdated.load(Ordering::SeqCst) {
                    if overwrote {
                        self.remove_bytes(key.clone()).await?;
                    } else {
                        self.inner.local.apply(&Message::Key(key.clone()));
                    }
                }
                Ok::<_, Error>(Ok(value))
            })
            .await
            .map(|loaded| loaded.clone().map_err(Error::Load));
        let mut flights = self.inner.flights.lock();
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        result?
    }

    /// Before a write of `key` through this cache: a load of it in flight must not keep its
    /// value (see `get_with`).
    fn outdate(&self, key: &[u8]) {
        if let Some(flight) = self.inner.flights.lock().get(key) {
            flight.outdated.store(true, Ordering::SeqCst);
        }
    }

    /// Before a write that may concern any key: every load in flight is outdated.
    fn outdate_all(&self) {
        for flight in self.inner.flights.lock().values() {
            flight.outdated.store(true, Ordering::SeqCst);
        }
    }

    /// The leader's load: lease, or wait for the lease holder's value. Also whether it wrote
    /// the value to Redis unconditionally (no lease: Redis down, or waited out), so that it
    /// may have overwritten a later write.
    async fn load(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        tags: &[Tag],
        init: impl Future<Output = Result<V, Failure>>,
    ) -> Result<Result<(V, bool), Failure>> {
        let Some(redis) = &self.inner.redis else {
            return self.compute_and_insert(key, ttl, tags, None, init).await;
        };
        let config = redis.config().clone();
        let deadline = Instant::now() + config.lease_wait;
        loop {
            match redis.try_lease(key).await {
                Ok(Some(lease)) => {
                    let loaded = async {
                        // Someone may have stored it between our miss and our lease.
                        if let Some(v) = self.get_bytes(key).await? {
                            return Ok(Ok((v, false)));
                        }
                        // Listed under its tags before the source is read: an invalidation
                        // of one of them from here on ends the lease.
                        redis.tag_ahead(key, ttl, tags).await?;
                        self.compute_and_insert(key, ttl, tags, Some(&lease), init)
                            .await
                    }
                    .await;
                    // Also after an error: the waiters need not wait it out.
                    redis.release(lease).await;
                    return loaded;
                }
                Ok(None) => {
                    // Another process computes: wait for its value, or for its lease to go.
                    while Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if let Some(v) = self.get_bytes(key).await? {
                            return Ok(Ok((v, false)));
                        }
                        if !redis.leased(key).await.unwrap_or(false) {
                            break;
                        }
                    }
                    if Instant::now() >= deadline {
                        return self.compute_and_insert(key, ttl, tags, None, init).await;
                    }
                }
                Err(e) => {
                    redis.note_error(&e);
                    if config.strict {
                        return Err(e.into());
                    }
                    return self.compute_and_insert(key, ttl, tags, None, init).await;
                }
            }
        }
    }

    /// Computes, then writes the value everywhere, under `lease` if it has one (see
    /// [`insert_bytes`](Self::insert_bytes)). Also whether it wrote Redis unconditionally
    /// (without a lease).
    async fn compute_and_insert(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        tags: &[Tag],
        lease: Option<&Lease>,
        init: impl Future<Output = Result<V, Failure>>,
    ) -> Result<Result<(V, bool), Failure>> {
        let v = match init.await {
            Ok(v) => v,
            Err(failure) => return Ok(Err(failure)),
        };
        self.insert_bytes(key, &v, ttl, tags, lease).await?;
        Ok(Ok((v, lease.is_none())))
    }

    /// Counters of every tier.
    pub fn stats(&self) -> TieredStats {
        let local = &self.inner.local;
        let memory = local.memory.as_ref().map(|m| m.stats()).unwrap_or_default();
        let disk = local.disk.as_ref().map(|d| d.stats()).unwrap_or_default();
        let memory_stats = TierStats {
            hits: memory.hits,
            misses: memory.misses,
            ..TierStats::default()
        };
        let disk_stats = TierStats {
            hits: disk.hits,
            misses: disk.misses,
            errors: disk.write_errors + disk.read_errors,
            ..TierStats::default()
        };
        let s = &self.inner.subscription;
        TieredStats {
            memory: memory_stats,
            disk: disk_stats,
            redis: self
                .inner
                .redis
                .as_ref()
                .map(RedisTier::stats)
                .unwrap_or_default(),
            invalidations_received: s.received.load(Ordering::Relaxed),
            flushes_after_reconnect: s.flushes.load(Ordering::Relaxed),
            subscribed: s.connected.load(Ordering::Acquire),
        }
    }
}

/// Redis values carry their tags, so a process that promotes one tags its local copy and a
/// tag invalidation from elsewhere reaches it: `[count u16][len u16, tag]… payload`.
fn split_stamp(bytes: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let at = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    Some(((at != 0).then_some(at), &bytes[8..]))
}

fn encode<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Encode {
        what,
        reason: e.to_string(),
    })
}
