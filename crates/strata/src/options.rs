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

/// Appends `tags`, then `payload`, to `out`: a u16 count, each tag as a u16 length and its
/// UTF-8 bytes, then the payload. For values kept with their tags in a store that holds
/// bytes only (a Redis value, the server's disk records); [`decode_tagged`] reads it back.
///
/// ```
/// use strata::{Tag, decode_tagged, encode_tagged};
///
/// let mut bytes = Vec::new();
/// encode_tagged(&[Tag::from("user:42")], b"payload", &mut bytes)?;
/// let (tags, payload) = decode_tagged(&bytes).expect("well formed");
/// assert_eq!((tags[0].as_ref(), payload), ("user:42", &b"payload"[..]));
/// # Ok::<(), strata::Error>(())
/// ```
///
/// # Errors
/// [`Error::TooLarge`](crate::Error::TooLarge) for more than 65,535 tags or a tag over
/// 64 KiB (`out` is then left as it was).
pub fn encode_tagged(tags: &[Tag], payload: &[u8], out: &mut Vec<u8>) -> crate::Result<()> {
    let too_large = |what, len: usize| crate::Error::TooLarge {
        what,
        len: len as u64,
        max: u64::from(u16::MAX),
    };
    let count = u16::try_from(tags.len()).map_err(|_| too_large("tag count", tags.len()))?;
    if let Some(tag) = tags.iter().find(|t| t.len() > usize::from(u16::MAX)) {
        return Err(too_large("tag", tag.len()));
    }
    out.reserve(2 + tags.iter().map(|t| 2 + t.len()).sum::<usize>() + payload.len());
    out.extend_from_slice(&count.to_le_bytes());
    for tag in tags {
        out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        out.extend_from_slice(tag.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// Reads what [`encode_tagged`] wrote: the tags and the payload, or `None` if `bytes` is not
/// well formed.
pub fn decode_tagged(bytes: &[u8]) -> Option<(Vec<Tag>, &[u8])> {
    let count = u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?);
    let mut at = 2;
    let mut tags = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let tag = std::str::from_utf8(bytes.get(at + 2..at + 2 + len)?).ok()?;
        tags.push(Tag::from(tag));
        at += 2 + len;
    }
    Some((tags, &bytes[at..]))
}
