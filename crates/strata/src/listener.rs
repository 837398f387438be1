//! Why entries leave the cache, and the listener that hears about it.

use std::sync::Arc;

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted by the policy to stay within capacity, or too heavy to be stored at all.
    Size,
    /// Its time-to-live or time-to-idle passed.
    Expired,
    /// Removed by `remove`, `invalidate_all` or `retain`/`invalidate_if`.
    Explicit,
    /// Its value was replaced by a later insert of the same key.
    Replaced,
    /// Removed by `invalidate_tag` for a tag it carried.
    Tag,
}

impl RemovalCause {
    /// True for removals the cache decided on (size, expiry), false for ones the user asked for.
    pub fn was_evicted(self) -> bool {
        matches!(self, Self::Size | Self::Expired)
    }
}

/// Called with each removed entry, after the cache released its internal locks.
pub(crate) type Listener<K, V> = Arc<dyn Fn(K, V, RemovalCause) + Send + Sync>;

/// Called with each removed entry while the cache still holds the lock that removed it.
pub(crate) type SyncListener<K, V> = Arc<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;
