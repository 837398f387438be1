//! Strata's distributed tier: a Redis (standalone or Cluster) shared by every process, and a
//! [`TieredCache`] that puts Strata's memory and disk tiers in front of it and keeps them
//! coherent across processes.
//!
//! - [`RedisTier`]: `get` (with the remaining TTL), `insert` with TTL (`SET … PX`) and tags,
//!   `remove`, `invalidate_tag`, `invalidate_all` of its own key prefix (never `FLUSHALL`), and
//!   leases (`SET NX PX` with a token) for cross-process stampede protection.
//! - [`TieredCache`]: memory → disk → Redis, any subset; read-through with promotion that
//!   keeps the remaining TTL, write-through, invalidation cascading through every tier.
//!   Other processes learn of changes through RESP3 client tracking (standalone) or a pub/sub
//!   channel (Cluster) and drop their local copies. If Redis is down, reads and writes go on
//!   from the local tiers (errors counted, logged at most once per interval); after a
//!   reconnect the local tiers are flushed, since messages may have been lost.
//!
//! Without Redis it is a local two-tier cache:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), strata_redis::Error> {
//! use strata_redis::TieredCache;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let disk = strata::DiskStore::builder(dir.path()).max_bytes(64 << 20).open()?;
//! let pages: TieredCache<String, String> =
//!     TieredCache::builder().memory(1000).disk(disk).build().await?;
//! let html = pages.get_with("/about".into(), async { "<h1>About</h1>".into() }).await?;
//! assert_eq!(pages.get(&"/about".into()).await?, Some(html));
//! # Ok(()) }
//! ```
//!
//! With a shared Redis behind:
//!
//! ```no_run
//! # async fn demo() -> Result<(), strata_redis::Error> {
//! use strata_redis::{RedisConfig, TieredCache};
//!
//! let config = RedisConfig::standalone("redis://127.0.0.1:6379").prefix("myapp");
//! let cache: TieredCache<String, String> =
//!     TieredCache::builder().memory(10_000).redis(config).build().await?;
//! cache.insert_with(&"/u/42".into(), "<html>".into(), None, &["user:42".into()]).await?;
//! cache.invalidate_tag("user:42").await?; // every process drops its copies
//! # Ok(()) }
//! ```

mod codec;
mod coherence;
mod config;
mod error;
mod stats;
mod tier;
mod tiered;

pub use codec::{Codec, Json, Lz4, Postcard};
pub use config::RedisConfig;
pub use error::{Error, Result};
pub use stats::TierStats;
pub use tier::{Lease, RedisTier};
pub use tiered::{TieredBuilder, TieredCache, TieredStats};
