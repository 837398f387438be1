//! Configuration of the disk tier.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
#[cfg(test)]
use crate::disk::storage::Storage;
use crate::disk::storage::{FsStorage, OpenError};
use crate::disk::store::DiskStore;
use crate::error::{Error, Result};

/// When the disk tier makes its writes durable (`fdatasync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never sync: the OS writes data back when it likes (a crash or power loss may lose any
    /// write not yet written back). Clean shutdown still syncs.
    Never,
    /// Sync at most this long after a write, from a background thread. A crash loses at most
    /// the writes of the last interval.
    Interval(Duration),
    /// Sync before every write returns: nothing acknowledged is ever lost.
    Always,
}

impl Default for SyncPolicy {
    /// `Interval(1 s)`: a cache can afford to lose its last second of inserts (they are misses,
    /// recomputed on demand), and batching makes a write cost a memory copy instead of an
    /// `fdatasync`. Removals and invalidations are synced on return regardless; see
    /// [`DiskBuilder::durable_invalidation`].
    fn default() -> Self {
        Self::Interval(Duration::from_secs(1))
    }
}

/// Builds a [`DiskStore`] over a directory.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = strata::DiskStore::builder(dir.path())
///     .max_bytes(64 << 20)
///     .sync(strata::SyncPolicy::Always)
///     .open()?;
/// store.insert(b"k", b"v")?;
/// assert_eq!(store.get(b"k")?, Some(b"v".to_vec()));
/// # Ok::<(), strata::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct DiskBuilder {
    dir: PathBuf,
    max_bytes: Option<u64>,
    segment_size: Option<u64>,
    max_value_size: Option<u64>,
    sync: SyncPolicy,
    durable_invalidation: bool,
    clock: Arc<dyn Clock>,
}

/// Largest segment the builder accepts (offsets are 32-bit).
const MAX_SEGMENT: u64 = 1 << 30;
/// Smallest total size the builder accepts.
const MIN_BYTES: u64 = 64 << 10;
/// Default largest value.
const DEFAULT_MAX_VALUE: u64 = 64 << 20;
/// Largest value the format can hold, leaving room for its key and header in a u32 length.
const FORMAT_MAX_VALUE: u64 = (u32::MAX as u64) - (1 << 20);

/// Validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_bytes: u64,
    pub(crate) segment_size: u64,
    pub(crate) max_value_size: u64,
    pub(crate) sync: SyncPolicy,
    pub(crate) durable_invalidation: bool,
    pub(crate) clock: Arc<dyn Clock>,
}

impl DiskBuilder {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            max_bytes: None,
            segment_size: None,
            max_value_size: None,
            sync: SyncPolicy::default(),
            durable_invalidation: true,
            clock: Arc::new(SystemClock::default()),
        }
    }

    /// The bound on bytes on disk (required). The store stays within it plus one segment
    /// (the one being written), whose size is [`segment_size`](Self::segment_size).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// The size of a log segment, the unit of eviction (default: `max_bytes / 16`, between
    /// 64 KiB and 64 MiB). A value larger than a segment gets a segment of its own.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = Some(bytes);
        self
    }

    /// The largest value accepted (default: 64 MiB, or `max_bytes / 4` if smaller); larger
    /// inserts fail with [`Error::TooLarge`].
    pub fn max_value_size(mut self, bytes: u64) -> Self {
        self.max_value_size = Some(bytes);
        self
    }

    /// When writes are made durable (default [`SyncPolicy::Interval`] of 1 s).
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Whether `remove`, `invalidate_tag` and `invalidate_all` sync before returning, whatever
    /// the [`SyncPolicy`] (default true): an acknowledged invalidation then survives a crash,
    /// so a restarted process never serves data that was invalidated before the crash.
    pub fn durable_invalidation(mut self, on: bool) -> Self {
        self.durable_invalidation = on;
        self
    }

    /// The clock used for TTLs (default: the system clock). Expiry times are stored as wall
    /// time: the clock's reading is added to the wall time at which the store was opened.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn config(&self) -> Result<Config> {
        let invalid = |reason: String| Err(Error::InvalidConfig(reason));
        let Some(max_bytes) = self.max_bytes else {
            return invalid("the disk tier needs max_bytes".into());
        };
        if max_bytes < MIN_BYTES {
            return invalid(format!(
                "max_bytes must be at least {MIN_BYTES}, got {max_bytes}"
            ));
        }
        let segment_size = self
            .segment_size
            .unwrap_or((max_bytes / 16).clamp(64 << 10, 64 << 20));
        if !(4096..=MAX_SEGMENT).contains(&segment_size) || segment_size > max_bytes {
            return invalid(format!(
                "segment_size must be between 4 KiB and min(1 GiB, max_bytes), got {segment_size}"
            ));
        }
        let max_value_size = self
            .max_value_size
            .unwrap_or(DEFAULT_MAX_VALUE.min(max_bytes / 4));
        if max_value_size == 0 || max_value_size > FORMAT_MAX_VALUE || max_value_size > max_bytes {
            return invalid(format!(
                "max_value_size must be between 1 and min({FORMAT_MAX_VALUE}, max_bytes), got {max_value_size}"
            ));
        }
        if let SyncPolicy::Interval(every) = self.sync {
            crate::memory::nanos("sync interval", every)?;
        }
        Ok(Config {
            max_bytes,
            segment_size,
            max_value_size,
            sync: self.sync,
            durable_invalidation: self.durable_invalidation,
            clock: self.clock.clone(),
        })
    }

    /// Opens the store, creating the directory if needed and recovering what it holds.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for bad settings, [`Error::Locked`] if another store (in this
    /// process or another) has the directory open, [`Error::IncompatibleFormat`] for data
    /// written by a newer format, [`Error::Io`] / [`Error::DiskFull`] if the directory cannot
    /// be created or read.
    pub fn open(self) -> Result<DiskStore> {
        let config = self.config()?;
        let storage = FsStorage::open(&self.dir).map_err(|e| match e {
            OpenError::Locked => Error::Locked {
                path: self.dir.clone(),
            },
            OpenError::Io(e) => Error::io("opening", &self.dir, e),
        })?;
        DiskStore::open_with(Box::new(storage), config)
    }

    /// Opens a store on any [`Storage`] (tests use a fault-injecting one).
    #[cfg(test)]
    pub(crate) fn open_on(self, storage: Box<dyn Storage>) -> Result<DiskStore> {
        DiskStore::open_with(storage, self.config()?)
    }
}
