//! The in-memory tier.

mod builder;
mod cache;
pub(crate) mod removals;
pub(crate) mod shard;

pub use builder::CacheBuilder;
pub use cache::{Cache, DefaultHashBuilder};
