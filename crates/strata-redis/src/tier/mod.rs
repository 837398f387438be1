//! The Redis tier: Strata's keys in a shared Redis (standalone or Cluster).
//!
//! Every command touches the keys of one slot, so everything works in a Cluster without hash
//! tags on the data keys: a tag set `{prefix}:t:{tag}` lists the keys carrying the tag, and
//! invalidating the tag deletes them with a script call per slot (pipelined; the cluster
//! client routes each to its slot's node). A key's lease goes with the key: the lease key
//! carries a hash tag chosen to land in the key's slot, so that a write, a lease holder's
//! fill and a tag's invalidation touch both at once.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{AsyncCommands, Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, Value};

use crate::config::RedisConfig;
use crate::error::{Error, Result};
use crate::stats::{Counters, TierStats};

mod conn;
mod scripts;

use conn::{ClusterPool, Conn};
use scripts::{
    INVALIDATE_TAG, KEYS_PER_INVALIDATION, TAG, fill_script, hash_tag, hex, invalidate_tag_script,
    release_script, script_cmd, slot_of, slot_tags, tag_script,
};

/// A lease on a missing key ([`RedisTier::try_lease`]): while held, other processes wait
/// for this one's value. Its holder lists the key under its tags ([`RedisTier::tag_ahead`]),
/// computes, stores the value with [`RedisTier::fill`] (which a write of the key since the
/// lease was taken refuses), and gives the lease back with [`RedisTier::release`].
#[derive(Debug, Clone)]
pub struct Lease {
    key: Vec<u8>,
    token: String,
}

/// Strata's keys in a shared Redis.
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    config: RedisConfig,
    /// RESP3 pushes (invalidations, disconnections) of the standalone connection, for the
    /// tiered cache's tracker to take.
    pushes: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>>>,
    counters: Counters,
    last_error_log: Mutex<Option<Instant>>,
}

