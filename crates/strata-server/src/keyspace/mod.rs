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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use strata::{Cache, DiskStore, InsertOptions, RecordRef, RemovalCause};

use crossbeam_utils::CachePadded;

use crate::compact::CompactBytes;

use crate::state::{StripedCounter, stripe};

mod entry;
#[cfg(test)]
mod tests;

pub(crate) use entry::Entry;

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
