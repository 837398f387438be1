//! A fault-injecting, crashable in-memory [`Storage`] for the model tests.
//!
//! Each file keeps its durable bytes and the operations since its last successful sync. A
//! write may fail (after writing a random prefix: a torn write), a sync may fail (and then,
//! as Linux does, some pending writes are lost for good while the page cache still shows them),
//! and [`FaultyDisk::crash`] returns the disk as power loss would leave it: each pending
//! operation applied, dropped, or torn into garbage, independently; deleted files whose
//! deletion was never made durable come back.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::disk::storage::{SegmentFile, Storage};

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

#[derive(Debug, Clone, Default)]
struct FileState {
    /// What survives a crash for sure.
    durable: Vec<u8>,
    /// What reads see: `durable` with `pending` applied.
    current: Vec<u8>,
    pending: Vec<Op>,
}

fn apply(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(at, data) => {
            let end = *at as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*at as usize..end].copy_from_slice(data);
        }
        Op::Truncate(len) => bytes.truncate(*len as usize),
    }
}

/// Probabilities of injected failures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Faults {
    pub(crate) write: f64,
    pub(crate) sync: f64,
}

struct DiskState {
    files: BTreeMap<u32, FileState>,
    /// Deleted, but the deletion is not durable until the directory is synced.
    deleted: BTreeMap<u32, FileState>,
    rng: StdRng,
    faults: Faults,
    /// Set by `crash`: the old handles fail everything from then on.
    dead: bool,
    /// Injected failures so far.
    injected: u64,
}

/// A simulated disk shared by the store's handles.
#[derive(Clone)]
pub(crate) struct FaultyDisk(Arc<Mutex<DiskState>>);

fn dead() -> io::Error {
    io::Error::other("disk crashed")
}

impl FaultyDisk {
    pub(crate) fn new(seed: u64, faults: Faults) -> Self {
        Self(Arc::new(Mutex::new(DiskState {
            files: BTreeMap::new(),
            deleted: BTreeMap::new(),
            rng: StdRng::seed_from_u64(seed),
            faults,
            dead: false,
            injected: 0,
        })))
    }

    /// A `Storage` on this disk.
    pub(crate) fn storage(&self) -> Box<dyn Storage> {
        Box::new(self.clone())
    }

    pub(crate) fn injected(&self) -> u64 {
        self.0.lock().injected
    }

    /// Power loss: this disk goes dead; the returned one holds what survived.
    pub(crate) fn crash(&self) -> Self {
        let mut st = self.0.lock();
        st.dead = true;
        let faults = st.faults;
        let seed = st.rng.random();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut files = BTreeMap::new();
        let survivors = st.files.iter().chain(st.deleted.iter());
        for (&id, file) in survivors {
            let mut bytes = file.durable.clone();
            for op in &file.pending {
                match rng.random_range(0..4) {
                    0 => {}
                    1 | 2 => apply(&mut bytes, op),
                    _ => {
                        if let Op::Write(at, data) = op {
                            // Torn: a prefix reached the disk, then garbage.
                            let cut = rng.random_range(0..=data.len());
                            let mut torn = data[..cut].to_vec();
                            torn.extend((cut..data.len()).map(|_| rng.random::<u8>()));
                            apply(&mut bytes, &Op::Write(*at, torn));
                        }
                    }
                }
            }
            files.insert(
                id,
                FileState {
                    durable: bytes.clone(),
                    current: bytes,
                    pending: Vec::new(),
                },
            );
        }
        Self(Arc::new(Mutex::new(DiskState {
            files,
            deleted: BTreeMap::new(),
            rng,
            faults,
            dead: false,
            injected: st.injected,
        })))
    }
}

impl Storage for FaultyDisk {
    fn list(&self) -> io::Result<Vec<u32>> {
        let st = self.0.lock();
        if st.dead {
            return Err(dead());
        }
        Ok(st.files.keys().copied().collect())
    }

    fn create(&self, id: u32) -> io::Result<Arc<dyn SegmentFile>> {
        let mut st = self.0.lock();
        if st.dead {
            return Err(dead());
        }
        if st.files.contains_key(&id) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        st.deleted.remove(&id);
        st.files.insert(id, FileState::default());
        Ok(Arc::new(FaultyFile {
            disk: self.clone(),
            id,
        }))
    }

    fn open(&self, id: u32) -> io::Result<Arc<dyn SegmentFile>> {
        let st = self.0.lock();
        if st.dead || !st.files.contains_key(&id) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(Arc::new(FaultyFile {
            disk: self.clone(),
            id,
        }))
    }

    fn remove(&self, id: u32) -> io::Result<()> {
        let mut st = self.0.lock();
        if st.dead {
            return Err(dead());
        }
        if let Some(file) = st.files.remove(&id) {
            st.deleted.insert(id, file);
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.0.lock();
        if st.dead {
            return Err(dead());
        }
        st.deleted.clear();
        Ok(())
    }

    fn path(&self, id: u32) -> PathBuf {
        PathBuf::from(format!("faulty/{id:08x}.seg"))
    }
}

struct FaultyFile {
    disk: FaultyDisk,
    id: u32,
}

impl FaultyFile {
    fn with<T>(&self, f: impl FnOnce(&mut DiskState, u32) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.disk.0.lock();
        if st.dead {
            return Err(dead());
        }
        f(&mut st, self.id)
    }
}

impl SegmentFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|st, id| {
            let file = st
                .files
                .get(&id)
                .or(st.deleted.get(&id))
                .ok_or(io::ErrorKind::NotFound)?;
            let bytes = file.current.get(offset as usize..).unwrap_or_default();
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            Ok(n)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|st, id| {
            let fail = st.rng.random_bool(st.faults.write);
            let cut = if fail {
                st.rng.random_range(0..=buf.len())
            } else {
                buf.len()
            };
            if fail {
                st.injected += 1;
            }
            let file = st.files.get_mut(&id).ok_or(io::ErrorKind::NotFound)?;
            let op = Op::Write(offset, buf[..cut].to_vec());
            apply(&mut file.current, &op);
            file.pending.push(op);
            if fail {
                return Err(io::ErrorKind::StorageFull.into());
            }
            Ok(())
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.with(|st, id| {
            let fail = st.rng.random_bool(st.faults.sync);
            let mut keep = Vec::new();
            if fail {
                st.injected += 1;
                let n = st.files.get(&id).map_or(0, |f| f.pending.len());
                keep = (0..n).map(|_| st.rng.random_bool(0.5)).collect();
            }
            let file = st.files.get_mut(&id).ok_or(io::ErrorKind::NotFound)?;
            if fail {
                // Some writes reach the disk, the others are lost for good; reads still see
                // them all (the pages are marked clean).
                for (op, keep) in std::mem::take(&mut file.pending).into_iter().zip(keep) {
                    if keep {
                        apply(&mut file.durable, &op);
                    }
                }
                return Err(io::Error::other("injected EIO on fsync"));
            }
            // Only what was pending: writes lost by an earlier failed sync stay lost.
            for op in std::mem::take(&mut file.pending) {
                apply(&mut file.durable, &op);
            }
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|st, id| {
            Ok(st
                .files
                .get(&id)
                .ok_or(io::ErrorKind::NotFound)?
                .current
                .len() as u64)
        })
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|st, id| {
            let file = st.files.get_mut(&id).ok_or(io::ErrorKind::NotFound)?;
            let op = Op::Truncate(len);
            apply(&mut file.current, &op);
            file.pending.push(op);
            Ok(())
        })
    }
}