impl RedisTier {
    /// Connects. A standalone connection is lazy: it is made (and remade after a failure)
    /// in the background, so this succeeds even while Redis is down. A Cluster connection
    /// needs the cluster up to learn its slots.
    ///
    /// # Errors
    /// [`Error::Redis`] for a malformed URL or an unreachable Cluster;
    /// [`Error::Config`] for a prefix with a `{` and no hash tag
    /// (`{…}`) after it.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        if config.prefix.contains('{') && hash_tag(config.prefix.as_bytes()).is_none() {
            // The first `{` of every key would be the prefix's, and where a key lands would
            // depend on a `}` in the key: leases could not follow their keys.
            return Err(Error::Config(format!(
                "the prefix {:?} opens a hash tag it does not close",
                config.prefix
            )));
        }
        let mut pushes = None;
        let conn = if config.cluster {
            let client = ClusterClientBuilder::new(config.urls.clone())
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                .retries(1)
                .build()?;
            let connections = futures_util::future::try_join_all(
                (0..config.cluster_connections.max(1)).map(|_| client.get_async_connection()),
            )
            .await?;
            Conn::Cluster(Arc::new(ClusterPool {
                connections,
                next: AtomicUsize::new(0),
            }))
        } else {
            let url = config.urls.first().cloned().unwrap_or_default();
            let mut info = redis::IntoConnectionInfo::into_connection_info(url.as_str())?;
            let mut manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.timeout))
                .set_response_timeout(Some(config.timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            if config.tracking {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(redis::ProtocolVersion::RESP3);
                info = info.set_redis_settings(settings);
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                manager_config = manager_config.set_push_sender(tx);
                pushes = Some(rx);
            }
            let client = redis::Client::open(info)?;
            Conn::Single(ConnectionManager::new_lazy_with_config(
                client,
                manager_config,
            )?)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                config,
                counters: Counters::default(),
                last_error_log: Mutex::new(None),
                pushes: Mutex::new(pushes),
            }),
        })
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The Redis key of a Strata key.
    pub(crate) fn data_key(&self, key: &[u8]) -> Vec<u8> {
        let prefix = &self.inner.config.prefix;
        let mut out = Vec::with_capacity(prefix.len() + 3 + key.len());
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(b":k:");
        out.extend_from_slice(key);
        out
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}:t:{tag}", self.inner.config.prefix)
    }

    /// The key of `key`'s lease, in its data key's Cluster slot: `{prefix}:l:{tag}{key}`,
    /// where `tag` hashes to that slot; `{prefix}:l:{key}` if the prefix has a hash tag of
    /// its own, which then places both.
    fn lease_key(&self, key: &[u8]) -> Vec<u8> {
        let prefix = &self.inner.config.prefix;
        let mut out = format!("{prefix}:l:").into_bytes();
        if !prefix.contains('{') {
            let n = slot_tags()[slot_of(&self.data_key(key))];
            out.push(b'{');
            out.extend_from_slice(hex(n, &mut [0; 8]));
            out.push(b'}');
        }
        out.extend_from_slice(key);
        out
    }

    /// The pub/sub channel for invalidations.
    pub(crate) fn channel(&self) -> String {
        format!("{}:invalidations", self.inner.config.prefix)
    }

    /// Counts, times and (in lenient mode) absorbs a failure into `fallback`.
    async fn run<T>(&self, fallback: T, op: impl Future<Output = RedisResult<T>>) -> Result<T> {
        let start = Instant::now();
        let result = op.await;
        self.inner.counters.time(start.elapsed());
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.note_error(&e);
                if self.inner.config.strict {
                    Err(e.into())
                } else {
                    Ok(fallback)
                }
            }
        }
    }

    /// Counts an error, and logs it unless one was logged within the interval.
    pub(crate) fn note_error(&self, error: &redis::RedisError) {
        self.inner
            .counters
            .errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut last = self.inner.last_error_log.lock();
        if last.is_none_or(|t| t.elapsed() >= self.inner.config.error_log_interval) {
            *last = Some(Instant::now());
            tracing::warn!(%error, "redis tier unavailable; serving from the local tiers");
        }
    }

    /// The value and remaining TTL of `key`, or `None` (also when Redis is down, unless
    /// strict).
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn get(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Option<Duration>)>> {
        let data_key = self.data_key(key);
        let mut pipe = redis::pipe();
        pipe.get(&data_key).cmd("PTTL").arg(&data_key);
        let found: Option<(Option<Vec<u8>>, i64)> = self
            .run(None, async { self.inner.conn.pipe(&pipe).await.map(Some) })
            .await?;
        let found = found.and_then(|(value, pttl)| {
            let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
            value.map(|v| (v, ttl))
        });
        self.inner.counters.lookup(found.is_some());
        Ok(found)
    }

    /// Stores `value` under `key` (`SET … PX ttl`), and adds the key to its tags' sets. A
    /// load of the key under way in any process loses its lease first, so its value, computed
    /// before this write, will not overwrite it (see [`fill`](Self::fill)).
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn insert(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
        tags: &[strata::Tag],
    ) -> Result<()> {
        let data_key = self.data_key(key);
        let lease_key = self.lease_key(key);
        let ttl_ms = millis(ttl);
        self.run(
            (),
            self.by_sha_else_whole(|by_sha| {
                let mut set = redis::cmd("SET");
                set.arg(&data_key).arg(value);
                if ttl_ms > 0 {
                    set.arg("PX").arg(ttl_ms);
                }
                let ordered = vec![redis::cmd("DEL").arg(&lease_key).clone(), set];
                let tagging = self.tag_commands(&data_key, ttl_ms, tags, by_sha);
                self.inner.conn.write(ordered, tagging)
            }),
        )
        .await
    }

    /// Lists `key` in its tags' sets ahead of its value, for a lease holder about to compute
    /// it: an invalidation of one of the tags from then on deletes the key's lease too, and the
    /// value computed will not be stored (see [`fill`](Self::fill)). `ttl` is the value's.
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn tag_ahead(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        tags: &[strata::Tag],
    ) -> Result<()> {
        let data_key = self.data_key(key);
        let ttl_ms = millis(ttl);
        self.run(
            (),
            self.by_sha_else_whole(|by_sha| {
                let tagging = self.tag_commands(&data_key, ttl_ms, tags, by_sha);
                self.inner.conn.write(Vec::new(), tagging)
            }),
        )
        .await
    }

    /// The commands that add `data_key` (expiring in `ttl_ms`, 0 for never) to its tags'
    /// sets: the tag script by its SHA1, or whole for a server that lacks it.
    fn tag_commands(
        &self,
        data_key: &[u8],
        ttl_ms: u64,
        tags: &[strata::Tag],
        by_sha: bool,
    ) -> Vec<Cmd> {
        tags.iter()
            .map(|tag| {
                let mut cmd = script_cmd(tag_script(), TAG, by_sha);
                cmd.arg(1).arg(self.tag_key(tag)).arg(data_key).arg(ttl_ms);
                cmd
            })
            .collect()
    }

    /// Sends a batch with its scripts by their SHA1 (`send(true)`, see [`script_cmd`]). A
    /// server that lacks a script (restarted, or `SCRIPT FLUSH`ed) answers `NOSCRIPT`; the
    /// batch then goes again with the scripts whole (`send(false)`), which loads them there.
    /// A batch sent so must be idempotent.
    async fn by_sha_else_whole<T, F>(&self, send: impl Fn(bool) -> F) -> RedisResult<T>
    where
        F: Future<Output = RedisResult<T>>,
    {
        match send(true).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => send(false).await,
            done => done,
        }
    }

    /// Removes `key`; true if it existed. A load of the key under way in any process loses
    /// its lease first, as in [`insert`](Self::insert).
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn remove(&self, key: &[u8]) -> Result<bool> {
        let mut pipe = redis::pipe();
        pipe.del(self.lease_key(key))
            .ignore()
            .del(self.data_key(key));
        let (removed,): (i64,) = self
            .run((0,), async { self.inner.conn.pipe(&pipe).await })
            .await?;
        Ok(removed > 0)
    }

    /// Removes every key carrying `tag`; how many existed.
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<usize> {
        Ok(self.invalidate_tag_keys(tag, false).await?.len())
    }

    /// [`invalidate_tag`](Self::invalidate_tag), returning the keys (as given to
    /// [`insert`](Self::insert)) it deleted. The tag set lists every key written with the
    /// tag since the last invalidation, including keys rewritten without it since: those go
    /// too, and so do the leases of keys listed ahead of a load ([`tag_ahead`](Self::tag_ahead)).
    /// Only the members it read leave the set: a key tagged meanwhile stays listed.
    ///
    /// With `values_carry_tags` (the tiered cache's values, [`strata::encode_tagged`]), a key
    /// whose value no longer carries the tag is kept instead: it was rewritten without it.
    pub(crate) async fn invalidate_tag_keys(
        &self,
        tag: &str,
        values_carry_tags: bool,
    ) -> Result<Vec<Vec<u8>>> {
        let tag_key = self.tag_key(tag);
        let members: Vec<Vec<u8>> = self
            .run(Vec::new(), async {
                self.inner
                    .conn
                    .cmd(redis::cmd("SMEMBERS").arg(&tag_key))
                    .await
            })
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = self.data_prefix();
        let keys: Vec<&[u8]> = members
            .iter()
            .filter_map(|member| member.strip_prefix(prefix.as_slice()))
            .collect();
        // Each key with its lease: a load of the key under way, which listed it ahead
        // (`tag_ahead`), must not store what it computed before this invalidation. One script
        // call per slot (any keys, on one server) and chunk; one pipeline (a Cluster:
        // concurrent calls). The script by its SHA1, whole to a server that lacks it (a key
        // the first attempt deleted then reads as kept, and leaves other processes' local
        // tiers by its tag alone).
        let mut groups: HashMap<Option<usize>, Vec<&[u8]>> = HashMap::new();
        for &key in &keys {
            let slot =
                matches!(self.inner.conn, Conn::Cluster(_)).then(|| slot_of(&self.data_key(key)));
            groups.entry(slot).or_default().push(key);
        }
        let groups: Vec<&[&[u8]]> = groups
            .values()
            .flat_map(|keys| keys.chunks(KEYS_PER_INVALIDATION))
            .collect();
        let batch = |by_sha: bool| {
            let mut cmds: Vec<Cmd> = groups
                .iter()
                .map(|group| {
                    let mut cmd = script_cmd(invalidate_tag_script(), INVALIDATE_TAG, by_sha);
                    cmd.arg(2 * group.len());
                    for key in *group {
                        cmd.arg(self.data_key(key)).arg(self.lease_key(key));
                    }
                    cmd.arg(tag).arg(if values_carry_tags { "1" } else { "0" });
                    cmd
                })
                .collect();
            cmds.push(redis::cmd("SREM").arg(&tag_key).arg(&members).clone());
            cmds
        };
        let replies = self
            .run(
                Vec::new(),
                self.by_sha_else_whole(|by_sha| self.inner.conn.many(batch(by_sha))),
            )
            .await?;
        let mut deleted = Vec::new();
        for (group, reply) in groups.iter().zip(&replies) {
            let counts: Vec<i64> =
                FromRedisValue::from_redis_value(reply.clone()).map_err(redis::RedisError::from)?;
            deleted.extend(
                group
                    .iter()
                    .zip(counts)
                    .filter(|&(_, n)| n > 0)
                    .map(|(key, _)| key.to_vec()),
            );
        }
        Ok(deleted)
    }

    /// Removes every key under this tier's prefix (data, tag sets, leases) and nothing else.
    /// It walks the keys (`SCAN`, or `KEYS` on each Cluster primary), so it costs
    /// O(keys under the prefix).
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn invalidate_all(&self) -> Result<()> {
        let pattern = format!("{}:*", glob_escape(&self.inner.config.prefix));
        let keys: Vec<Vec<u8>> = self
            .run(Vec::new(), async {
                match &self.inner.conn {
                    Conn::Single(c) => {
                        let mut c = c.clone();
                        let mut keys = Vec::new();
                        let mut cursor: u64 = 0;
                        loop {
                            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(&pattern)
                                .arg("COUNT")
                                .arg(1000)
                                .query_async(&mut c)
                                .await?;
                            keys.extend(batch);
                            if next == 0 {
                                return Ok::<_, redis::RedisError>(keys);
                            }
                            cursor = next;
                        }
                    }
                    Conn::Cluster(pool) => {
                        let routing = RoutingInfo::MultiNode((
                            MultipleNodeRoutingInfo::AllMasters,
                            Some(ResponsePolicy::CombineArrays),
                        ));
                        let value = pool
                            .pick()
                            .route_command(redis::cmd("KEYS").arg(&pattern).clone(), routing)
                            .await?;
                        Ok(Vec::<Vec<u8>>::from_redis_value(value)?)
                    }
                }
            })
            .await?;
        for chunk in keys.chunks(500) {
            let cmds = chunk
                .iter()
                .map(|k| redis::cmd("DEL").arg(k).clone())
                .collect();
            self.run((), async { self.inner.conn.many(cmds).await.map(drop) })
                .await?;
        }
        Ok(())
    }

    /// Tries to take the lease on `key` for `lease_ttl`.
    ///
    /// # Errors
    /// A Redis failure (always: the caller decides what an unreachable Redis means).
    pub async fn try_lease(&self, key: &[u8]) -> RedisResult<Option<Lease>> {
        let token = format!(
            "{:032x}",
            RandomState::new().hash_one(Instant::now()) as u128
                ^ (std::process::id() as u128) << 64
        );
        let lease_key = self.lease_key(key);
        let got: Option<String> = self
            .inner
            .conn
            .cmd(
                redis::cmd("SET")
                    .arg(&lease_key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.inner.config.lease_ttl.as_millis() as u64),
            )
            .await?;
        Ok(got.map(|_| Lease {
            key: key.to_vec(),
            token,
        }))
    }

    /// Whether someone holds the lease on `key`.
    ///
    /// # Errors
    /// A Redis failure.
    pub async fn leased(&self, key: &[u8]) -> RedisResult<bool> {
        self.inner
            .conn
            .cmd(redis::cmd("EXISTS").arg(self.lease_key(key)))
            .await
    }

    /// Releases a lease (only if it is still ours).
    pub async fn release(&self, lease: Lease) {
        let mut invocation = release_script().key(self.lease_key(&lease.key));
        invocation.arg(&lease.token);
        let result: RedisResult<i64> = self.inner.conn.invoke(&invocation).await;
        if let Err(e) = result {
            self.note_error(&e);
        }
    }

    /// Stores the value `lease`'s holder computed (`SET … PX ttl`) and ends the lease, only if
    /// the lease is still the holder's: false if a write or removal of the key came since it
    /// was taken (or it expired, and the load may have been overtaken), and the value must not
    /// be kept anywhere. A value computed from a source read before another process's write
    /// would otherwise overwrite that write, or bring back what it removed, until its TTL.
    /// True also when Redis fails in lenient mode: the local tiers keep the value, as for
    /// [`insert`](Self::insert).
    ///
    /// # Errors
    /// In strict mode, a Redis failure.
    pub async fn fill(&self, lease: &Lease, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let ttl_ms = millis(ttl);
        let mut invocation = fill_script().key(self.lease_key(&lease.key));
        invocation
            .key(self.data_key(&lease.key))
            .arg(&lease.token)
            .arg(value)
            .arg(ttl_ms);
        let filled: i64 = self.run(1, self.inner.conn.invoke(&invocation)).await?;
        Ok(filled == 1)
    }

    /// The RESP3 push stream (once), if this tier asked for one.
    pub(crate) fn take_pushes(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>> {
        self.inner.pushes.lock().take()
    }

    /// The prefix of data keys, as tracking reports them.
    pub(crate) fn data_prefix(&self) -> Vec<u8> {
        self.data_key(b"")
    }

    /// The prefix of the Redis keys holding values (`{prefix}:k:`), for tests and tools that
    /// look at Redis directly.
    #[doc(hidden)]
    pub fn data_prefix_for_tests(&self) -> Vec<u8> {
        self.data_prefix()
    }

    /// Turns on broadcast tracking of this tier's data keys on its (standalone) connection:
    /// Redis then pushes an invalidation for every change to them, except those made through
    /// this connection (`NOLOOP`). Must be redone after every reconnect.
    ///
    /// # Errors
    /// A Redis failure, or a Cluster (not supported here).
    pub(crate) async fn enable_tracking(&self) -> RedisResult<()> {
        let Conn::Single(c) = &self.inner.conn else {
            return Err((
                redis::ErrorKind::Client,
                "tracking is used with a standalone server",
            )
                .into());
        };
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(self.data_prefix())
            .arg("NOLOOP")
            .query_async::<()>(&mut c.clone())
            .await
    }

    /// Publishes an invalidation message.
    pub(crate) async fn publish(&self, message: Vec<u8>) {
        let channel = self.channel();
        let result: RedisResult<Value> = match &self.inner.conn {
            Conn::Single(c) => c.clone().publish(&channel, message).await,
            Conn::Cluster(pool) => pool.pick().publish(&channel, message).await,
        };
        if let Err(e) = result {
            self.note_error(&e);
        }
    }

    /// Counters since connecting.
    pub fn stats(&self) -> TierStats {
        self.inner.counters.snapshot()
    }
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.inner.config.prefix)
            .field("cluster", &self.inner.config.cluster)
            .finish()
    }
}

