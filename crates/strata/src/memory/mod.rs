//! The in-memory tier.

mod adaptation;
mod builder;
mod cache;
mod loading;
pub(crate) mod prefetch;
pub(crate) mod removals;
pub(crate) mod shard;

pub use builder::CacheBuilder;
pub(crate) use builder::nanos;
pub use cache::{Cache, DefaultHashBuilder};
