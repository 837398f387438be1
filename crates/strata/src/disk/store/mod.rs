//! The disk tier's store: an append-only log of segments, an in-memory index over it, and
//! FIFO eviction by whole segments that rewrites entries read since they were written.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use crate::disk::builder::{Config, DiskBuilder, SyncPolicy};
use crate::disk::index::{Index, Loc, Place};
use crate::disk::record::{self, Kind, RecordHeader, SegmentHeader};
use crate::disk::recovery::{self, Recovered, TagIndex};
use crate::disk::stats::{Counters, DiskStats};
use crate::disk::storage::{SegmentFile, Storage, read_exact_at};
use crate::error::{Error, Result};
use crate::options::{InsertOptions, Tag};

mod eviction;
mod log;

use log::Syncer;

/// Records at least this long bypass the write buffer.
const DIRECT_WRITE: u64 = 128 << 10;
/// The write buffer is written out when it reaches this size.
const BUFFER: usize = 256 << 10;
/// Keys are stored with a 16-bit length.
pub(crate) const MAX_KEY: usize = u16::MAX as usize;

/// The disk tier over raw bytes: persistent, bounded in bytes, crash-safe.
///
/// Entries are appended to a log of segment files; an in-memory index maps each key's hash to
/// its latest record. Every record is checksummed and carries its key: a read returns the
/// value written for that key, or nothing (a damaged record reads as a miss and is counted in
/// [`DiskStats::corrupt_reads`]). When the log outgrows `max_bytes`, the oldest segment is
/// dropped; entries read since they were written get a second chance (they are rewritten at
/// the head of the log). See `docs/disk-tier.md` for the crash guarantee.
///
/// Cloning is cheap and shares the store. Dropping the last clone writes out and syncs what
/// is buffered.
///
/// ```
/// use std::time::Duration;
/// use strata::{DiskStore, InsertOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = DiskStore::builder(dir.path()).max_bytes(64 << 20).open()?;
/// store.insert_with(b"user:42:profile", b"{...}", &InsertOptions::new()
///     .ttl(Duration::from_secs(600))
///     .tag("user:42"))?;
/// assert!(store.get(b"user:42:profile")?.is_some());
/// assert_eq!(store.invalidate_tag("user:42")?, 1);
/// drop(store);
///
/// // Reopening restores what was there.
/// let store = DiskStore::builder(dir.path()).max_bytes(64 << 20).open()?;
/// assert_eq!(store.get(b"user:42:profile")?, None);
/// # Ok::<(), strata::Error>(())
/// ```
#[derive(Clone)]
pub struct DiskStore {
    // Declared (so dropped) first: when the last clone goes, the syncer is stopped and joined
    // before `inner`'s last reference drops here, so the store is closed (synced, sealed,
    // its directory unlocked) by the time the drop returns.
    _syncer: Arc<Syncer>,
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    storage: Box<dyn Storage>,
    config: Config,
    hasher: foldhash::fast::RandomState,
    /// Wall-clock unix ms when the store was opened; `now` adds the clock's reading.
    epoch_ms: u64,
    index: Index,
    segments: RwLock<HashMap<u32, Arc<Segment>>>,
    state: Mutex<State>,
    counters: Counters,
    recovered: (u64, u64),
    /// The salt of every segment this store creates, and the checksum seed it gives: records
    /// are encoded (and their values checksummed) before the writer lock is taken.
    salt: u64,
    seed: u32,
}

/// An open segment file.
pub(crate) struct Segment {
    pub(crate) id: u32,
    pub(crate) seed: u32,
    pub(crate) file: Arc<dyn SegmentFile>,
    /// How many bytes at the start of the file hold complete writes.
    pub(crate) written: AtomicU64,
}

/// What the writer knows about one segment of the log.
pub(crate) struct SegInfo {
    pub(crate) id: u32,
    /// Its size on disk. Not kept current for the active segment, whose size is its write
    /// position ([`State::active_bytes`]); [`State::settle_active_bytes`] copies it here.
    pub(crate) bytes: u64,
    /// (hash, offset) of each put written to it, for eviction.
    pub(crate) puts: Vec<(u64, u32)>,
}

