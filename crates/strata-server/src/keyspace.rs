//! The data: Strata's memory tier in front of its disk tier, with Redis's semantics on top.
//!
//! A write goes to the disk tier's log first (when there is one), then to memory, or is
//! written behind (below). Memory holds the hot keys (bounded by `maxmemory`, W-TinyLFU); the
//! disk tier's index holds the others, so each key has one index entry, not two. A memory
//! entry remembers where its record is; when memory evicts it, the disk tier indexes that
//! record (a *handoff*), and a read that misses memory takes the entry out of the disk index
//! back into memory.
//!
//! **Writing behind.** Unless every write must be synced (`--fsync always`), a SET does not
//! write the disk tier at once: the entry goes to memory without a record place, and its key
//! onto its stripe's *unwritten* list, unless the entry it replaced was unwritten too (then
//! the key is listed already; the memory tier's synchronous listener tells, as it sees the
//! old entry leave). A key memory did not hold leaves the disk tier's index, as a written
//! SET's record would make it. Every memory entry without a record place is listed. Once per
//! sync interval a pass writes each listed key's current entry, gives the memory entry its
//! record place, and syncs the log. A key set ten times in a second is written once. An entry
//! memory evicts before the pass is written by its handoff (which writes any entry without a
//! record place), and a clean shutdown writes all. A crash loses at most the writes of the
//! last interval, as the sync interval alone already allowed. Entries with an expiry or tags,
//! and SETs to a stripe with too many unwritten keys, are written through (see
//! `KeyGuard::set`).
//!
//! Writes to one key serialize on a striped lock. An eviction can happen on any thread, so
//! the memory tier reports it under its own lock (a synchronous listener) into a per-stripe
//! handoff list, which the stripe's next holder hands to the disk: at no moment is a key in
//! neither place. Under the stripe lock, each operation does its memory step, then drains the
//! handoffs, then its disk step. Commands that touch several keys at once (and `EXEC`) take
//! the keyspace's write lock, the others its read lock.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use strata::{Cache, DiskStore, InsertOptions, RecordRef, RemovalCause, Tag};

use crossbeam_utils::CachePadded;

use crate::compact::CompactBytes;

use crate::state::{StripedCounter, stripe};

/// Per-entry memory beyond the key's and value's bytes: the slot (key and value headers,
/// links, weight), the hash table and the sketch.
const ENTRY_OVERHEAD: usize = 96;
const STRIPES: usize = 256;
/// A stripe holding this many unwritten keys writes further SETs through: it bounds the
/// memory the lists take (about 6 MiB for all stripes) and the work of one pass.
const MAX_UNWRITTEN: usize = 1024;

/// How the keyspace writes behind (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteBehind {
    /// How often unwritten keys are written.
    pub(crate) every: Duration,
    /// Sync the disk tier after each pass (`--fsync everysec`).
    pub(crate) sync: bool,
}

/// What a stripe's lock guards: its keys whose latest value memory holds but the disk tier
/// does not yet (see "Writing behind" in the module docs).
#[derive(Default)]
struct Stripe {
    unwritten: RefCell<Vec<CompactBytes>>,
}

/// What a write to memory replaced, as the memory tier's synchronous listener saw it leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaced {
    /// No entry: the disk tier's index may hold the key.
    Nothing,
    /// An entry with a record place.
    Written,
    /// An entry without one: its key is on the unwritten list already.
    Unwritten,
}

thread_local! {
    /// Set by the memory tier's synchronous listener on this thread (see [`Replaced`]).
    static REPLACED: Cell<Replaced> = const { Cell::new(Replaced::Nothing) };
}

/// A stored value: 40 bytes, with values up to 14 bytes inline.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: CompactBytes<14>,
    /// Unix milliseconds.
    expires: Option<NonZeroU64>,
    tags: Option<Arc<Vec<Tag>>>,
    /// Where the disk tier wrote this entry (see the module docs).
    record: Option<RecordRef>,
}

