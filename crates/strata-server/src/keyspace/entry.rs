//! A stored value and its disk encoding.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata::{InsertOptions, RecordRef, Tag};

use super::now_ms;
use crate::compact::CompactBytes;

/// A stored value: 40 bytes, with values up to 14 bytes inline.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: CompactBytes<14>,
    /// Unix milliseconds.
    pub(super) expires: Option<NonZeroU64>,
    pub(super) tags: Option<Arc<Vec<Tag>>>,
    /// Where the disk tier wrote this entry (see the module docs).
    pub(super) record: Option<RecordRef>,
}

impl Entry {
    pub(crate) fn new(value: &[u8]) -> Self {
        Self {
            value: CompactBytes::new(value),
            expires: None,
            tags: None,
            record: None,
        }
    }

    /// Unix milliseconds after which the entry is gone.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        self.expires.map(NonZeroU64::get)
    }

    #[must_use]
    pub(crate) fn with_expiry(mut self, at: Option<u64>) -> Self {
        self.expires = at.and_then(NonZeroU64::new);
        self
    }

    /// The same entry (expiry, tags) with another value.
    #[must_use]
    pub(crate) fn with_value(mut self, value: &[u8]) -> Self {
        self.value = CompactBytes::new(value);
        self
    }

    pub(crate) fn tags(&self) -> &[Tag] {
        self.tags.as_deref().map_or(&[], Vec::as_slice)
    }

    #[must_use]
    pub(crate) fn with_tags(mut self, tags: Vec<Tag>) -> Self {
        self.tags = (!tags.is_empty()).then(|| Arc::new(tags));
        self
    }

    /// The value, for a reply.
    pub(crate) fn value_bytes(&self) -> Bytes {
        self.value.to_bytes()
    }

    pub(super) fn expired(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|at| at <= now)
    }

    /// [`expired`](Self::expired), reading the clock only for an entry that can expire.
    pub(super) fn expired_now(&self) -> bool {
        self.expires_at().is_some_and(|at| at <= now_ms())
    }

    /// Disk encoding: expiry (u64, 0 for none), then the tags and the value as
    /// [`strata::encode_tagged`] writes them.
    pub(super) fn encode(&self) -> Result<Vec<u8>, strata::Error> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// [`encode`](Self::encode), appending to `out`.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), strata::Error> {
        out.extend_from_slice(&self.expires_at().unwrap_or(0).to_le_bytes());
        strata::encode_tagged(self.tags(), &self.value, out)
    }

    pub(super) fn decode(bytes: &[u8], record: Option<RecordRef>) -> Option<Self> {
        let expires_at = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let (tags, value) = strata::decode_tagged(&bytes[8..])?;
        let mut entry = Self::new(value)
            .with_expiry(Some(expires_at))
            .with_tags(tags);
        entry.record = record;
        Some(entry)
    }

    pub(super) fn options(&self, now: u64) -> InsertOptions {
        let mut options = InsertOptions::new().tags(self.tags().iter().cloned());
        if let Some(at) = self.expires_at() {
            options = options.ttl(Duration::from_millis(at.saturating_sub(now).max(1)));
        }
        options
    }
}
