//! Opening a store: replaying the log into the index.
//!
//! Segments are replayed in id order, records in file order, so the last record for a key
//! wins, a tombstone hides what came before it, and a tag record removes what was written
//! before it. A record is trusted once its meta checksum (header, key, tags) passes;
//! values are checked when they are read. A stretch that fails (a torn tail left by a crash,
//! or damaged bytes) is skipped byte by byte until a record passes both checksums again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::disk::index::{Index, Loc};
use crate::disk::record::{
    self, BadSegment, FORMAT_VERSION, Kind, MAX_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN,
    SegmentHeader,
};
use crate::disk::storage::{SegmentFile, Storage, read_exact_at};
use crate::disk::store::{SegInfo, Segment};
use crate::error::{Error, Result};
use crate::options::Tag;

/// The tags of the live entries, both ways: tag → hashes carrying it, and hash → its tags
/// (only for tagged entries, so the index's slots need no room for tags). Exact: an entry
/// leaves both when it leaves the index.
#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    by_tag: HashMap<Tag, HashSet<u64>>,
    by_hash: HashMap<u64, Box<[Tag]>>,
}

impl TagIndex {
    /// Records `hash`'s tags (after [`forget`](Self::forget)ting its old ones).
    pub(crate) fn add(&mut self, hash: u64, tags: &[Tag]) {
        if tags.is_empty() {
            return;
        }
        for tag in tags {
            self.by_tag.entry(tag.clone()).or_default().insert(hash);
        }
        self.by_hash.insert(hash, tags.into());
    }