/// A TTL in whole milliseconds (at least 1), as `PX` takes it; 0 for none.
fn millis(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| {
        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

/// Escapes glob characters so a prefix matches literally.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::scripts::SLOTS;
    use super::*;

    /// A tier for looking at key names; its standalone connection is lazy, so no server.
    async fn tier(prefix: &str) -> Result<RedisTier> {
        RedisTier::connect(RedisConfig::standalone("redis://127.0.0.1:1").prefix(prefix)).await
    }

    #[tokio::test]
    async fn a_lease_lands_in_its_keys_cluster_slot() {
        for prefix in ["strata", "a}b", "{app}", "x{app}y"] {
            let tier = tier(prefix).await.unwrap();
            // Keys with braces of their own, which could otherwise pick the slot.
            let keys = (0..2000_u32).map(|i| match i % 4 {
                0 => i.to_le_bytes().to_vec(),
                1 => format!("{{user{i}}}:row").into_bytes(),
                2 => format!("}}{i}{{").into_bytes(),
                _ => format!("{{}}{i}").into_bytes(),
            });
            for key in keys {
                assert_eq!(
                    Slot::for_key(tier.lease_key(&key)),
                    Slot::for_key(tier.data_key(&key)),
                    "prefix {prefix:?}, key {key:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_prefix_with_an_unclosed_hash_tag_is_refused() {
        for prefix in ["a{b", "{}", "x{"] {
            assert!(
                matches!(tier(prefix).await, Err(Error::Config(_))),
                "{prefix:?}"
            );
        }
    }

    /// Checked against the Redis client's own slot function.
    #[test]
    fn every_slot_has_a_tag() {
        let tags = slot_tags();
        assert_eq!(tags.len(), SLOTS);
        for (slot, n) in tags.iter().enumerate() {
            let want = Slot::new(u16::try_from(slot).unwrap());
            assert_eq!(Some(Slot::for_key(format!("{{{n:x}}}anything"))), want);
        }
        for n in [0, 1, 0xf, 0x10, 0xabc, 0x2_9a00, u32::MAX] {
            assert_eq!(hex(n, &mut [0; 8]), format!("{n:x}").as_bytes());
        }
    }
}
