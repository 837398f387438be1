//! The disk tier: persistent, bounded in bytes, crash-safe.
//!
//! [`DiskStore`] stores bytes; [`DiskCache`] adds typed keys and values (serde) and
//! `get_with`. The design (a log of checksummed records in segment files, an in-memory index,
//! FIFO eviction of whole segments with a second chance for entries read since written) and
//! the crash guarantee are described in `docs/disk-tier.md`.

mod builder;
mod index;
mod record;
mod recovery;
mod stats;
mod storage;
mod store;
mod typed;

#[cfg(test)]
mod faulty;
#[cfg(test)]
mod model_tests;

pub use builder::{DiskBuilder, SyncPolicy};
pub use stats::DiskStats;
pub use store::{DiskStore, RecordRef};
pub use typed::DiskCache;