/// Everything writers change, behind one lock (writes to a log are serial anyway). A put
/// touches only the lock and the fields here up to `inserts`, laid out first, and the tail of
/// `buf`: with writers on several cores, each other cache line a put wrote would move between
/// them on every put.
#[repr(C)]
struct State {
    active: Arc<Segment>,
    /// Records appended to `active` but not yet written to its file.
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    buf_at: u64,
    disk_bytes: u64,
    /// The active segment has writes not yet synced.
    dirty: bool,
    /// A sync of the active segment failed: what it holds may never reach the disk (after a
    /// failed fsync, Linux marks the lost pages clean), its header included, so the next
    /// record goes to a new segment.
    reroll: bool,
    /// A failed write or sync means the index may say a key is gone while an older record
    /// of it is still on disk (a dropped buffer, a tombstone whose pages were lost): from
    /// then on, removals and tag invalidations write their record even when the index has
    /// nothing to remove, so retrying one makes it durable.
    diverged: bool,
    /// Puts since the store was opened (counted here rather than in [`Counters`]: see above).
    inserts: u64,
    /// The segments, oldest first; the active one last.
    log: VecDeque<SegInfo>,
    tags: TagIndex,
    /// Sealed segments with writes not yet synced.
    unsynced: Vec<Arc<Segment>>,
    /// Files created since the directory was last synced.
    dir_dirty: bool,
    next_id: u32,
}

impl State {
    /// The active segment's size: its records, written or buffered.
    fn active_bytes(&self) -> u64 {
        self.buf_at + self.buf.len() as u64
    }

    /// Brings the active segment's [`SegInfo::bytes`] up to date, for code that reads every
    /// segment's size.
    fn settle_active_bytes(&mut self) {
        let bytes = self.active_bytes();
        if let Some(info) = self.log.back_mut().filter(|info| info.id == self.active.id) {
            info.bytes = bytes;
        }
    }
}