impl Entry {
    pub(crate) fn new(value: &[u8]) -> Self {
        Self {
            value: CompactBytes::new(value),
            expires: None,
            tags: None,
            record: None,
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

    /// Disk encoding: expiry (u64, 0 for none), then the tags and the value as
    /// [`strata::encode_tagged`] writes them.
    fn encode(&self) -> Result<Vec<u8>, strata::Error> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// [`encode`](Self::encode), appending to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), strata::Error> {
        out.extend_from_slice(&self.expires_at().unwrap_or(0).to_le_bytes());
        strata::encode_tagged(self.tags(), &self.value, out)
    }

    fn decode(bytes: &[u8], record: Option<RecordRef>) -> Option<Self> {
        let expires_at = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let (tags, value) = strata::decode_tagged(&bytes[8..])?;
        let mut entry = Self::new(value)
            .with_expiry(Some(expires_at))
            .with_tags(tags);
        entry.record = record;
        Some(entry)
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
    /// Without a disk tier, an entry heavier than `maxmemory` has nowhere to go (Redis refuses
    /// such a write with OOM too).
    #[error("command not allowed: the value is larger than 'maxmemory'")]
    OutOfMemory,
}

/// What an entry weighs in the memory tier: its bytes and the overhead of holding it.
fn entry_weight(key: usize, value: usize) -> u32 {
    u32::try_from(key + value + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

/// Counters Redis reports in `INFO stats`.
#[derive(Debug, Default)]
pub(crate) struct KeyspaceStats {
    pub(crate) hits: StripedCounter,
    pub(crate) misses: StripedCounter,
    pub(crate) disk_errors: AtomicU64,
}

/// Appends `entry`'s record for `key` to the disk log without indexing it
/// ([`DiskStore::insert_owned`]); where it went.
fn write_owned(
    disk: &DiskStore,
    key: &[u8],
    entry: &Entry,
    options: &InsertOptions,
) -> Result<RecordRef, strata::Error> {
    thread_local! {
        /// Scratch for the disk encoding: a pipelined SET should not allocate.
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let record = entry
            .encode_into(scratch)
            .and_then(|()| disk.insert_owned(key, scratch, options));
        scratch.shrink_to(64 << 10);
        record
    })
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

/// An entry memory evicted, for the disk tier to index.
type Handoff = (CompactBytes, Entry);

/// Entries memory evicted, by key stripe, waiting to be handed to the disk tier by the
/// stripe's next holder (see the module docs).
struct Handoffs {
    hasher: foldhash::fast::RandomState,
    lists: Box<[CachePadded<HandoffList>]>,
}

/// One stripe's handoffs. `waiting` lets the common case (none) skip the lock: it is set
/// under the memory tier's lock that evicted the entry, so whoever sees the entry gone sees
/// the flag.
#[derive(Default)]
struct HandoffList {
    waiting: AtomicBool,
    list: Mutex<Vec<Handoff>>,
}

impl Handoffs {
    fn stripe(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) % STRIPES
    }

    fn push(&self, key: &CompactBytes, entry: &Entry) {
        let handoffs = &self.lists[self.stripe(key)];
        handoffs.list.lock().push((key.clone(), entry.clone()));
        handoffs.waiting.store(true, Ordering::Release);
    }

    fn take(&self, stripe: usize) -> Vec<Handoff> {
        let handoffs = &self.lists[stripe];
        if !handoffs.waiting.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut list = handoffs.list.lock();
        handoffs.waiting.store(false, Ordering::Relaxed);
        std::mem::take(&mut *list)
    }
}

pub(crate) struct Keyspace {
    memory: Cache<CompactBytes, Entry>,
    handoffs: Arc<Handoffs>,
    disk: Option<DiskStore>,
    /// `None`: every write goes to disk at once.
    write_behind: Option<WriteBehind>,
    last_pass: Mutex<Instant>,
    stripes: Box<[Mutex<Stripe>]>,
    global: StripedRwLock,
    watches: Watches,
    pub(crate) stats: KeyspaceStats,
}

/// A key locked for a read-modify-write.
pub(crate) struct KeyGuard<'a> {
    ks: &'a Keyspace,
    key: &'a [u8],
    stripe: usize,
    held: MutexGuard<'a, Stripe>,
}

/// The memory tier's shard count: 4 per CPU, fewer than the library's default of 16. With 16,
/// a million small entries cost 4 B more each in used memory and RSS, which put Strata above
/// Redis's memory per key (measured; the cause is not pinned down: the library's own caches,
/// unit or weighted, pay ~0.5 B per entry for it). SETs also took 2–5% more CPU, while GETs
/// gained ~6% (docs/benchmarks.md).
fn memory_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, std::num::NonZeroUsize::get);
    (cpus * 4).next_power_of_two()
}

