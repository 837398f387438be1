//! The crate's error type.

/// Errors returned by Strata.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `CacheBuilder::build` was called without `max_capacity`: every cache must be bounded.
    #[error("the cache needs a max_capacity (entries, or total weight with a weigher)")]
    MissingCapacity,
    /// A duration given to the builder is zero or too long to represent in nanoseconds.
    #[error("{what} must be between 1ns and ~584 years, got {given:?}")]
    InvalidDuration {
        /// Which setting.
        what: &'static str,
        /// The value given.
        given: std::time::Duration,
    },
    /// The shard count given to the builder is zero or not a power of two.
    #[error("shards must be a power of two ≥ 1, got {0}")]
    InvalidShards(usize),
}

/// `Result` with Strata's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