impl DiskStore {
    /// A builder for a store in `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> DiskBuilder {
        DiskBuilder::new(dir.as_ref())
    }

    pub(crate) fn open_with(storage: Box<dyn Storage>, config: Config) -> Result<Self> {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let hasher = foldhash::fast::RandomState::default();
        let salt =
            std::collections::hash_map::RandomState::new().hash_one((epoch_ms, std::process::id()));
        let index = Index::new();
        let now_ms = epoch_ms + config.clock.now_nanos() / 1_000_000;
        let Recovered {
            segments,
            log,
            tags,
            disk_bytes,
            next_id,
            entries,
            skipped_bytes,
        } = recovery::recover(&*storage, &hasher, &index, now_ms)?;
        let placeholder = Arc::new(Segment {
            id: u32::MAX,
            seed: 0,
            file: Arc::new(NoFile),
            written: AtomicU64::new(0),
        });
        let inner = Arc::new(Inner {
            storage,
            config,
            hasher,
            epoch_ms,
            index,
            segments: RwLock::new(segments),
            state: Mutex::new(State {
                active: placeholder,
                buf: Vec::with_capacity(BUFFER),
                buf_at: 0,
                disk_bytes,
                dirty: false,
                reroll: false,
                diverged: false,
                inserts: 0,
                log,
                tags,
                unsynced: Vec::new(),
                dir_dirty: false,
                next_id,
            }),
            counters: Counters::default(),
            recovered: (entries, skipped_bytes),
            salt,
            seed: SegmentHeader { id: 0, salt }.seed(),
        });
        {
            let mut st = inner.state.lock();
            inner.start_segment(&mut st)?;
            inner.evict_over_bound(&mut st)?;
        }
        let syncer = match inner.config.sync {
            SyncPolicy::Interval(every) => Syncer::spawn(Arc::downgrade(&inner), every),
            _ => Syncer::default(),
        };
        Ok(Self {
            _syncer: Arc::new(syncer),
            inner,
        })
    }

    /// The value stored for `key`, if any and not expired.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read. A damaged record is not an error: it reads
    /// as `None` and is counted in [`DiskStats::corrupt_reads`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let found = self.inner.read(key, true)?;
        let counter = if found.is_some() {
            &self.inner.counters.hits
        } else {
            &self.inner.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(found)
    }

    /// Like [`get`](Self::get), but not counted in the statistics and not marking the entry
    /// as referenced.
    pub(crate) fn peek(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.read(key, false)
    }

    pub(crate) fn count_decode_error(&self) {
        self.inner
            .counters
            .decode_errors
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a live entry exists for `key` (without reading or checking its value).
    pub fn contains_key(&self, key: &[u8]) -> bool {
        let hash = self.inner.hasher.hash_one(key);
        self.inner
            .index
            .peek(hash)
            .is_some_and(|p| p.expires_at_ms > self.inner.now_ms())
    }

    /// Stores `value` for `key`, replacing any previous value.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`] / [`Error::TooLarge`] for a key over 64 KiB or a value over
    /// `max_value_size`; [`Error::DiskFull`] or [`Error::Io`] if the write fails (then nothing
    /// is stored: a read returns the previous value or nothing).
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.insert_with(key, value, &InsertOptions::new())
    }

    /// Like [`insert`](Self::insert), with a TTL and tags.
    ///
    /// # Errors
    /// As [`insert`](Self::insert), and [`Error::TooLarge`] for a tag over 64 KiB.
    pub fn insert_with(&self, key: &[u8], value: &[u8], options: &InsertOptions) -> Result<()> {
        self.inner.put(key, value, options, true).map(drop)
    }

    /// Writes `key`'s record like [`insert_with`](Self::insert_with), but leaves the key out
    /// of the index: a faster tier in front of the store holds it, and hands it back with
    /// [`adopt`](Self::adopt) when it lets go of it. Until then reads here miss, and the
    /// record serves only recovery: after a restart the key is back, as if inserted.
    ///
    /// This is how a memory tier layered on the store keeps one index per key instead of
    /// two (the Strata server does). Every write to `key` (this, `adopt`, `take`,
    /// [`remove_owned`](Self::remove_owned)) must come from one thread at a time.
    ///
    /// # Errors
    /// As [`insert_with`](Self::insert_with).
    pub fn insert_owned(
        &self,
        key: &[u8],
        value: &[u8],
        options: &InsertOptions,
    ) -> Result<RecordRef> {
        self.inner.put(key, value, options, false)
    }

    /// Takes `key` out of the index without reading or writing anything, for a tier in front
    /// that now holds a newer value and will write it later
    /// ([`insert_owned`](Self::insert_owned) or [`adopt`](Self::adopt)). Until then a crash
    /// brings back the key's last record, as after any lost write. The same one-thread-per-key
    /// rule as for `insert_owned` applies.
    pub fn release(&self, key: &[u8]) {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        if inner.index.peek(hash).is_none() {
            return;
        }
        let mut st = inner.state.lock();
        st.tags.forget(hash);
        inner.index.remove_any(hash);
    }

    /// Indexes `key` again after an [`insert_owned`](Self::insert_owned) (or a
    /// [`take`](Self::take)): `value` and `options` must be what that record holds, and `at`
    /// is where it was written. If that record is gone (its segment was evicted meanwhile) or
    /// `at` is `None`, the entry is written anew.
    ///
    /// # Errors
    /// As [`insert_with`](Self::insert_with), when the entry is written anew.
    pub fn adopt(
        &self,
        key: &[u8],
        value: &[u8],
        options: &InsertOptions,
        at: Option<RecordRef>,
    ) -> Result<()> {
        let inner = &*self.inner;
        let expires_at_ms = inner.check_put(key, value, options)?;
        let hash = inner.hasher.hash_one(key);
        let len = record::encoded_len(key, &options.tags, value, expires_at_ms.is_some());
        let mut st = inner.state.lock();
        // The record's segment, if it is still in the log (ids increase along it).
        let live =
            at.and_then(|at| Some((st.log.binary_search_by_key(&at.seg(), |i| i.id).ok()?, at)));
        let Some((i, at)) = live else {
            drop(st);
            return inner.put(key, value, options, true).map(drop);
        };
        let loc = Loc {
            seg: at.seg(),
            offset: at.offset(),
            len: len as u32,
            expires_at_ms: expires_at_ms.unwrap_or(u64::MAX),
            referenced: Default::default(),
        };
        inner.index.insert(hash, loc);
        st.tags.forget(hash);
        st.tags.add(hash, &options.tags);
        st.log[i].puts.push((hash, at.offset()));
        Ok(())
    }

    /// Reads `key` and takes it out of the index, for a faster tier in front of the store to
    /// hold (see [`insert_owned`](Self::insert_owned)): its value, and where its record is
    /// (`None` if the record was evicted while it was read), to pass to
    /// [`adopt`](Self::adopt) later. Counted as a hit or a miss.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn take(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Option<RecordRef>)>> {
        let inner = &*self.inner;
        let Some(value) = inner.read(key, false)? else {
            inner.counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        inner.counters.hits.fetch_add(1, Ordering::Relaxed);
        let hash = inner.hasher.hash_one(key);
        let mut st = inner.state.lock();
        // Where it is now: eviction may have rewritten it elsewhere (the same bytes) or
        // dropped it since it was read.
        let at = inner.index.remove(hash).map(|loc| {
            st.tags.forget(hash);
            RecordRef::new(loc.seg, loc.offset)
        });
        Ok(Some((value, at)))
    }

    /// Removes `key` whether the store indexes it or a tier in front holds it (see
    /// [`insert_owned`](Self::insert_owned)): the tombstone is always written. True if the
    /// index held a live entry.
    ///
    /// # Errors
    /// As [`remove`](Self::remove).
    pub fn remove_owned(&self, key: &[u8]) -> Result<bool> {
        self.inner.remove(key, true)
    }

    /// Removes `key`; true if a live entry was removed. Under durable invalidation (the
    /// default) the removal is synced before this returns.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::DiskFull`] if the tombstone cannot be written or synced (the
    /// key then reads as missing in this process but may reappear after a crash).
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        self.inner.remove(key, false)
    }

    /// Removes every entry carrying `tag`; returns how many. Synced before it returns under
    /// durable invalidation.
    ///
    /// # Errors
    /// As [`remove`](Self::remove).
    pub fn invalidate_tag(&self, tag: &str) -> Result<usize> {
        let inner = &*self.inner;
        if tag.len() > MAX_KEY {
            return Err(Error::KeyTooLarge {
                len: tag.len(),
                max: MAX_KEY,
            });
        }
        let mut st = inner.state.lock();
        // Written even when no live entry carries the tag: an older record of some key may
        // carry it, shadowed by a newer one that a crash could lose.
        let record = inner.prepare(Kind::InvalidateTag, tag.as_bytes(), &[], &[], None);
        inner.append(&mut st, &record)?;
        let hashes = st.tags.take(tag);
        for &hash in &hashes {
            if inner.index.remove(hash).is_some() {
                st.tags.forget(hash);
            }
        }
        inner
            .counters
            .removals
            .fetch_add(hashes.len() as u64, Ordering::Relaxed);
        inner.evict_over_bound(&mut st)?;
        inner.sync_invalidation(&mut st)?;
        Ok(hashes.len())
    }

    /// Removes every entry by deleting every segment file, oldest first, each deletion made
    /// durable before the next (a crash part-way leaves the newest segments, as eviction
    /// would), then starts a new segment. It needs no free space, so it also works on a full
    /// disk.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be deleted (after a crash, its entries may come back);
    /// [`Error::DiskFull`] / [`Error::Io`] if the new segment cannot be created (the next write
    /// tries again). Either way the store is empty.
    pub fn invalidate_all(&self) -> Result<()> {
        let inner = &*self.inner;
        let mut st = inner.state.lock();
        st.settle_active_bytes();
        let removed = inner.index.len() as u64;
        inner.index.clear();
        st.tags = TagIndex::default();
        st.buf.clear();
        st.unsynced.clear();
        st.dirty = false;
        // No active segment until a new one is created.
        st.reroll = true;
        inner.segments.write().clear();
        let mut failed = None;
        for info in std::mem::take(&mut st.log) {
            st.disk_bytes -= info.bytes;
            if let Err(e) = inner.storage.remove(info.id) {
                failed.get_or_insert(Error::io("deleting", &inner.storage.path(info.id), e));
            }
            inner.sync_dir();
        }
        inner
            .counters
            .removals
            .fetch_add(removed, Ordering::Relaxed);
        if let Some(e) = failed {
            return Err(e);
        }
        inner.start_segment(&mut st)?;
        st.reroll = false;
        Ok(())
    }

    /// Writes out buffered records and syncs them: everything acknowledged so far survives a
    /// crash.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::DiskFull`] if the write or the sync fails.
    pub fn flush(&self) -> Result<()> {
        let mut st = self.inner.state.lock();
        self.inner.sync(&mut st)
    }

    /// The keys of the live entries. It reads every record's header, so it costs one read per
    /// entry: meant for administration (`KEYS`, `SCAN`), not for the request path.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be read.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let inner = &*self.inner;
        let now = inner.now_ms();
        let mut places = Vec::new();
        inner.index.for_each(|_, place| {
            if place.expires_at_ms > now {
                places.push(place);
            }
        });
        let mut keys = Vec::with_capacity(places.len());
        for mut place in places {
            // The header and key are at most this long; the value is not needed.
            place.len = place.len.min((record::MAX_HEADER_LEN + MAX_KEY) as u32);
            let Some((seed, bytes)) = inner.read_record(place)? else {
                continue;
            };
            let Some(header) = RecordHeader::parse(&bytes) else {
                continue;
            };
            let key_end = (header.header_len + header.key_len) as usize;
            let meta_len = header.meta_len() as usize;
            if header.kind != Kind::Put || key_end > bytes.len() {
                continue;
            }
            // Check the meta checksum when the prefix covers it (tags can make it longer).
            if meta_len <= bytes.len() && !header.meta_ok(seed, &bytes[..meta_len]) {
                continue;
            }
            keys.push(header.key(&bytes[..key_end]).to_vec());
        }
        Ok(keys)
    }

    /// The number of entries (expired entries count until they are reclaimed).
    pub fn len(&self) -> usize {
        self.inner.index.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the segment files (live records, overwritten ones not yet reclaimed, and what
    /// is buffered to be written).
    pub fn disk_bytes(&self) -> u64 {
        self.inner.state.lock().disk_bytes
    }

    /// The bound on [`disk_bytes`](Self::disk_bytes) (the store may exceed it by at most one
    /// segment).
    pub fn max_bytes(&self) -> u64 {
        self.inner.config.max_bytes
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> DiskStats {
        let mut stats = self.inner.counters.snapshot();
        stats.inserts = self.inner.state.lock().inserts;
        stats.entries = self.len() as u64;
        stats.disk_bytes = self.disk_bytes();
        (stats.recovered_entries, stats.recovery_skipped_bytes) = self.inner.recovered;
        stats
    }
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("entries", &self.len())
            .field("disk_bytes", &self.disk_bytes())
            .field("max_bytes", &self.max_bytes())
            .finish()
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY,
        });
    }
    Ok(())
}

