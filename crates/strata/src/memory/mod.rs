//! The in-memory tier.

mod builder;
mod cache;
mod removals;
mod shard;

pub use builder::CacheBuilder;
pub use cache::{Cache, DefaultHashBuilder};
