//! Per-insert options: a time-to-live and tags.

use std::sync::Arc;
use std::time::Duration;

/// A tag names a group of entries to invalidate together, e.g. `"user:42"`.
pub type Tag = Arc<str>;

/// Options for one insert: its own TTL (overriding the cache's default) and its tags.
///
/// ```
/// use std::time::Duration;
/// use strata::{Cache, InsertOptions};
///
/// let cache = Cache::builder().max_capacity(100).build()?;
/// let opts = InsertOptions::new().ttl(Duration::from_secs(30)).tag("user:42");
/// cache.insert_with("profile:42", "Ada", &opts);
/// cache.insert_with("feed:42", "[...]", &InsertOptions::new().tag("user:42"));
/// cache.invalidate_tag("user:42");
/// assert!(cache.get("profile:42").is_none() && cache.get("feed:42").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct InsertOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) tags: Vec<Tag>,
}

impl InsertOptions {
    /// No TTL of its own (the cache's default applies) and no tags.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry expires `ttl` after this insert.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<Tag>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds several tags.
    pub fn tags<T: Into<Tag>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }
}
