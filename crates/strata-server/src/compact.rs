//! Byte strings stored the way small ones are cheapest: up to `N` bytes inline (no heap
//! block, no pointer to chase), longer ones shared behind a thin `Arc` (one pointer: the
//! length lives in the heap block). Keys keep 22 bytes inline in 24; values 14 in 16.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;
use triomphe::ThinArc;

/// An immutable byte string: inline up to `N` bytes, else shared.
#[derive(Clone)]
pub(crate) enum CompactBytes<const N: usize = 22> {
    Inline { len: u8, data: [u8; N] },
    Shared(ThinArc<(), u8>),
}

impl<const N: usize> CompactBytes<N> {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= N {
            let mut data = [0u8; N];
            data[..bytes.len()].copy_from_slice(bytes);
            Self::Inline {
                len: bytes.len() as u8,
                data,
            }
        } else {
            Self::Shared(ThinArc::from_header_and_slice((), bytes))
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, data } => &data[..usize::from(*len)],
            Self::Shared(bytes) => &bytes.slice,
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

/// A shared string as an owner for `Bytes::from_owner`.
struct ArcBytes(ThinArc<(), u8>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0.slice
    }
}

impl<const N: usize> Deref for CompactBytes<N> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> Borrow<[u8]> for CompactBytes<N> {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Hashes exactly as `[u8]` does, so a `&[u8]` finds its `CompactBytes` key.
impl<const N: usize> Hash for CompactBytes<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<const N: usize> PartialEq for CompactBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for CompactBytes<N> {}

impl<const N: usize> std::fmt::Debug for CompactBytes<N> {
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
        assert_eq!(std::mem::size_of::<CompactBytes<14>>(), 16);
        let hasher = std::hash::RandomState::new();
        for len in [0, 1, 14, 15, 22, 23, 1000] {
            let raw: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let c = CompactBytes::<22>::new(&raw);
            assert_eq!(c.as_slice(), &raw[..]);
            assert_eq!(&c.to_bytes()[..], &raw[..]);
            assert_eq!(hasher.hash_one(&c), hasher.hash_one(&raw[..]));
            assert!(matches!(c, CompactBytes::Inline { .. }) == (len <= 22));
            let v = CompactBytes::<14>::new(&raw);
            assert_eq!(&v.to_bytes()[..], &raw[..]);
            assert!(matches!(v, CompactBytes::Inline { .. }) == (len <= 14));
        }
    }
}
