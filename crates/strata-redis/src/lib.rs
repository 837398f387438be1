//! Strata's distributed tier: a Redis (standalone or Cluster) shared by every process, and a
//! [`TieredCache`] that puts Strata's memory and disk tiers in front of it and keeps them
//! coherent across processes.
//!
//! - [`RedisTier`]: `get` (with the remaining TTL), `insert` with TTL (`SET … PX`) and tags,
//!   `remove`, `invalidate_tag`, `invalidate_all` of its own key prefix (never `FLUSHALL`), and
//!   leases (`SET NX PX` with a token) for cross-process stampede protection.
//! - [`TieredCache`]: memory → disk → Redis, any subset; read-through with promotion that keeps
//!   the remaining TTL, write-through, invalidation cascading through every tier and announced
//!   on a pub/sub channel so other processes drop their local copies. If Redis is down, reads
//!   and writes go on from the local tiers (errors counted, logged at most once per interval),
//!   and after a reconnect the local tiers are flushed, since messages may have been lost.
//!
//! ```no_run
//! # async fn demo() -> Result<(), strata_redis::Error> {
//! use strata_redis::{RedisConfig, TieredCache};
//!
//! let config = RedisConfig::standalone("redis://127.0.0.1:6379").prefix("myapp");
//! let cache: TieredCache<String, String> = TieredCache::builder().redis(config)
//!     .memory(10_000)
//!     .build()
//!     .await?;
//! let page = cache.get_with("/about".to_string(), async { "<h1>About</h1>".to_string() }).await?;
//! cache.invalidate_tag("pages").await?; // every process drops its copies
//! # let _ = page;
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
