//! The crate's error type.

/// Errors of the Redis tier and the tiered cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis failed or could not be reached (only returned in strict mode, or while
    /// connecting to a Cluster that is down).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A local tier failed.
    #[error("local tier: {0}")]
    Local(#[from] strata::Error),
    /// A key or value could not be serialized.
    #[error("could not encode the {what}: {reason}")]
    Encode {
        /// "key" or "value".
        what: &'static str,
        /// The serializer's message.
        reason: String,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The computation of a value (`try_get_with`) failed; every caller that waited for it
    /// gets the same error.
    #[error("the computation of the value failed: {0}")]
    Load(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
