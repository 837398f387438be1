//! The data: Strata's memory tier in front of its disk tier, with Redis's semantics on top.
//!
//! Every write goes to the disk tier first (when there is one), then to memory: the disk holds
//! every key, memory holds the hot ones (bounded by `maxmemory`, W-TinyLFU). A read that misses
//! memory reads the disk and promotes the entry. Writes to one key serialize on a striped lock,
//! so the two tiers never disagree; commands that touch several keys at once (and `EXEC`) take
//! the keyspace's write lock, the others its read lock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use strata::{Cache, DiskStore, InsertOptions, Tag};

use crate::compact::CompactBytes;

use crate::state::{StripedCounter, stripe};

/// Per-entry memory beyond the key's and value's bytes: the slot (key and value headers,
/// links, weight), the hash table and the sketch.
const ENTRY_OVERHEAD: usize = 96;
const STRIPES: usize = 256;

/// A stored value: 40 bytes, with short values inline.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: CompactBytes,
    /// Unix milliseconds.
    expires: Option<NonZeroU64>,
    tags: Option<Arc<Vec<Tag>>>,
}

impl Entry {
    pub(crate) fn new(value: &[u8]) -> Self {
        Self {
            value: CompactBytes::new(value),
            expires: None,
            tags: None,
        }
    }

    /// Unix milliseconds after which the entry is gone.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        self.expires.map(NonZeroU64::get)
    }

    #[must_use]
    pub(crate) fn with_expiry(mut self, at: Option<u64>) -> Self {
        self.expires = at.and_then(NonZeroU64::new);
        self
    }

    /// The same entry (expiry, tags) with another value.
    #[must_use]
    pub(crate) fn with_value(mut self, value: &[u8]) -> Self {
        self.value = CompactBytes::new(value);
        self
    }

    pub(crate) fn tags(&self) -> &[Tag] {
        self.tags.as_deref().map_or(&[], Vec::as_slice)
    }

    #[must_use]
    pub(crate) fn with_tags(mut self, tags: Vec<Tag>) -> Self {
        self.tags = (!tags.is_empty()).then(|| Arc::new(tags));
        self
    }

    /// The value, for a reply.
    pub(crate) fn value_bytes(&self) -> Bytes {
        self.value.to_bytes()
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|at| at <= now)
    }

    /// [`expired`](Self::expired), reading the clock only for an entry that can expire.
    fn expired_now(&self) -> bool {
        self.expires_at().is_some_and(|at| at <= now_ms())
    }

    /// Disk encoding: expiry (u64, 0 for none), tag count (u16), tags (u16 length + bytes),
    /// value.
    fn encode(&self) -> Vec<u8> {
        let tags = self.tags();
        let tags_len: usize = tags.iter().map(|t| 2 + t.len()).sum();
        let mut out = Vec::with_capacity(10 + tags_len + self.value.len());
        out.extend_from_slice(&self.expires_at().unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&(tags.len() as u16).to_le_bytes());
        for tag in tags {
            out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
            out.extend_from_slice(tag.as_bytes());
        }
        out.extend_from_slice(&self.value);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let expires_at = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let count = u16::from_le_bytes(bytes.get(8..10)?.try_into().ok()?);
        let mut at = 10;
        let mut tags = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = usize::from(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
            tags.push(Tag::from(
                std::str::from_utf8(bytes.get(at + 2..at + 2 + len)?).ok()?,
            ));
            at += 2 + len;
        }
        Some(
            Self::new(&bytes[at..])
                .with_expiry(Some(expires_at))
                .with_tags(tags),
        )
    }

    fn options(&self, now: u64) -> InsertOptions {
        let mut options = InsertOptions::new().tags(self.tags().iter().cloned());
        if let Some(at) = self.expires_at() {
            options = options.ttl(Duration::from_millis(at.saturating_sub(now).max(1)));
        }
        options
    }
}

/// Wall-clock unix milliseconds (expiry times are absolute, as in Redis).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("disk tier: {0}")]
    Disk(#[from] strata::Error),
}

/// Counters Redis reports in `INFO stats`.
#[derive(Debug, Default)]
pub(crate) struct KeyspaceStats {
    pub(crate) hits: StripedCounter,
    pub(crate) misses: StripedCounter,
    pub(crate) disk_errors: AtomicU64,
}

/// A reader-writer lock whose readers spread over 16 cache-padded locks by thread, so
/// single-key commands on different threads do not bounce one lock's cache line; a writer
/// takes all 16 in order.
struct StripedRwLock(Box<[crossbeam_utils::CachePadded<RwLock<()>>]>);

impl StripedRwLock {
    fn new() -> Self {
        Self(
            (0..16)
                .map(|_| crossbeam_utils::CachePadded::new(RwLock::new(())))
                .collect(),
        )
    }
}