/// Where a record was written: its segment and offset (see [`DiskStore::insert_owned`]).
/// Eight bytes, and `Option<RecordRef>` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef(NonZeroU64);

impl RecordRef {
    fn new(seg: u32, offset: u32) -> Self {
        // A record never starts at offset 0 (the segment header does), so this is never 0.
        let packed = (u64::from(seg) << 32) | u64::from(offset);
        Self(NonZeroU64::new(packed).unwrap_or(NonZeroU64::MIN))
    }

    fn seg(self) -> u32 {
        (self.0.get() >> 32) as u32
    }

    fn offset(self) -> u32 {
        self.0.get() as u32
    }
}

/// A record encoded outside the writer lock (see [`Inner::prepare`]).
struct Prepared<'a> {
    kind: Kind,
    key: &'a [u8],
    tags: &'a [Tag],
    value: &'a [u8],
    expires_at_ms: Option<u64>,
    value_crc: u32,
    len: u64,
}

impl Prepared<'_> {
    /// Appends the record's header, key and tags to `out`: all but its value.
    fn encode_meta(&self, seed: u32, out: &mut Vec<u8>) {
        let value_len_crc = (self.value.len() as u32, self.value_crc);
        record::encode_meta(
            out,
            seed,
            self.kind,
            self.key,
            self.tags,
            value_len_crc,
            self.expires_at_ms,
        );
    }
}

