//! The log's write side: records appended through a write buffer to the active segment,
//! segments rolled, sealed and deleted, and the syncs each [`SyncPolicy`] asks for, including
//! the background thread of the interval policy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{BUFFER, DIRECT_WRITE, Inner, Prepared, SegInfo, Segment, State};
use crate::disk::builder::SyncPolicy;
use crate::disk::record::{self, Kind, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::error::{Error, Result};

impl Inner {
    /// Appends a prepared record to the active segment (rolling to a new one if it is full);
    /// returns its segment, offset and length.
    pub(super) fn append(&self, st: &mut State, record: &Prepared<'_>) -> Result<(u32, u32, u32)> {
        let len = record.len;
        let used = st.active_bytes();
        if st.reroll || used > SEGMENT_HEADER_LEN && used + len > self.config.segment_size {
            self.roll(st)?;
        }
        // Every segment this store writes to was created with its salt.
        debug_assert_eq!(st.active.seed, self.seed);
        let offset = st.active_bytes();
        if len < DIRECT_WRITE {
            record.encode_meta(self.seed, &mut st.buf);
            st.buf.extend_from_slice(record.value);
            self.account(st, len);
            if st.buf.len() >= BUFFER {
                self.write_buffer(st)?;
            }
        } else {
            self.write_buffer(st)?;
            let mut meta = Vec::with_capacity(record::MAX_HEADER_LEN + record.key.len());
            record.encode_meta(self.seed, &mut meta);
            let file = &st.active.file;
            let written = file
                .write_at(&meta, offset)
                .and_then(|()| file.write_at(record.value, offset + meta.len() as u64));
            if let Err(e) = written {
                let _ = file.truncate(offset);
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                return Err(Error::io("writing", &self.storage.path(st.active.id), e));
            }
            st.buf_at = offset + len;
            st.active.written.store(st.buf_at, Ordering::Release);
            self.account(st, len);
        }
        Ok((st.active.id, offset as u32, len as u32))
    }

    /// Counts `len` bytes appended to the active segment (whose own size is derived: see
    /// [`State::active_bytes`]).
    fn account(&self, st: &mut State, len: u64) {
        st.disk_bytes += len;
        st.dirty = true;
    }

    /// Writes the buffer to the active segment's file. On failure the buffered records are
    /// lost: the file is cut back, and index entries pointing into them are dropped.
    fn write_buffer(&self, st: &mut State) -> Result<()> {
        if st.buf.is_empty() {
            return Ok(());
        }
        let active = st.active.clone();
        match active.file.write_at(&st.buf, st.buf_at) {
            Ok(()) => {
                st.buf_at += st.buf.len() as u64;
                active.written.store(st.buf_at, Ordering::Release);
                st.buf.clear();
                Ok(())
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                let _ = active.file.truncate(st.buf_at);
                st.diverged = true;
                let lost = st.buf.len() as u64;
                st.buf.clear();
                st.disk_bytes -= lost;
                let cut = st.buf_at;
                let State { log, tags, .. } = &mut *st;
                if let Some(info) = log.back_mut() {
                    info.puts.retain(|&(hash, offset)| {
                        if u64::from(offset) < cut {
                            return true;
                        }
                        if self.index.remove_at(hash, active.id, offset).is_some() {
                            tags.forget(hash);
                        }
                        false
                    });
                }
                Err(Error::io("writing", &self.storage.path(active.id), e))
            }
        }
    }

    /// Seals the active segment and starts a new one.
    fn roll(&self, st: &mut State) -> Result<()> {
        self.write_buffer(st)?;
        st.settle_active_bytes();
        let sealed = st.active.clone();
        self.start_segment(st)?;
        let dirty = std::mem::take(&mut st.dirty);
        let failed = std::mem::take(&mut st.reroll);
        // A segment whose sync failed is not worth syncing again: what it lost stays lost, and
        // a seal would claim otherwise.
        if dirty && !failed {
            st.unsynced.push(sealed);
        }
        Ok(())
    }

    /// Creates the next segment file and makes it the active one.
    pub(super) fn start_segment(&self, st: &mut State) -> Result<()> {
        let id = st.next_id;
        let path = self.storage.path(id);
        let header = SegmentHeader {
            id,
            salt: self.salt,
        };
        let created = self.storage.create(id).and_then(|file| {
            file.write_at(&header.encode(), 0).inspect_err(|_| {
                let _ = self.storage.remove(id);
            })?;
            Ok(file)
        });
        let file = created.map_err(|e| {
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            Error::io("creating", &path, e)
        })?;
        let segment = Arc::new(Segment {
            id,
            seed: header.seed(),
            file,
            written: AtomicU64::new(SEGMENT_HEADER_LEN),
        });
        self.segments.write().insert(id, segment.clone());
        st.next_id = id.checked_add(1).ok_or_else(|| {
            Error::InvalidConfig("segment ids exhausted; invalidate_all to restart them".into())
        })?;
        st.log.push_back(SegInfo {
            id,
            bytes: SEGMENT_HEADER_LEN,
            puts: Vec::new(),
        });
        st.disk_bytes += SEGMENT_HEADER_LEN;
        st.active = segment;
        st.buf_at = SEGMENT_HEADER_LEN;
        st.dir_dirty = true;
        Ok(())
    }

    /// Writes out the buffer and syncs the segments with unsynced writes (and the directory,
    /// if files were created since its last sync).
    pub(super) fn sync(&self, st: &mut State) -> Result<()> {
        self.write_buffer(st)?;
        let mut failed = None;
        for segment in std::mem::take(&mut st.unsynced) {
            match segment.file.sync() {
                Ok(()) => self.seal(st, &segment),
                Err(e) => {
                    self.counters.sync_errors.fetch_add(1, Ordering::Relaxed);
                    st.diverged = true;
                    failed.get_or_insert(Error::io("syncing", &self.storage.path(segment.id), e));
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if st.dirty {
            if let Err(e) = st.active.file.sync() {
                self.counters.sync_errors.fetch_add(1, Ordering::Relaxed);
                st.reroll = true;
                st.diverged = true;
                return Err(Error::io("syncing", &self.storage.path(st.active.id), e));
            }
            st.dirty = false;
        }
        if st.dir_dirty {
            self.sync_dir();
            st.dir_dirty = false;
        }
        Ok(())
    }

    /// Ends `segment`, whose records have all been synced, with a seal record: replay then
    /// trusts its records without reading their values. (The seal itself need not be synced:
    /// if it reached the disk, the sync before it had completed.)
    fn seal(&self, st: &mut State, segment: &Segment) {
        let Some(info) = st.log.iter_mut().find(|info| info.id == segment.id) else {
            return; // evicted meanwhile
        };
        let mut seal = Vec::with_capacity(record::FIXED_HEADER_LEN);
        record::encode(&mut seal, segment.seed, Kind::Seal, &[], &[], &[], None);
        let at = segment.written.load(Ordering::Acquire);
        if segment.file.write_at(&seal, at).is_ok() {
            let len = seal.len() as u64;
            segment.written.store(at + len, Ordering::Release);
            st.disk_bytes += len;
            if st.active.id == segment.id {
                st.buf_at += len;
            } else {
                info.bytes += len;
            }
        }
    }

    pub(super) fn sync_invalidation(&self, st: &mut State) -> Result<()> {
        if self.config.durable_invalidation || self.config.sync == SyncPolicy::Always {
            self.sync(st)?;
        }
        Ok(())
    }

    pub(super) fn sync_dir(&self) {
        if self.storage.sync_dir().is_err() {
            self.counters.sync_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn delete_segment(&self, id: u32) {
        if self.storage.remove(id).is_err() {
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The periodic sync of [`SyncPolicy::Interval`]: the fdatasync runs outside the lock.
    fn sync_interval(&self) {
        let (mut segments, dir) = {
            let mut st = self.state.lock();
            if !st.dirty && st.unsynced.is_empty() || self.write_buffer(&mut st).is_err() {
                return;
            }
            let mut segments = std::mem::take(&mut st.unsynced);
            if std::mem::take(&mut st.dirty) {
                segments.push(st.active.clone());
            }
            (segments, std::mem::take(&mut st.dir_dirty))
        };
        for segment in segments.drain(..) {
            let synced = segment.file.sync().is_ok();
            let mut st = self.state.lock();
            if st.active.id == segment.id {
                if !synced {
                    st.reroll = true;
                }
            } else if synced {
                self.seal(&mut st, &segment);
            }
            if !synced {
                self.counters.sync_errors.fetch_add(1, Ordering::Relaxed);
                st.diverged = true;
            }
        }
        if dir {
            self.sync_dir();
        }
    }
}

impl Drop for Inner {
    /// A clean shutdown: sync everything and seal the active segment, so reopening reads no
    /// values.
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if self.sync(&mut st).is_ok() && !st.dirty {
            let active = st.active.clone();
            self.seal(&mut st, &active);
        }
    }
}

/// The background thread of [`SyncPolicy::Interval`]: runs [`Inner::sync_interval`] every
/// interval. Dropping it (with the last `DiskStore`) stops and joins the thread.
#[derive(Default)]
pub(super) struct Syncer {
    thread: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
}

impl Syncer {
    pub(super) fn spawn(store: Weak<Inner>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("strata-disk-sync".into())
            .spawn(move || {
                loop {
                    std::thread::park_timeout(every);
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    match store.upgrade() {
                        Some(inner) => inner.sync_interval(),
                        None => return,
                    }
                }
            });
        // Without the thread, writes are still synced on roll, on `flush` and on drop.
        Self {
            thread: spawned.ok().map(|handle| (handle, stop)),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        if let Some((handle, stop)) = self.thread.take() {
            stop.store(true, Ordering::Release);
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}