/// Shared access to the keyspace (see [`Keyspace::shared`]).
pub(crate) struct SharedGuard<'a>(
    #[expect(dead_code, reason = "held for its Drop")] RwLockReadGuard<'a, ()>,
);

/// Exclusive access to the keyspace (see [`Keyspace::exclusive`]).
pub(crate) struct ExclusiveGuard<'a>(
    #[expect(dead_code, reason = "held for its Drop")] Vec<RwLockWriteGuard<'a, ()>>,
);

/// Clients watching keys (`WATCH`): a write to a watched key marks them.
#[derive(Default)]
struct Watches {
    count: AtomicUsize,
    map: Mutex<HashMap<Bytes, Vec<Arc<AtomicBool>>>>,
}

pub(crate) struct Keyspace {
    memory: Cache<CompactBytes, Entry>,
    hasher: std::hash::RandomState,
    disk: Option<DiskStore>,
    stripes: Box<[Mutex<()>]>,
    global: StripedRwLock,
    watches: Watches,
    pub(crate) stats: KeyspaceStats,
}

/// A key locked for a read-modify-write.
pub(crate) struct KeyGuard<'a> {
    ks: &'a Keyspace,
    key: Bytes,
    _stripe: MutexGuard<'a, ()>,
}

impl Keyspace {
    /// A keyspace with `maxmemory` bytes of memory tier in front of `disk` (if any).
    pub(crate) fn new(maxmemory: u64, disk: Option<DiskStore>) -> Result<Self, strata::Error> {
        let memory = Cache::builder()
            .max_capacity(maxmemory)
            .weigher(|k: &CompactBytes, e: &Entry| {
                u32::try_from(k.len() + e.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(|_, e: &Entry| {
                e.expires_at()
                    .map(|at| Duration::from_millis(at.saturating_sub(now_ms()).max(1)))
            })
            .build()?;
        Ok(Self {
            memory,
            hasher: std::hash::RandomState::new(),
            disk,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            global: StripedRwLock::new(),
            watches: Watches::default(),
            stats: KeyspaceStats::default(),
        })
    }

    /// Shared access, for a command on one key.
    pub(crate) fn shared(&self) -> SharedGuard<'_> {
        SharedGuard(self.global.0[stripe() % self.global.0.len()].read())
    }

    /// Exclusive access, for a command on several keys or a transaction.
    pub(crate) fn exclusive(&self) -> ExclusiveGuard<'_> {
        ExclusiveGuard(self.global.0.iter().map(|lock| lock.write()).collect())
    }

    pub(crate) fn lock(&self, key: &Bytes) -> KeyGuard<'_> {
        let stripe = (self.hasher.hash_one(key) as usize) % STRIPES;
        KeyGuard {
            ks: self,
            key: key.clone(),
            _stripe: self.stripes[stripe].lock(),
        }
    }

    /// The live entry for `key`, counted as a keyspace hit or miss.
    pub(crate) fn lookup(&self, key: &Bytes) -> Option<Entry> {
        let found = self.peek(key);
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.add(1);
        found
    }

    /// The live entry for `key`, not counted.
    pub(crate) fn peek(&self, key: &Bytes) -> Option<Entry> {
        if let Some(entry) = self.memory.get(&key[..]).filter(|e| !e.expired_now()) {
            return Some(entry);
        }
        self.disk.as_ref()?;
        self.lock(key).get()
    }

    /// Every live key (memory and disk). O(keys).
    pub(crate) fn keys(&self) -> Vec<Bytes> {
        let now = now_ms();
        let mut keys: Vec<Bytes> = self
            .memory
            .iter()
            .filter(|(_, e)| !e.expired(now))
            .map(|(k, _)| k.to_bytes())
            .collect();
        if let Some(disk) = &self.disk {
            match disk.keys() {
                Ok(on_disk) => keys.extend(on_disk.into_iter().map(Bytes::from)),
                Err(e) => self.disk_error(&e),
            }
            keys.sort_unstable();
            keys.dedup();
        }
        keys
    }

    /// The number of keys: the disk tier's count when there is one (it holds every key;
    /// expired keys count until reclaimed), else memory's.
    pub(crate) fn len(&self) -> usize {
        match &self.disk {
            Some(disk) => disk.len(),
            None => self.memory.len(),
        }
    }

    /// Removes every key.
    pub(crate) fn clear(&self) -> Result<(), WriteError> {
        self.memory.invalidate_all();
        self.touch_all();
        if let Some(disk) = &self.disk {
            disk.invalidate_all()?;
        }
        Ok(())
    }

