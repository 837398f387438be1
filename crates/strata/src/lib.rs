//! Strata: a caching system. This crate is its core: the concurrent in-memory tier, the
//! persistent disk tier, and memoization on top of them.
//!
//! ```
//! use std::time::Duration;
//! use strata::{Cache, InsertOptions};
//!
//! let cache = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(300))
//!     .build()?;
//! cache.insert_with("user:42:profile", "Ada", &InsertOptions::new().tag("user:42"));
//! assert_eq!(cache.get("user:42:profile"), Some("Ada"));
//! cache.invalidate_tag("user:42"); // the user changed: drop everything derived from them
//! assert_eq!(cache.get("user:42:profile"), None);
//! println!("hit ratio {:.2}", cache.stats().hit_ratio());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The in-memory tier
//! - Bounded by entry count or by total weight (a weigher); never above its bound.
//! - Eviction by adaptive W-TinyLFU: a frequency sketch decides admission (size-aware for
//!   weighted caches), and miniature simulations pick the policy's shape for the workload
//!   (see `docs/memory-tier.md`).
//! - Per-entry TTL, a default TTL, time-to-idle; expired entries are never returned.
//! - Tags: `invalidate_tag` drops every entry that carries a tag.
//! - An eviction listener with the cause; statistics always on.
//! - Reads take a shard's lock shared and bump an atomic counter: they scale across threads.
//!
//! # The disk tier
//! [`DiskStore`] (bytes) and [`DiskCache`] (serde keys and values, `get_with`) persist across
//! restarts within a byte bound. Every record is checksummed and carries its key: after a
//! crash or on damaged files a read returns a value written for that key, or nothing.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let store = strata::DiskStore::builder(dir.path()).max_bytes(1 << 30).open()?;
//! store.insert(b"page:/about", b"<h1>About</h1>")?;
//! drop(store);
//! let store = strata::DiskStore::builder(dir.path()).max_bytes(1 << 30).open()?;
//! assert_eq!(store.get(b"page:/about")?, Some(b"<h1>About</h1>".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

mod clock;
mod coalesce;
mod disk;
mod error;
mod listener;
mod loader;
mod memoized;
mod memory;
mod options;
mod policy;
mod stats;
mod sync;

pub use clock::{Clock, MockClock, SystemClock};
pub use disk::{DiskBuilder, DiskCache, DiskStats, DiskStore, RecordRef, SyncPolicy};
pub use error::{Error, Result};
pub use listener::RemovalCause;
pub use loader::{Loader, LoaderBuilder};
pub use memoized::Memoized;
pub use memory::{Cache, CacheBuilder, DefaultHashBuilder};
pub use options::{InsertOptions, Tag, decode_tagged, encode_tagged};
pub use policy::eviction::EvictionPolicy;
pub use stats::{CacheInfo, CacheStats};

/// Memoizes a function in a Strata cache, with request coalescing: concurrent calls with the
/// same arguments run the body once.
///
/// Options (all optional): `capacity = N` (default 1000), `ttl = "60s"` (ms/s/m/h/d),
/// `key = expr` with `key_type = Type` (default: the tuple of all arguments, cloned),
/// `result = true` (cache only `Ok`; errors are returned, not cached; `E: Clone`),
/// `option = true` (cache only `Some`), `cache = STATIC` (use a shared
/// `LazyLock<Cache<Key, Value>>` instead of a private one). Works on `async fn` too.
///
/// Next to `f` it generates `f_cache_info()` (hits, misses, size, capacity), `f_cache_clear()`,
/// `f_invalidate(args…)` and `f_refresh(args…)`.
///
/// ```
/// #[strata::cached(capacity = 100, ttl = "10m")]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// assert_eq!(square(12), 144);
/// assert_eq!(square(12), 144);
/// let info = square_cache_info();
/// assert_eq!((info.hits, info.misses, info.size), (1, 1, 1));
/// square_cache_clear();
/// assert_eq!(square_cache_info().size, 0);
/// ```
///
/// A call that reaches the same key from inside its own computation (direct recursion on the
/// same arguments) waits for itself: like any coalesced load, that deadlocks.
pub use strata_macros::cached;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