/// What a read found at a place.
enum Verdict {
    Value(Vec<u8>),
    /// A valid record of another key with the same hash.
    OtherKey,
    Corrupt,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.config.clock.now_nanos() / 1_000_000
    }

    /// Checks a put's sizes; returns its expiry (unix ms).
    fn check_put(&self, key: &[u8], value: &[u8], options: &InsertOptions) -> Result<Option<u64>> {
        check_key(key)?;
        if value.len() as u64 > self.config.max_value_size {
            return Err(Error::TooLarge {
                what: "value",
                len: value.len() as u64,
                max: self.config.max_value_size,
            });
        }
        for tag in &options.tags {
            if tag.len() > MAX_KEY {
                return Err(Error::TooLarge {
                    what: "tag",
                    len: tag.len() as u64,
                    max: MAX_KEY as u64,
                });
            }
        }
        Ok(options.ttl.map(|ttl| {
            let ms = ttl.as_millis().max(1);
            self.now_ms()
                .saturating_add(u64::try_from(ms).unwrap_or(u64::MAX))
        }))
    }

    /// Appends a put; `index` points the key at it, else takes the key out of the index
    /// (see [`DiskStore::insert_owned`]).
    fn put(
        &self,
        key: &[u8],
        value: &[u8],
        options: &InsertOptions,
        index: bool,
    ) -> Result<RecordRef> {
        let expires_at_ms = self.check_put(key, value, options)?;
        let hash = self.hasher.hash_one(key);
        let record = self.prepare(Kind::Put, key, &options.tags, value, expires_at_ms);
        let mut st = self.state.lock();
        let (seg, offset, len) = self.append(&mut st, &record)?;
        st.tags.forget(hash);
        if index {
            let loc = Loc {
                seg,
                offset,
                len,
                expires_at_ms: expires_at_ms.unwrap_or(u64::MAX),
                referenced: Default::default(),
            };
            self.index.insert(hash, loc);
            st.tags.add(hash, &options.tags);
            if let Some(info) = st.log.back_mut() {
                info.puts.push((hash, offset));
            }
        } else {
            self.index.remove_any(hash);
        }
        st.inserts += 1;
        self.evict_over_bound(&mut st)?;
        if self.config.sync == SyncPolicy::Always {
            self.sync(&mut st)?;
        }
        Ok(RecordRef::new(seg, offset))
    }

    /// Removes `key`; `always` writes the tombstone even if the index holds nothing (a tier
    /// in front holds the key).
    fn remove(&self, key: &[u8], always: bool) -> Result<bool> {
        check_key(key)?;
        let hash = self.hasher.hash_one(key);
        let mut st = self.state.lock();
        let place = self.index.peek(hash);
        let live = place.is_some_and(|place| place.expires_at_ms > self.now_ms());
        // Even an expired entry gets a tombstone: its record may not be durable, and an older
        // one of the same key may be.
        let tombstone = always || place.is_some() || st.diverged;
        if tombstone {
            self.append(&mut st, &self.prepare(Kind::Remove, key, &[], &[], None))?;
        }
        if self.index.remove(hash).is_some() {
            st.tags.forget(hash);
        }
        if live {
            self.counters.removals.fetch_add(1, Ordering::Relaxed);
        }
        if tombstone {
            self.evict_over_bound(&mut st)?;
            self.sync_invalidation(&mut st)?;
        }
        Ok(live)
    }

    /// The value for `key`; `mark` sets its referenced bit.
    fn read(&self, key: &[u8], mark: bool) -> Result<Option<Vec<u8>>> {
        let hash = self.hasher.hash_one(key);
        let place = if mark {
            self.index.lookup(hash)
        } else {
            self.index.peek(hash)
        };
        let Some(place) = place else {
            return Ok(None);
        };
        // Expired and damaged entries stay in the index (a later `remove` must know to write
        // a tombstone); eviction reclaims them.
        if place.expires_at_ms <= self.now_ms() {
            return Ok(None);
        }
        let Some((seed, bytes)) = self.read_record(place)? else {
            return Ok(None);
        };
        match verify(seed, bytes, key) {
            Verdict::Value(value) => Ok(Some(value)),
            Verdict::OtherKey => Ok(None),
            Verdict::Corrupt => {
                self.counters.corrupt_reads.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// The bytes of the record at `place` and its segment's checksum seed; `None` if the
    /// segment was evicted or the record lost to a failed write meanwhile.
    fn read_record(&self, place: Place) -> Result<Option<(u32, Vec<u8>)>> {
        let Some(seg) = self.segments.read().get(&place.seg).cloned() else {
            return Ok(None);
        };
        let end = u64::from(place.offset) + u64::from(place.len);
        if end > seg.written.load(Ordering::Acquire) {
            let st = self.state.lock();
            if st.active.id == place.seg && u64::from(place.offset) >= st.buf_at {
                let start = (u64::from(place.offset) - st.buf_at) as usize;
                return Ok(st
                    .buf
                    .get(start..start + place.len as usize)
                    .map(|bytes| (seg.seed, bytes.to_vec())));
            }
            if end > seg.written.load(Ordering::Acquire) {
                return Ok(None);
            }
        }
        let mut bytes = vec![0; place.len as usize];
        match read_exact_at(&*seg.file, &mut bytes, u64::from(place.offset)) {
            Ok(()) => Ok(Some((seg.seed, bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => {
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                Err(Error::io("reading", &self.storage.path(seg.id), e))
            }
        }
    }

    /// Does the expensive part of encoding a record, its value's checksum, outside the
    /// writer lock. (The rest is encoded under it, straight into the write buffer: a
    /// record encoded beforehand would cost an allocation and a copy.)
    fn prepare<'a>(
        &self,
        kind: Kind,
        key: &'a [u8],
        tags: &'a [Tag],
        value: &'a [u8],
        expires_at_ms: Option<u64>,
    ) -> Prepared<'a> {
        let len = record::encoded_len(key, tags, value, expires_at_ms.is_some());
        let value_crc = crc32c::crc32c_append(self.seed, value);
        Prepared {
            kind,
            key,
            tags,
            value,
            expires_at_ms,
            value_crc,
            len,
        }
    }
}

/// Checks the record in `bytes` against `key` and returns its value.
fn verify(seed: u32, mut bytes: Vec<u8>, key: &[u8]) -> Verdict {
    let Some(header) = RecordHeader::parse(&bytes) else {
        return Verdict::Corrupt;
    };
    if header.kind != Kind::Put || header.len() != bytes.len() as u64 {
        return Verdict::Corrupt;
    }
    let meta_len = header.meta_len() as usize;
    let meta = &bytes[..meta_len];
    if !header.meta_ok(seed, meta) {
        return Verdict::Corrupt;
    }
    if header.key(meta) != key {
        return Verdict::OtherKey;
    }
    if !header.value_ok(seed, &bytes[meta_len..]) {
        return Verdict::Corrupt;
    }
    bytes.drain(..meta_len);
    Verdict::Value(bytes)
}

/// The active segment before the first one is created.
struct NoFile;

impl SegmentFile for NoFile {
    fn read_at(&self, _: &mut [u8], _: u64) -> std::io::Result<usize> {
        Ok(0)
    }
    fn write_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn truncate(&self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
}