    /// Removes every key carrying `tag`; how many (counted in the tier that holds them all).
    pub(crate) fn invalidate_tag(&self, tag: &str) -> Result<usize, WriteError> {
        let in_memory = self.memory.invalidate_tag(tag);
        self.touch_all();
        match &self.disk {
            Some(disk) => Ok(disk.invalidate_tag(tag)?),
            None => Ok(in_memory),
        }
    }

    pub(crate) fn memory(&self) -> &Cache<CompactBytes, Entry> {
        &self.memory
    }

    pub(crate) fn disk(&self) -> Option<&DiskStore> {
        self.disk.as_ref()
    }

    /// Syncs the disk tier (shutdown).
    pub(crate) fn flush(&self) -> Result<(), strata::Error> {
        self.disk.as_ref().map_or(Ok(()), DiskStore::flush)
    }

    fn disk_error(&self, error: &strata::Error) {
        let n = self.stats.disk_errors.fetch_add(1, Ordering::Relaxed);
        // Logged at most once per 1000 errors: a failing disk must not flood the log.
        if n.is_multiple_of(1000) {
            tracing::warn!(%error, errors = n + 1, "disk tier error; serving from memory");
        }
    }

    /// Registers `flag` to be set when `key` is written.
    pub(crate) fn watch(&self, key: Bytes, flag: Arc<AtomicBool>) {
        let mut map = self.watches.map.lock();
        map.entry(key).or_default().push(flag);
        self.watches.count.fetch_add(1, Ordering::Release);
    }

    /// Drops every registration of `flag`.
    pub(crate) fn unwatch(&self, keys: &[Bytes], flag: &Arc<AtomicBool>) {
        let mut map = self.watches.map.lock();
        for key in keys {
            if let Some(flags) = map.get_mut(key) {
                let before = flags.len();
                flags.retain(|f| !Arc::ptr_eq(f, flag));
                self.watches
                    .count
                    .fetch_sub(before - flags.len(), Ordering::Release);
                if flags.is_empty() {
                    map.remove(key);
                }
            }
        }
    }

    fn touch(&self, key: &Bytes) {
        if self.watches.count.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some(flags) = self.watches.map.lock().get(key) {
            for flag in flags {
                flag.store(true, Ordering::Release);
            }
        }
    }

    fn touch_all(&self) {
        if self.watches.count.load(Ordering::Acquire) == 0 {
            return;
        }
        for flags in self.watches.map.lock().values() {
            for flag in flags {
                flag.store(true, Ordering::Release);
            }
        }
    }
}

impl KeyGuard<'_> {
    /// The live entry (promoting it from disk into memory), not counted.
    pub(crate) fn get(&self) -> Option<Entry> {
        let now = now_ms();
        // Not counted: the caller's lookup (if any) counted its miss already.
        if let Some(entry) = self
            .ks
            .memory
            .peek(&self.key[..])
            .filter(|e| !e.expired(now))
        {
            return Some(entry);
        }
        let disk = self.ks.disk.as_ref()?;
        let bytes = match disk.get(&self.key) {
            Ok(found) => found?,
            Err(e) => {
                self.ks.disk_error(&e);
                return None;
            }
        };
        let entry = Entry::decode(&bytes).filter(|e| !e.expired(now))?;
        let key = CompactBytes::new(&self.key);
        self.ks
            .memory
            .insert_with(key, entry.clone(), &entry.options(now));
        Some(entry)
    }

    /// Stores `entry`: disk first, so a failed disk write changes nothing.
    pub(crate) fn set(&self, entry: Entry) -> Result<(), WriteError> {
        let now = now_ms();
        if entry.expired(now) {
            self.remove()?;
            return Ok(());
        }
        let options = entry.options(now);
        if let Some(disk) = &self.ks.disk {
            disk.insert_with(&self.key, &entry.encode(), &options)?;
        }
        // The key is copied out of the request (whose bytes share the connection's read
        // buffer); the value was, when the entry was made.
        self.ks
            .memory
            .insert_with(CompactBytes::new(&self.key), entry, &options);
        self.ks.touch(&self.key);
        Ok(())
    }

    /// Removes the key; true if it held a live entry.
    pub(crate) fn remove(&self) -> Result<bool, WriteError> {
        // Whether it existed, without promoting it from disk only to remove it.
        let now = now_ms();
        let existed = self
            .ks
            .memory
            .peek(&self.key[..])
            .is_some_and(|e| !e.expired(now))
            || self
                .ks
                .disk
                .as_ref()
                .is_some_and(|d| d.contains_key(&self.key));
        if let Some(disk) = &self.ks.disk {
            disk.remove(&self.key)?;
        }
        self.ks.memory.remove(&self.key[..]);
        if existed {
            self.ks.touch(&self.key);
        }
        Ok(existed)
    }
}