impl Keyspace {
    /// A keyspace with `maxmemory` bytes of memory tier in front of `disk` (if any), which
    /// is written behind every `write_behind` if given (see the module docs).
    pub(crate) fn new(
        maxmemory: u64,
        disk: Option<DiskStore>,
        write_behind: Option<WriteBehind>,
    ) -> Result<Self, strata::Error> {
        let handoffs = Arc::new(Handoffs {
            hasher: foldhash::fast::RandomState::default(),
            lists: (0..STRIPES).map(|_| CachePadded::default()).collect(),
        });
        let mut memory = Cache::builder();
        if disk.is_some() {
            let sink = handoffs.clone();
            memory =
                memory.synchronous_eviction_listener(move |k: &CompactBytes, e: &Entry, cause| {
                    match cause {
                        RemovalCause::Size => sink.push(k, e),
                        RemovalCause::Replaced => REPLACED.set(if e.record.is_some() {
                            Replaced::Written
                        } else {
                            Replaced::Unwritten
                        }),
                        _ => {}
                    }
                });
        }
        let memory = memory
            .shards(memory_shards())
            .max_capacity(maxmemory)
            .weigher(|k: &CompactBytes, e: &Entry| entry_weight(k.len(), e.value.len()))
            .expire_after(|_, e: &Entry| {
                e.expires_at()
                    .map(|at| Duration::from_millis(at.saturating_sub(now_ms()).max(1)))
            })
            .build()?;
        Ok(Self {
            memory,
            handoffs,
            write_behind: write_behind.filter(|_| disk.is_some()),
            disk,
            last_pass: Mutex::new(Instant::now()),
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
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

    pub(crate) fn lock<'a>(&'a self, key: &'a [u8]) -> KeyGuard<'a> {
        let stripe = self.handoffs.stripe(key);
        KeyGuard {
            ks: self,
            key,
            stripe,
            held: self.stripes[stripe].lock(),
        }
    }

    /// Hands the entries memory evicted from `stripe` to the disk tier; the caller holds the
    /// stripe's lock. Only a key's last handoff counts, and none for a key memory holds again:
    /// a newer value was written since.
    fn drain(&self, stripe: usize) {
        let Some(disk) = &self.disk else { return };
        let list = self.handoffs.take(stripe);
        if list.is_empty() {
            return;
        }
        let now = now_ms();
        for (i, (key, entry)) in list.iter().enumerate() {
            if list[i + 1..].iter().any(|(later, _)| later == key)
                || entry.expired(now)
                || self.memory.contains_key(&key[..])
            {
                continue;
            }
            let adopted = entry
                .encode()
                .and_then(|bytes| disk.adopt(key, &bytes, &entry.options(now), entry.record));
            if let Err(e) = adopted {
                self.disk_error(&e);
            }
        }
    }

    /// [`drain`](Self::drain) for every stripe (taking each stripe's lock).
    fn drain_all(&self) {
        if self.disk.is_none() {
            return;
        }
        for stripe in 0..STRIPES {
            let _held = self.stripes[stripe].lock();
            self.drain(stripe);
        }
    }

    /// The live entry for `key`, counted as a keyspace hit or miss.
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<Entry> {
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
    pub(crate) fn peek(&self, key: &[u8]) -> Option<Entry> {
        if let Some(entry) = self.memory.get(key).filter(|e| !e.expired_now()) {
            return Some(entry);
        }
        self.disk.as_ref()?;
        self.lock(key).get()
    }

    /// Every live key (memory and disk). O(keys).
    pub(crate) fn keys(&self) -> Vec<Bytes> {
        self.drain_all();
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

    /// The number of keys, in memory and on disk (expired keys count until reclaimed).
    pub(crate) fn len(&self) -> usize {
        self.drain_all();
        self.memory.len() + self.disk.as_ref().map_or(0, DiskStore::len)
    }

    /// Removes every key.
    pub(crate) fn clear(&self) -> Result<(), WriteError> {
        self.memory.invalidate_all();
        for stripe in 0..STRIPES {
            self.handoffs.take(stripe);
        }
        self.touch_all();
        if let Some(disk) = &self.disk {
            disk.invalidate_all()?;
        }
        Ok(())
    }

    /// Removes every key carrying `tag`; how many.
    pub(crate) fn invalidate_tag(&self, tag: &str) -> Result<usize, WriteError> {
        let in_memory = self.memory.invalidate_tag(tag);
        self.touch_all();
        self.drain_all();
        match &self.disk {
            Some(disk) => Ok(in_memory + disk.invalidate_tag(tag)?),
            None => Ok(in_memory),
        }
    }

    /// Background upkeep, like Redis's active expiry (`hz 10`): reclaims the memory tier's
    /// expired entries, which writes would otherwise reclaim only as they go by (an idle
    /// server would keep their memory), and hands pending evictions to the disk tier.
    pub(crate) fn maintain(&self) {
        self.memory.run_pending_tasks();
        self.drain_all();
        if let Some(behind) = self.write_behind {
            let mut last = self.last_pass.lock();
            if last.elapsed() >= behind.every {
                *last = Instant::now();
                drop(last);
                self.write_unwritten(behind.sync);
            }
        }
    }

    /// Writes every unwritten key's entry to the disk tier, and syncs it if `sync` (see
    /// "Writing behind" in the module docs). One stripe at a time, under its lock.
    fn write_unwritten(&self, sync: bool) {
        let Some(disk) = &self.disk else { return };
        for stripe in 0..STRIPES {
            let held = self.stripes[stripe].lock();
            let keys = std::mem::take(&mut *held.unwritten.borrow_mut());
            if keys.is_empty() {
                continue;
            }
            // An evicted entry waiting in the handoffs is written by its handoff.
            self.drain(stripe);
            let now = now_ms();
            for key in keys {
                let Some(entry) = self.memory.peek(&key[..]) else {
                    continue;
                };
                if entry.record.is_some() || entry.expired(now) {
                    continue;
                }
                let options = entry.options(now);
                match write_owned(disk, &key, &entry, &options) {
                    // Not an access nor a new value: the entry keeps its place and statistics.
                    // Gone meanwhile (evicted), it is its handoff's to write.
                    Ok(record) => {
                        self.memory.update(&key[..], |e| e.record = Some(record));
                    }
                    // Memory keeps serving it; the next pass tries again.
                    Err(e) => {
                        self.disk_error(&e);
                        held.unwritten.borrow_mut().push(key);
                    }
                }
            }
            self.drain(stripe);
        }
        if sync && let Err(e) = disk.flush() {
            self.disk_error(&e);
        }
    }

    /// Changes the memory tier's bound. A smaller one evicts at once, and what it evicts is
    /// handed to the disk tier at once too (not when its stripes are next used), so the
    /// memory is freed before this returns.
    /// Whether a value of `len` bytes for `key` has somewhere to go: without a disk tier, not
    /// if it is heavier than `maxmemory` (the memory tier refuses it).
    pub(crate) fn fits(&self, key: &[u8], len: usize) -> Result<(), WriteError> {
        let weight = u64::from(entry_weight(key.len(), len));
        if self.disk.is_none() && weight > self.memory.capacity() {
            return Err(WriteError::OutOfMemory);
        }
        Ok(())
    }

    pub(crate) fn set_maxmemory(&self, bytes: u64) {
        self.memory.set_max_capacity(bytes);
        self.drain_all();
    }

    pub(crate) fn memory(&self) -> &Cache<CompactBytes, Entry> {
        &self.memory
    }

    pub(crate) fn disk(&self) -> Option<&DiskStore> {
        self.disk.as_ref()
    }

    /// Hands every entry to the disk tier and syncs it, so that a restart finds them all
    /// (shutdown: memory keeps its entries, but the disk tier now indexes them too).
    pub(crate) fn flush(&self) -> Result<(), strata::Error> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        self.drain_all();
        let now = now_ms();
        for (key, entry) in self.memory.iter() {
            if !entry.expired(now) {
                disk.adopt(&key, &entry.encode()?, &entry.options(now), entry.record)?;
            }
        }
        disk.flush()
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

    fn touch(&self, key: &[u8]) {
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
        if let Some(entry) = self.ks.memory.peek(self.key).filter(|e| !e.expired(now)) {
            return Some(entry);
        }
        let disk = self.ks.disk.as_ref()?;
        self.ks.drain(self.stripe);
        let (bytes, record) = match disk.take(self.key) {
            Ok(found) => found?,
            Err(e) => {
                self.ks.disk_error(&e);
                return None;
            }
        };
        let entry = Entry::decode(&bytes, record).filter(|e| !e.expired(now))?;
        let key = CompactBytes::new(self.key);
        self.ks
            .memory
            .insert_with(key, entry.clone(), &entry.options(now));
        if entry.record.is_none() && self.ks.write_behind.is_some() {
            // Its record was evicted while it was read: memory holds the only copy.
            self.list_unwritten();
        }
        Some(entry)
    }

    /// Stores `entry`: disk first, so a failed disk write changes nothing; or, writing
    /// behind, memory only, with the key listed for the next pass (see the module docs).
    pub(crate) fn set(&self, mut entry: Entry) -> Result<(), WriteError> {
        self.ks.fits(self.key, entry.value.len())?;
        // The clock is read only for an entry that can expire (it costs a pipelined SET 2%).
        let now = entry.expires.map_or(0, |_| now_ms());
        if entry.expired(now) {
            self.remove()?;
            return Ok(());
        }
        let options = entry.options(now);
        // Only an entry that can leave memory just by eviction (written by its handoff) or by
        // an explicit removal (which writes a tombstone) waits. One with an expiry or tags
        // could leave unwritten (expired, tag-invalidated) while an older record of its key
        // lives on in the log, to come back at the next start.
        let behind = self.ks.write_behind.is_some()
            && entry.expires.is_none()
            && entry.tags.is_none()
            && self.held.unwritten.borrow().len() < MAX_UNWRITTEN;
        if let Some(disk) = self.ks.disk.as_ref().filter(|_| !behind) {
            entry.record = Some(write_owned(disk, self.key, &entry, &options)?);
        } else {
            // Not on disk (yet). An entry read back for a read-modify-write carries the place
            // of the record it was read with, which holds the old value.
            entry.record = None;
        }
        // The key is copied out of the request (whose bytes share the connection's read
        // buffer); the value was, when the entry was made.
        REPLACED.set(Replaced::Nothing);
        self.ks
            .memory
            .insert_with(CompactBytes::new(self.key), entry, &options);
        if behind {
            let replaced = REPLACED.get();
            if replaced == Replaced::Nothing
                && let Some(disk) = &self.ks.disk
            {
                // Memory holds the key now: it leaves the disk tier's index (one place per key).
                disk.release(self.key);
            }
            if replaced != Replaced::Unwritten {
                self.list_unwritten();
            }
        }
        self.ks.drain(self.stripe);
        self.ks.touch(self.key);
        Ok(())
    }

    /// Puts the key on its stripe's unwritten list, for the next pass to write.
    fn list_unwritten(&self) {
        self.held
            .unwritten
            .borrow_mut()
            .push(CompactBytes::new(self.key));
    }

    /// Removes the key; true if it held a live entry.
    pub(crate) fn remove(&self) -> Result<bool, WriteError> {
        let now = now_ms();
        let in_memory = self.ks.memory.remove(self.key);
        let mut existed = in_memory.as_ref().is_some_and(|e| !e.expired(now));
        if let Some(disk) = &self.ks.disk {
            self.ks.drain(self.stripe);
            // A key memory held has records the disk tier does not index: they need a
            // tombstone all the same.
            existed |= if in_memory.is_some() {
                disk.remove_owned(self.key)?
            } else {
                disk.remove(self.key)?
            };
        }
        if existed {
            self.ks.touch(self.key);
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const MAXMEMORY: u64 = 48 << 10;

    fn open(dir: &std::path::Path, max_disk: u64) -> Keyspace {
        open_with(dir, max_disk, None)
    }

    /// A keyspace that writes behind, with a pass at every `maintain`.
    fn open_behind(dir: &std::path::Path, max_disk: u64) -> Keyspace {
        let behind = WriteBehind {
            every: Duration::ZERO,
            sync: true,
        };
        open_with(dir, max_disk, Some(behind))
    }

    fn open_with(dir: &std::path::Path, max_disk: u64, behind: Option<WriteBehind>) -> Keyspace {
        let disk = DiskStore::builder(dir)
            .max_bytes(max_disk)
            .segment_size((max_disk / 8).min(8 << 20))
            .sync(strata::SyncPolicy::Never)
            .open()
            .expect("open the disk tier");
        Keyspace::new(MAXMEMORY, Some(disk), behind).expect("keyspace")
    }

    fn disk_inserts(ks: &Keyspace) -> u64 {
        ks.disk().expect("disk").stats().inserts
    }

    /// xorshift, so the test needs no dependency for its randomness.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Threads write, read, delete and tag-invalidate their own keys while each other's
    /// inserts keep a tiny memory tier evicting, so keys move between memory and disk all the
    /// time. Every read sees the thread's last write with its expiry (or, if `lossy`,
    /// nothing: the disk tier may have evicted it). Some writes expire in an hour, which
    /// their moves must keep; some expired already, which none may bring back. Returns the
    /// live keys' values.
    fn churn(ks: &Keyspace, lossy: bool) -> HashMap<Bytes, Vec<u8>> {
        const THREADS: u64 = 4;
        const KEYS: u64 = 400;
        let worker = |t: u64| {
            // Value, tagged, expiry.
            let mut model: HashMap<Bytes, (Vec<u8>, bool, Option<u64>)> = HashMap::new();
            let mut rng = 0x9E37_79B9_7F4A_7C15 ^ (t + 1);
            for step in 0..20_000u64 {
                let key = Bytes::from(format!("t{t}:k{}", next(&mut rng) % KEYS));
                match next(&mut rng) % 100 {
                    0..5 => {
                        // A read-modify-write, as APPEND does: the entry read back carries
                        // its record's place, its tags and its expiry.
                        let guard = ks.lock(&key);
                        let old = guard.get();
                        let seen = old.as_ref().map(|e| (e.value.to_vec(), e.expires_at()));
                        let known = model.remove(&key);
                        let want = known.as_ref().map(|(v, _, expiry)| (v.clone(), *expiry));
                        if !lossy || seen.is_some() {
                            assert_eq!(seen, want, "APPEND {key:?} read at step {step}");
                        }
                        // What is written is what was read, plus "+": in a lossy run the key
                        // may be gone, and it starts over untagged.
                        let tagged = seen.is_some() && known.is_some_and(|(_, tagged, _)| tagged);
                        let entry = match old {
                            Some(old) => {
                                let value = [&old.value[..], b"+"].concat();
                                old.with_value(&value)
                            }
                            None => Entry::new(b"+"),
                        };
                        let (value, expiry) = (entry.value.to_vec(), entry.expires_at());
                        guard.set(entry).expect("append");
                        drop(guard);
                        model.insert(key, (value, tagged, expiry));
                    }
                    5..50 => {
                        let value = format!("{t}-{step}").into_bytes();
                        let r = next(&mut rng);
                        let tagged = r.is_multiple_of(4);
                        let mut entry = Entry::new(&value);
                        if tagged {
                            entry = entry.with_tags(vec![Tag::from(format!("t{t}"))]);
                        }
                        let expiry = match (r >> 8) % 8 {
                            0 => Some(now_ms() + 3_600_000),
                            1 => Some(now_ms() - 1_000),
                            _ => None,
                        };
                        ks.lock(&key).set(entry.with_expiry(expiry)).expect("set");
                        if expiry.is_some_and(|at| at <= now_ms()) {
                            model.remove(&key);
                        } else {
                            model.insert(key, (value, tagged, expiry));
                        }
                    }
                    50..85 => {
                        let got = ks.peek(&key).map(|e| (e.value.to_vec(), e.expires_at()));
                        let want = model.get(&key).map(|(v, _, expiry)| (v.clone(), *expiry));
                        if !lossy || got.is_some() {
                            assert_eq!(got, want, "GET {key:?} at step {step}");
                        }
                    }
                    85..99 => {
                        let existed = ks.lock(&key).remove().expect("remove");
                        let want = model.remove(&key).is_some();
                        if !lossy || existed {
                            assert_eq!(existed, want, "DEL {key:?} at step {step}");
                        }
                    }
                    _ => {
                        ks.invalidate_tag(&format!("t{t}")).expect("invalidate");
                        model.retain(|_, (_, tagged, _)| !*tagged);
                    }
                }
            }
            model
                .into_iter()
                .map(|(k, (v, _, _))| (k, v))
                .collect::<Vec<_>>()
        };
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| scope.spawn(move || worker(t)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("worker"))
                .collect()
        })
    }

    #[test]
    fn keys_moving_between_memory_and_disk_never_go_stale_or_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = open(dir.path(), 256 << 20);
        let model = churn(&ks, false);
        assert!(
            ks.memory().len() < model.len() && ks.disk().map_or(0, DiskStore::len) > 0,
            "the test must make memory spill to disk"
        );
        assert_eq!(ks.len(), model.len(), "each key is counted once");
        let mut keys = ks.keys();
        keys.sort();
        let mut want: Vec<Bytes> = model.keys().cloned().collect();
        want.sort();
        assert_eq!(keys, want);

        // A clean shutdown keeps every key.
        ks.flush().expect("shutdown flush");
        drop(ks);
        let ks = open(dir.path(), 256 << 20);
        assert_eq!(ks.len(), model.len(), "after a restart");
        for (key, value) in &model {
            assert_eq!(ks.peek(key).map(|e| e.value.to_vec()), Some(value.clone()));
        }
    }

    /// With a disk tier far too small, segments are evicted while their keys live in memory:
    /// keys may be lost, but what comes back after a restart (without the shutdown flush, as
    /// after a crash) is never an older value, nor a deleted key.
    #[test]
    fn a_small_disk_tier_loses_keys_but_never_brings_back_old_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = open(dir.path(), 256 << 10);
        let model = churn(&ks, true);
        ks.disk().expect("disk").flush().expect("sync");
        drop(ks);
        let ks = open(dir.path(), 256 << 10);
        assert!(ks.len() > 0, "some keys survive");
        for key in ks.keys() {
            let got = ks.peek(&key).map(|e| e.value.to_vec());
            assert_eq!(got.as_ref(), model.get(&key), "{key:?} after a restart");
        }
    }

    /// An entry evicted, written again and evicted again before its stripe drained has two
    /// handoffs: only the last may reach the disk, or the log would end with the old value.
    #[test]
    fn only_a_keys_last_handoff_reaches_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = open(dir.path(), 256 << 20);
        let key = Bytes::from_static(b"k");
        ks.lock(&key).set(Entry::new(b"new")).expect("set");
        let new = ks.memory().remove(&b"k"[..]).expect("in memory");
        // The old value's record is gone (no `record`): handing it off would write it anew.
        ks.handoffs
            .push(&CompactBytes::new(b"k"), &Entry::new(b"old"));
        ks.handoffs.push(&CompactBytes::new(b"k"), &new);
        ks.drain_all();
        assert_eq!(
            ks.peek(&key).map(|e| e.value.to_vec()),
            Some(b"new".to_vec())
        );
        ks.disk().expect("disk").flush().expect("sync");
        drop(ks);
        let ks = open(dir.path(), 256 << 20);
        assert_eq!(
            ks.peek(&key).map(|e| e.value.to_vec()),
            Some(b"new".to_vec())
        );
    }

    /// Writing behind: a key set many times between two passes is written once, by the pass;
    /// an entry with an expiry or tags is written at once; what a pass wrote is found after
    /// a crash (no shutdown flush).
    #[test]
    fn writing_behind_writes_a_key_once_per_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = open_behind(dir.path(), 256 << 20);
        for i in 0..100 {
            let value = format!("v{i}");
            ks.lock(b"k")
                .set(Entry::new(value.as_bytes()))
                .expect("set");
        }
        assert_eq!(disk_inserts(&ks), 0, "nothing written before the pass");
        assert_eq!(
            ks.peek(b"k").map(|e| e.value.to_vec()),
            Some(b"v99".to_vec())
        );
        let before = ks.memory().stats();
        ks.maintain();
        assert_eq!(disk_inserts(&ks), 1, "one record for 100 SETs");
        assert_eq!(
            ks.memory().stats(),
            before,
            "the pass is neither an access nor a write of the memory tier"
        );
        ks.maintain();
        assert_eq!(disk_inserts(&ks), 1, "nothing left to write");

        let tagged = Entry::new(b"t").with_tags(vec![Tag::from("tag")]);
        ks.lock(b"tagged").set(tagged).expect("set");
        let expiring = Entry::new(b"e").with_expiry(Some(now_ms() + 600_000));
        ks.lock(b"expiring").set(expiring).expect("set");
        assert_eq!(disk_inserts(&ks), 3, "written through");

        // A read-modify-write (APPEND, INCR) sets an entry read back from memory, which
        // carries the place of the record it was read with: that record holds the old value.
        let guard = ks.lock(b"k");
        let read = guard.get().expect("k");
        guard.set(read.with_value(b"last")).expect("set");
        drop(guard);
        ks.maintain();
        drop(ks); // a crash: no shutdown flush
        let ks = open(dir.path(), 256 << 20);
        for (key, value) in [
            (&b"k"[..], &b"last"[..]),
            (b"tagged", b"t"),
            (b"expiring", b"e"),
        ] {
            assert_eq!(ks.peek(key).map(|e| e.value.to_vec()), Some(value.to_vec()));
        }
    }

    /// The churn of the test above with writing behind and passes running alongside: reads
    /// stay exact, and after a last pass and a crash (no shutdown flush) every key comes back
    /// with its last value. So every entry memory holds unwritten was on a stripe's list (or
    /// was written by its handoff), and no pass wrote an outdated value.
    #[test]
    fn writing_behind_loses_nothing_a_pass_has_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = open_behind(dir.path(), 256 << 20);
        /// Stops the passes when the churn ends, also by a failed assertion (else the scope
        /// would wait for them forever).
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let done = AtomicBool::new(false);
        let model = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    ks.maintain();
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let _done = Done(&done);
            churn(&ks, false)
        });
        assert_eq!(ks.len(), model.len(), "each key is counted once");
        ks.maintain();
        drop(ks);
        let ks = open(dir.path(), 256 << 20);
        assert_eq!(ks.len(), model.len(), "after a crash");
        for (key, value) in &model {
            assert_eq!(ks.peek(key).map(|e| e.value.to_vec()), Some(value.clone()));
        }
    }

    #[test]
    fn an_entry_takes_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }
}
