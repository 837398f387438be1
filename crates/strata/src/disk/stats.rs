//! The disk tier's statistics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a [`DiskStore`](crate::DiskStore) since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskStats {
    /// Reads that returned a value.
    pub hits: u64,
    /// Reads that found nothing (including expired and damaged entries).
    pub misses: u64,
    /// Values written by `insert`.
    pub inserts: u64,
    /// Entries removed by `remove`, `invalidate_tag` and `invalidate_all`.
    pub removals: u64,
    /// Entries dropped with the oldest segment to stay within `max_bytes`.
    pub evictions: u64,
    /// Entries found expired (on read, or when their segment was dropped).
    pub expirations: u64,
    /// Entries read since they were written, rewritten at the head of the log instead of
    /// being evicted with their segment.
    pub reinsertions: u64,
    /// Reads that found a damaged record (checksum mismatch), served as misses.
    pub corrupt_reads: u64,
    /// Failed reads (I/O errors, returned to the caller).
    pub read_errors: u64,
    /// Values the typed layer could not decode (another type or encoding version), and keys
    /// it could not encode; served as misses.
    pub decode_errors: u64,
    /// Failed writes (each failed the operation that caused it).
    pub write_errors: u64,
    /// Failed syncs.
    pub sync_errors: u64,
    /// Entries in the index now.
    pub entries: u64,
    /// Bytes in the segment files now.
    pub disk_bytes: u64,
    /// Entries restored when the store was opened.
    pub recovered_entries: u64,
    /// Bytes skipped when the store was opened: torn tails left by a crash, damaged records
    /// and unreadable segments.
    pub recovery_skipped_bytes: u64,
}

impl DiskStats {
    /// Hits ÷ reads, or 0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        match self.hits + self.misses {
            0 => 0.0,
            n => self.hits as f64 / n as f64,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) removals: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) reinsertions: AtomicU64,
    pub(crate) corrupt_reads: AtomicU64,
    pub(crate) read_errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) sync_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> DiskStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DiskStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            removals: get(&self.removals),
            evictions: get(&self.evictions),
            expirations: get(&self.expirations),
            reinsertions: get(&self.reinsertions),
            corrupt_reads: get(&self.corrupt_reads),
            read_errors: get(&self.read_errors),
            decode_errors: get(&self.decode_errors),
            write_errors: get(&self.write_errors),
            sync_errors: get(&self.sync_errors),
            ..DiskStats::default()
        }
    }
}
