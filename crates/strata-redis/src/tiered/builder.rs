//! [`TieredBuilder`]: which tiers a [`TieredCache`] has, its codec and its default TTL.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strata::{Cache, DiskStore};

use super::{Inner, Local, Stamped, TieredCache, listen, now_ms};
use crate::codec::{Codec, Postcard};
use crate::coherence::Subscription;
use crate::config::RedisConfig;
use crate::error::Result;
use crate::tier::RedisTier;

/// Builds a [`TieredCache`].
#[must_use]
pub struct TieredBuilder<K, V> {
    redis: Option<RedisConfig>,
    memory: Option<u64>,
    disk: Option<DiskStore>,
    codec: Arc<dyn Codec<V>>,
    ttl: Option<Duration>,
    _types: PhantomData<fn(K) -> V>,
}

impl<K, V> TieredBuilder<K, V>
where
    K: Serialize,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// No tier yet, postcard encoding, no default TTL.
    pub(super) fn new() -> Self {
        Self {
            redis: None,
            memory: None,
            disk: None,
            codec: Arc::new(Postcard),
            ttl: None,
            _types: PhantomData,
        }
    }

    /// A memory tier of `capacity` entries in front.
    pub fn memory(mut self, capacity: u64) -> Self {
        self.memory = Some(capacity);
        self
    }

    /// A disk tier between memory and Redis.
    pub fn disk(mut self, store: DiskStore) -> Self {
        self.disk = Some(store);
        self
    }

    /// Redis as the shared tier behind the local ones.
    pub fn redis(mut self, config: RedisConfig) -> Self {
        self.redis = Some(config);
        self
    }

    /// A TTL for every entry written without one of its own: by [`insert`](TieredCache::insert),
    /// and the values [`get_with`](TieredCache::get_with) computes (default: none; local
    /// copies still live at most [`max_local_ttl`](RedisConfig::max_local_ttl)).
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How values are encoded on disk and in Redis (default [`Postcard`]; see
    /// [`Json`](crate::Json) and [`Lz4`](crate::Lz4)).
    pub fn codec(mut self, codec: impl Codec<V>) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// Opens the tiers; with Redis, connects and starts listening for invalidations.
    ///
    /// # Errors
    /// [`Error::Redis`](crate::Error::Redis) for a bad URL or an unreachable Cluster;
    /// [`Error::Local`](crate::Error::Local) for a bad memory tier capacity.
    pub async fn build(self) -> Result<TieredCache<K, V>> {
        let memory = match self.memory {
            Some(capacity) => Some(
                Cache::builder()
                    .max_capacity(capacity)
                    .expire_after(|_, s: &Stamped<V>| {
                        s.expires_at
                            .map(|at| Duration::from_millis(at.saturating_sub(now_ms()).max(1)))
                    })
                    .build()?,
            ),
            None => None,
        };
        let local = Arc::new(Local {
            memory,
            disk: self.disk,
        });
        let origin = u128::from(
            std::hash::RandomState::new().hash_one((std::process::id(), Instant::now())),
        ) << 64
            | u128::from(std::hash::RandomState::new().hash_one(now_ms()));
        let subscription = Arc::new(Subscription::default());
        let (redis, subscriber) = match &self.redis {
            Some(config) => {
                let redis = RedisTier::connect(config.clone()).await?;
                let task =
                    listen(&redis, config, origin, local.clone(), subscription.clone()).await;
                (Some(redis), Some(task))
            }
            None => (None, None),
        };
        Ok(TieredCache {
            inner: Arc::new(Inner {
                codec: self.codec,
                ttl: self.ttl,
                local,
                redis,
                origin,
                subscription,
                subscriber,
                flights: Mutex::new(HashMap::new()),
            }),
            _types: PhantomData,
        })
    }
}
