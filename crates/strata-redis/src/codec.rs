//! How values become bytes in the disk tier and in Redis.
//!
//! [`Postcard`] (compact binary, the default), [`Json`] (readable by other languages sharing
//! the Redis), and [`Lz4`] around either to compress large values. Keys always use postcard:
//! their encoding must be stable; for a string key it is its length (a LEB128 varint), then
//! its UTF-8 bytes. In Redis a value has its tags in front (see [`strata::encode_tagged`]);
//! `docs/redis-tier.md` ("From another language") gives the whole layout, and
//! `scripts/strata_tiered_format.py` reads and writes it with redis-py.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes and decodes values of type `V`.
pub trait Codec<V>: Send + Sync + 'static {
    /// The bytes of `value`.
    ///
    /// # Errors
    /// A message if the value cannot be encoded.
    fn encode(&self, value: &V) -> Result<Vec<u8>, String>;
    /// The value in `bytes`, or `None` if they do not decode (another type or version: read
    /// as a miss).
    fn decode(&self, bytes: &[u8]) -> Option<V>;
}

/// postcard: compact, schema-less binary (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl<V: Serialize + DeserializeOwned> Codec<V> for Postcard {
    fn encode(&self, value: &V) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(value).map_err(|e| e.to_string())
    }

    fn decode(&self, bytes: &[u8]) -> Option<V> {
        postcard::from_bytes(bytes).ok()
    }
}

/// JSON, for values other programs read from the same Redis.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<V: Serialize + DeserializeOwned> Codec<V> for Json {
    fn encode(&self, value: &V) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }

    fn decode(&self, bytes: &[u8]) -> Option<V> {
        serde_json::from_slice(bytes).ok()
    }
}

/// LZ4 compression around another codec, for encodings of at least `threshold` bytes
/// (default 512); smaller ones are stored as they are. One leading byte says which.
#[derive(Debug, Clone, Copy)]
pub struct Lz4<C> {
    inner: C,
    threshold: usize,
}

impl<C> Lz4<C> {
    /// Compresses `inner`'s encodings of 512 bytes or more.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            threshold: 512,
        }
    }

    /// Compresses encodings of at least `bytes` bytes.
    #[must_use]
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }
}

const RAW: u8 = 0;
const LZ4: u8 = 1;

impl<V, C: Codec<V>> Codec<V> for Lz4<C> {
    fn encode(&self, value: &V) -> Result<Vec<u8>, String> {
        let plain = self.inner.encode(value)?;
        if plain.len() < self.threshold {
            let mut out = Vec::with_capacity(plain.len() + 1);
            out.push(RAW);
            out.extend_from_slice(&plain);
            return Ok(out);
        }
        let mut out = vec![LZ4];
        out.extend_from_slice(&lz4_flex::compress_prepend_size(&plain));
        Ok(out)
    }

    fn decode(&self, bytes: &[u8]) -> Option<V> {
        match bytes.split_first()? {
            (&RAW, rest) => self.inner.decode(rest),
            (&LZ4, rest) => self
                .inner
                .decode(&lz4_flex::decompress_size_prepended(rest).ok()?),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_and_lz4_shrinks_repetitive_values() {
        let small = "hello".to_string();
        let large = "abc".repeat(1000);
        for value in [&small, &large] {
            assert_eq!(
                Codec::<String>::decode(&Postcard, &Postcard.encode(value).unwrap()).as_ref(),
                Some(value)
            );
            assert_eq!(
                Codec::<String>::decode(&Json, &Json.encode(value).unwrap()).as_ref(),
                Some(value)
            );
            let lz4 = Lz4::new(Postcard);
            assert_eq!(
                Codec::<String>::decode(&lz4, &lz4.encode(value).unwrap()).as_ref(),
                Some(value)
            );
        }
        let compressed = Lz4::new(Postcard).encode(&large).unwrap();
        assert!(compressed.len() < large.len() / 10, "{}", compressed.len());
        assert_eq!(
            Codec::<String>::decode(&Lz4::new(Postcard), b"\x07junk"),
            None
        );
        assert_eq!(
            Codec::<String>::decode(&Lz4::new(Postcard), b"\x01\xff\xff\xff\x7fjunk"),
            None
        );
    }
}
