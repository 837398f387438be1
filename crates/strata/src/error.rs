//! The crate's error type.

use std::io;
use std::path::{Path, PathBuf};

/// Errors returned by Strata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `CacheBuilder::build` was called without `max_capacity`: every cache must be bounded.
    #[error("the cache needs a max_capacity (entries, or total weight with a weigher)")]
    MissingCapacity,
    /// A duration given to a builder is zero or too long to represent in nanoseconds.
    #[error("{what} must be between 1ns and ~584 years, got {given:?}")]
    InvalidDuration {
        /// Which setting.
        what: &'static str,
        /// The value given.
        given: std::time::Duration,
    },
    /// The shard count given to the builder is zero or not a power of two.
    #[error("shards must be a power of two ≥ 1, got {0}")]
    InvalidShards(usize),
    /// A pinned W-TinyLFU window (`EvictionPolicy::tiny_lfu_with_window`) is not a fraction
    /// of capacity.
    #[error("a W-TinyLFU window must be a fraction of capacity in 0..=1, got {0}")]
    InvalidWindow(f64),
    /// A disk-tier setting is out of range.
    #[error("invalid disk tier configuration: {0}")]
    InvalidConfig(String),
    /// Another store (in this process or another) has the directory open.
    #[error("{} is in use by another Strata store (its LOCK file is held)", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The directory holds data of another format version.
    #[error("{} was written in format version {found}; this build reads version {supported}", path.display())]
    IncompatibleFormat {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The device is full (ENOSPC or a quota). The write was not stored; the store stays
    /// usable and consistent, and later writes succeed once space is freed.
    #[error("no space left while {op} {}", path.display())]
    DiskFull {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("I/O error while {op} {}: {source}", path.display())]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A key longer than the disk tier's format allows.
    #[error("key of {len} bytes is longer than the limit of {max}")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value larger than the configured `max_value_size`, or a tag longer than the format
    /// allows.
    #[error("{what} of {len} bytes is larger than the limit of {max}")]
    TooLarge {
        /// "value" or "tag".
        what: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A key or value could not be serialized.
    #[error("could not encode the {what}: {reason}")]
    Encode {
        /// "key" or "value".
        what: &'static str,
        /// The serializer's message.
        reason: String,
    },
}

impl Error {
    /// An I/O error, as [`Error::DiskFull`] when the device is full.
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        if source.kind() == io::ErrorKind::StorageFull
            || source.kind() == io::ErrorKind::QuotaExceeded
        {
            Self::DiskFull { op, path }
        } else {
            Self::Io { op, path, source }
        }
    }
}

/// `Result` with Strata's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
