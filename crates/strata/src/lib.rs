//! Strata: a caching system. This crate is its core, the concurrent in-memory tier.
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
//! - Eviction by adaptive W-TinyLFU: a frequency sketch decides admission, and a hill climber
//!   sizes the admission window to the workload (see `docs/architecture.md`).
//! - Per-entry TTL, a default TTL, time-to-idle; expired entries are never returned.
//! - Tags: `invalidate_tag` drops every entry that carries a tag.
//! - An eviction listener with the cause; statistics always on.
//! - Reads take a shard's lock shared and bump an atomic counter: they scale across threads.
#![forbid(unsafe_code)]

mod clock;
mod coalesce;
mod error;
mod listener;
mod loader;
mod memory;
mod options;
mod policy;
mod stats;
mod sync;

pub use clock::{Clock, MockClock, SystemClock};
pub use error::{Error, Result};
pub use listener::RemovalCause;
pub use loader::{Loader, LoaderBuilder};
pub use memory::{Cache, CacheBuilder, DefaultHashBuilder};
pub use options::{InsertOptions, Tag};
pub use stats::CacheStats;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
