//! The disk tier on real files: persistence, bounds, concurrency, corruption, crashes
//! (kill -9 of a writer process) and a full file system.

mod api;
mod bounds;
mod concurrency;
mod corruption;
mod crash;
mod full_disk;
#[path = "../support/load_race.rs"]
mod load_race;
mod typed;

use std::path::Path;

use strata::{DiskBuilder, DiskStore};

/// A builder with a bound large enough for the test not to evict.
fn builder(dir: &Path) -> DiskBuilder {
    DiskStore::builder(dir).max_bytes(256 << 20)
}

/// A value that names its key, so a read can tell whose value it got.
fn value_for(key: &[u8], version: u64, len: usize) -> Vec<u8> {
    let stamp = format!("{}#{version}#", String::from_utf8_lossy(key));
    stamp.bytes().cycle().take(len.max(stamp.len())).collect()
}

/// The key a value was written for (see [`value_for`]).
fn key_of(value: &[u8]) -> &[u8] {
    let end = value.iter().position(|&b| b == b'#').unwrap_or(value.len());
    &value[..end]
}
