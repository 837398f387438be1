//! Byte strings stored the way small ones are cheapest: up to 22 bytes inline (no heap
//! block, no pointer to chase), longer ones shared behind an `Arc`. 24 bytes either way.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

const INLINE: usize = 22;

/// An immutable byte string: inline up to 22 bytes, else shared.
#[derive(Clone)]
pub(crate) enum CompactBytes {
    Inline { len: u8, data: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl CompactBytes {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            Self::Inline {
                len: bytes.len() as u8,
                data,
            }
        } else {
            Self::Shared(Arc::from(bytes))
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, data } => &data[..usize::from(*len)],
            Self::Shared(bytes) => bytes,
        }
    }

    /// As `Bytes` for a reply: a copy of a short string, a shared handle on a long one.
    pub(crate) fn to_bytes(&self) -> Bytes {
        match self {
            Self::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Self::Shared(bytes) => Bytes::from_owner(ArcBytes(bytes.clone())),
        }
    }
}

/// `Arc<[u8]>` as an owner for `Bytes::from_owner`.
struct ArcBytes(Arc<[u8]>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for CompactBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Hashes exactly as `[u8]` does, so a `&[u8]` finds its `CompactBytes` key.
impl Hash for CompactBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for CompactBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl std::fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn short_and_long_strings_round_trip_and_hash_like_slices() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
        let hasher = std::hash::RandomState::new();
        for len in [0, 1, 22, 23, 1000] {
            let raw: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let c = CompactBytes::new(&raw);
            assert_eq!(c.as_slice(), &raw[..]);
            assert_eq!(&c.to_bytes()[..], &raw[..]);
            assert_eq!(hasher.hash_one(&c), hasher.hash_one(&raw[..]));
            assert!(matches!(c, CompactBytes::Inline { .. }) == (len <= 22));
        }
    }
}