    /// `hash` left the index: drop it from its tags' sets.
    pub(crate) fn forget(&mut self, hash: u64) {
        if self.by_hash.is_empty() {
            return;
        }
        let Some(tags) = self.by_hash.remove(&hash) else {
            return;
        };
        for tag in tags.iter() {
            if let Some(set) = self.by_tag.get_mut(tag) {
                set.remove(&hash);
                if set.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
    }

    /// The hashes carrying `tag`, which is dropped (the caller removes each hash from the
    /// index, then [`forget`](Self::forget)s it).
    pub(crate) fn take(&mut self, tag: &str) -> HashSet<u64> {
        self.by_tag.remove(tag).unwrap_or_default()
    }
}

/// The state rebuilt from the log.
pub(crate) struct Recovered {
    pub(crate) segments: HashMap<u32, Arc<Segment>>,
    pub(crate) log: VecDeque<SegInfo>,
    pub(crate) tags: TagIndex,
    pub(crate) disk_bytes: u64,
    pub(crate) next_id: u32,
    pub(crate) entries: u64,
    pub(crate) skipped_bytes: u64,
}

/// Replays every segment in `storage` into `index`.
pub(crate) fn recover(
    storage: &dyn Storage,
    hasher: &impl BuildHasher,
    index: &Index,
    now_ms: u64,
) -> Result<Recovered> {
    let mut ids = storage
        .list()
        .map_err(|e| Error::io("listing", &storage.path(0).with_file_name(""), e))?;
    ids.sort_unstable();
    let mut out = Recovered {
        segments: HashMap::new(),
        log: VecDeque::new(),
        tags: TagIndex::default(),
        disk_bytes: 0,
        next_id: ids.last().map_or(0, |&id| id.saturating_add(1)),
        entries: 0,
        skipped_bytes: 0,
    };
    for id in ids {
        let path = storage.path(id);
        let file = storage
            .open(id)
            .map_err(|e| Error::io("opening", &path, e))?;
        let len = file.len().map_err(|e| Error::io("reading", &path, e))?;
        let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
        let header = match read_exact_at(&*file, &mut head, 0) {
            Ok(()) => SegmentHeader::decode(&head),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(BadSegment::Corrupt),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let header = match header {
            Ok(h) if h.id == id => h,
            Err(BadSegment::Version(found)) => {
                return Err(Error::IncompatibleFormat {
                    path,
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            // A segment whose header never reached the disk (a crash right after creating
            // it) or was damaged: nothing in it can be trusted.
            _ => {
                out.skipped_bytes += len;
                let _ = storage.remove(id);
                continue;
            }
        };
        let segment = Arc::new(Segment {
            id,
            seed: header.seed(),
            file: file.clone(),
            written: AtomicU64::new(len),
        });
        out.segments.insert(id, segment);
        out.log.push_back(SegInfo {
            id,
            bytes: len,
            puts: Vec::new(),
        });
        out.disk_bytes += len;
        let mut scan = Scan {
            file: &*file,
            len,
            window: Vec::new(),
            window_at: 0,
        };
        let replay = Replay {
            id,
            seed: header.seed(),
            hasher,
            index,
            now_ms,
            sealed: is_sealed(&*file, len, header.seed())
                .map_err(|e| Error::io("reading", &path, e))?,
        };
        let skipped = replay
            .run(&mut scan, &mut out)
            .map_err(|e| Error::io("reading", &path, e))?;
        out.skipped_bytes += skipped;
    }
    out.entries = index.len() as u64;
    Ok(out)
}

/// Whether the segment ends with a valid seal record (all its records were synced).
fn is_sealed(file: &dyn SegmentFile, len: u64, seed: u32) -> std::io::Result<bool> {
    let seal_len = record::FIXED_HEADER_LEN as u64;
    if len < SEGMENT_HEADER_LEN + seal_len {
        return Ok(false);
    }
    let mut tail = [0u8; record::FIXED_HEADER_LEN];
    read_exact_at(file, &mut tail, len - seal_len)?;
    Ok(RecordHeader::parse(&tail).is_some_and(|h| {
        h.kind == Kind::Seal
            && h.len() == seal_len
            && h.meta_ok(seed, &tail)
            && h.value_ok(seed, &[])
    }))
}

/// Reads a file through a window of [`CHUNK`] bytes.
struct Scan<'a> {
    file: &'a dyn SegmentFile,
    len: u64,
    window: Vec<u8>,
    window_at: u64,
}

const CHUNK: usize = 1 << 20;

impl Scan<'_> {
    /// The bytes at `[at, at + n)`, fewer at the end of the file.
    fn bytes(&mut self, at: u64, n: usize) -> std::io::Result<&[u8]> {
        let end = (at + n as u64).min(self.len);
        let window_end = self.window_at + self.window.len() as u64;
        if at < self.window_at || end > window_end {
            let size = (n.max(CHUNK) as u64).min(self.len - at) as usize;
            self.window.resize(size, 0);
            read_exact_at(self.file, &mut self.window, at)?;
            self.window_at = at;
        }
        let from = (at - self.window_at) as usize;
        Ok(&self.window[from..from + (end - at) as usize])
    }
}

/// A record found by a scan: its header, key and tags.
type Scanned = (RecordHeader, Vec<u8>, Vec<Tag>);

/// Replays one segment.
struct Replay<'a, H> {
    id: u32,
    seed: u32,
    hasher: &'a H,
    index: &'a Index,
    now_ms: u64,
    /// A sealed segment's records were all synced: values need not be read. In an unsealed
    /// one (the segment being written at a crash) a record whose value fails its checksum
    /// is a torn write, skipped so that the key's previous record stands.
    sealed: bool,
}

/// A meta section longer than this is taken as damage (keys and tags are capped at 64 KiB;
/// this allows many tags).
const MAX_META: u64 = 16 << 20;

impl<H: BuildHasher> Replay<'_, H> {
    /// Replays the segment's records; returns the bytes skipped.
    fn run(&self, scan: &mut Scan<'_>, out: &mut Recovered) -> std::io::Result<u64> {
        let mut at = SEGMENT_HEADER_LEN;
        let mut skipped = 0;
        let mut resyncing = false;
        while at < scan.len {
            match self.record_at(scan, at, resyncing || !self.sealed)? {
                Some((header, key, tags)) => {
                    self.apply(at, &header, &key, tags, out);
                    at += header.len();
                    resyncing = false;
                }
                None => {
                    at += 1;
                    skipped += 1;
                    resyncing = true;
                }
            }
        }
        Ok(skipped)
    }

    /// The record at `at` if its checksums pass (the value's too when `check_value`).
    fn record_at(
        &self,
        scan: &mut Scan<'_>,
        at: u64,
        check_value: bool,
    ) -> std::io::Result<Option<Scanned>> {
        let Some(header) = RecordHeader::parse(scan.bytes(at, MAX_HEADER_LEN)?) else {
            return Ok(None);
        };
        if header.meta_len() > MAX_META || at + header.len() > scan.len {
            return Ok(None);
        }
        let meta = scan.bytes(at, header.meta_len() as usize)?;
        if !header.meta_ok(self.seed, meta) {
            return Ok(None);
        }
        let key = header.key(meta).to_vec();
        let Some(tags) = record::decode_tags(header.tags(meta)) else {
            return Ok(None);
        };
        if check_value {
            let value = scan.bytes(at + header.meta_len(), header.value_len as usize)?;
            if !header.value_ok(self.seed, value) {
                return Ok(None);
            }
        }
        Ok(Some((header, key, tags)))
    }

    fn apply(
        &self,
        at: u64,
        header: &RecordHeader,
        key: &[u8],
        tags: Vec<Tag>,
        out: &mut Recovered,
    ) {
        let drop_hash = |hash: u64, out: &mut Recovered| {
            if self.index.remove(hash).is_some() {
                out.tags.forget(hash);
            }
        };
        match header.kind {
            Kind::Put => {
                let hash = self.hasher.hash_one(key);
                let expires_at_ms = header.expires_at_ms.unwrap_or(u64::MAX);
                if expires_at_ms <= self.now_ms {
                    // An expired value still replaces the one before it.
                    drop_hash(hash, out);
                    return;
                }
                let loc = Loc {
                    seg: self.id,
                    offset: at as u32,
                    len: header.len() as u32,
                    expires_at_ms,
                    referenced: Default::default(),
                };
                self.index.insert(hash, loc);
                out.tags.forget(hash);
                out.tags.add(hash, &tags);
                if let Some(info) = out.log.back_mut() {
                    info.puts.push((hash, at as u32));
                }
            }
            Kind::Remove => drop_hash(self.hasher.hash_one(key), out),
            Kind::Seal => {}
            Kind::InvalidateTag => {
                if let Ok(tag) = std::str::from_utf8(key) {
                    for hash in out.tags.take(tag) {
                        drop_hash(hash, out);
                    }
                }
            }
        }
    }
}
