//! The on-disk format (version 1): a segment header, then records back to back.
//!
//! ```text
//! segment header, 32 bytes:
//!   0..8   magic "STRATA-D"      8..12  format version (u32)
//!   12..16 crc32c of 16..32      16..24 segment id (u64)      24..32 salt (u64, random)
//! record:
//!   0..4   meta crc: crc32c of header bytes 4.., key and tags, seeded with the segment's salt
//!   4      kind (1 put, 2 remove, 3 invalidate tag, 5 seal)
//!   5      flags (bit 0: has expiry, bit 1: has tags)
//!   6..8   key length (u16)     8..12 value length (u32)    12..16 value crc (seeded likewise)
//!   [8 bytes expiry, unix ms]   [4 bytes tags length]
//!   key, tags (each: u16 length + UTF-8), value
//! ```
//! All integers are little-endian. The header, key and tags are checked when the log is
//! scanned; the value is checked on every read. Seeding the checksums with a per-segment random
//! salt means bytes inside a value can never pass for a record when a scan resynchronizes after
//! a corrupt stretch.

use crate::options::Tag;

/// Length of the segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 32;
const MAGIC: [u8; 8] = *b"STRATA-D";
/// The format version this code writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Length of the record header without its optional fields.
pub(crate) const FIXED_HEADER_LEN: usize = 16;
/// Length of the record header with all optional fields.
pub(crate) const MAX_HEADER_LEN: usize = FIXED_HEADER_LEN + 8 + 4;

const HAS_EXPIRY: u8 = 1;
const HAS_TAGS: u8 = 2;

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Sets the key's value.
    Put = 1,
    /// Removes the key (a tombstone).
    Remove = 2,
    /// Removes every entry written earlier that carries the tag in the key field.
    InvalidateTag = 3,
    /// Ends a segment whose records were all synced before this was written: replay can
    /// trust the segment's records without reading their values.
    Seal = 5,
}

/// The first bytes of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) id: u32,
    pub(crate) salt: u64,
}

/// Why a segment header was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadSegment {
    /// Not a Strata segment, or a damaged header.
    Corrupt,
    /// Written by a newer (or unknown) format version.
    Version(u32),
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&u64::from(self.id).to_le_bytes());
        out[24..32].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32c::crc32c(&out[16..]);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, BadSegment> {
        if bytes.len() < SEGMENT_HEADER_LEN as usize || bytes[..8] != MAGIC {
            return Err(BadSegment::Corrupt);
        }
        if crc32c::crc32c(&bytes[16..32]) != u32_at(bytes, 12) {
            return Err(BadSegment::Corrupt);
        }
        let version = u32_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(BadSegment::Version(version));
        }
        let id = u32::try_from(u64_at(bytes, 16)).map_err(|_| BadSegment::Corrupt)?;
        Ok(Self {
            id,
            salt: u64_at(bytes, 24),
        })
    }

    /// The checksum seed for this segment's records.
    pub(crate) fn seed(&self) -> u32 {
        crc32c::crc32c(&self.salt.to_le_bytes())
    }
}

/// A parsed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: Kind,
    pub(crate) header_len: u32,
    pub(crate) key_len: u32,
    pub(crate) tags_len: u32,
    pub(crate) value_len: u32,
    pub(crate) value_crc: u32,
    pub(crate) meta_crc: u32,
    /// Unix milliseconds after which the entry is expired.
    pub(crate) expires_at_ms: Option<u64>,
}

impl RecordHeader {
    /// Parses a header from the start of `bytes` (which may run past it). `None` if `bytes`
    /// is too short or the header is not well-formed; the checksum is not checked here.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < FIXED_HEADER_LEN {
            return None;
        }
        let kind = match bytes[4] {
            1 => Kind::Put,
            2 => Kind::Remove,
            3 => Kind::InvalidateTag,
            5 => Kind::Seal,
            _ => return None,
        };
        let flags = bytes[5];
        if flags & !(HAS_EXPIRY | HAS_TAGS) != 0 {
            return None;
        }
        let mut at = FIXED_HEADER_LEN;
        let expires_at_ms = if flags & HAS_EXPIRY != 0 {
            let v = u64_at(bytes.get(..at + 8)?, at);
            at += 8;
            Some(v)
        } else {
            None
        };
        let tags_len = if flags & HAS_TAGS != 0 {
            let v = u32_at(bytes.get(..at + 4)?, at);
            at += 4;
            v
        } else {
            0
        };
        Some(Self {
            kind,
            header_len: at as u32,
            key_len: u32::from(u16::from_le_bytes([bytes[6], bytes[7]])),
            tags_len,
            value_len: u32_at(bytes, 8),
            value_crc: u32_at(bytes, 12),
            meta_crc: u32_at(bytes, 0),
            expires_at_ms,
        })
    }

    /// Header, key and tags: what the meta checksum covers.
    pub(crate) fn meta_len(&self) -> u64 {
        u64::from(self.header_len) + u64::from(self.key_len) + u64::from(self.tags_len)
    }

    /// The whole record.
    pub(crate) fn len(&self) -> u64 {
        self.meta_len() + u64::from(self.value_len)
    }

    /// Checks the meta checksum over `meta` (the record's first `meta_len` bytes).
    pub(crate) fn meta_ok(&self, seed: u32, meta: &[u8]) -> bool {
        meta.len() as u64 == self.meta_len()
            && crc32c::crc32c_append(seed, &meta[4..]) == self.meta_crc
    }

    /// Checks the value checksum.
    pub(crate) fn value_ok(&self, seed: u32, value: &[u8]) -> bool {
        value.len() as u64 == u64::from(self.value_len)
            && crc32c::crc32c_append(seed, value) == self.value_crc
    }

    /// The key within the record's meta bytes.
    pub(crate) fn key<'a>(&self, meta: &'a [u8]) -> &'a [u8] {
        let start = self.header_len as usize;
        &meta[start..start + self.key_len as usize]
    }

    /// The encoded tags within the record's meta bytes.
    pub(crate) fn tags<'a>(&self, meta: &'a [u8]) -> &'a [u8] {
        let start = (self.header_len + self.key_len) as usize;
        &meta[start..start + self.tags_len as usize]
    }
}

/// The encoded length of a record.
pub(crate) fn encoded_len(key: &[u8], tags: &[Tag], value: &[u8], expires: bool) -> u64 {
    let tags_len: usize = tags.iter().map(|t| 2 + t.len()).sum();
    let header =
        FIXED_HEADER_LEN + if expires { 8 } else { 0 } + if tags.is_empty() { 0 } else { 4 };
    (header + key.len() + tags_len + value.len()) as u64
}

/// Appends a record to `out`. The caller has checked that `key` fits a u16, `value` a u32 and
/// each tag a u16.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    seed: u32,
    kind: Kind,
    key: &[u8],
    tags: &[Tag],
    value: &[u8],
    expires_at_ms: Option<u64>,
) {
    let value_crc = crc32c::crc32c_append(seed, value);
    encode_meta(
        out,
        seed,
        kind,
        key,
        tags,
        (value.len() as u32, value_crc),
        expires_at_ms,
    );
    out.extend_from_slice(value);
}

/// Appends a record's header, key and tags to `out`: everything but the value, which has
/// `value_len_crc` (its length and its checksum under `seed`).
pub(crate) fn encode_meta(
    out: &mut Vec<u8>,
    seed: u32,
    kind: Kind,
    key: &[u8],
    tags: &[Tag],
    value_len_crc: (u32, u32),
    expires_at_ms: Option<u64>,
) {
    let start = out.len();
    let flags = if expires_at_ms.is_some() {
        HAS_EXPIRY
    } else {
        0
    } | if tags.is_empty() { 0 } else { HAS_TAGS };
    out.extend_from_slice(&[0; 4]);
    out.push(kind as u8);
    out.push(flags);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(&value_len_crc.0.to_le_bytes());
    out.extend_from_slice(&value_len_crc.1.to_le_bytes());
    if let Some(at) = expires_at_ms {
        out.extend_from_slice(&at.to_le_bytes());
    }
    if !tags.is_empty() {
        let tags_len: usize = tags.iter().map(|t| 2 + t.len()).sum();
        out.extend_from_slice(&(tags_len as u32).to_le_bytes());
    }
    out.extend_from_slice(key);
    for tag in tags {
        out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        out.extend_from_slice(tag.as_bytes());
    }
    let meta_crc = crc32c::crc32c_append(seed, &out[start + 4..]);
    out[start..start + 4].copy_from_slice(&meta_crc.to_le_bytes());
}

/// Decodes the tags field. `None` if it is malformed (the meta checksum passed, so only a
/// bug or a forged record could get here).
pub(crate) fn decode_tags(mut bytes: &[u8]) -> Option<Vec<Tag>> {
    let mut tags = Vec::new();
    while !bytes.is_empty() {
        let len = usize::from(u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]));
        let tag = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
        tags.push(Tag::from(tag));
        bytes = &bytes[2 + len..];
    }
    Some(tags)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            id: 7,
            salt: 0xdead_beef_0123_4567,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for i in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[i] ^= 0x10;
            assert!(
                SegmentHeader::decode(&damaged).is_err(),
                "flip at {i} accepted"
            );
        }
    }

    #[test]
    fn a_newer_format_version_is_reported_as_such() {
        let mut bytes = SegmentHeader { id: 1, salt: 2 }.encode();
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&bytes), Err(BadSegment::Version(2)));
    }

    proptest! {
        #[test]
        fn records_round_trip_and_any_flip_is_caught(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::collection::vec(any::<u8>(), 0..200),
            tags in proptest::collection::vec("[a-z:0-9]{0,12}", 0..3),
            expires in proptest::option::of(any::<u64>()),
            seed in any::<u32>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let tags: Vec<Tag> = tags.into_iter().map(Tag::from).collect();
            let mut out = vec![0xAA; 3]; // records are appended after other bytes
            encode(&mut out, seed, Kind::Put, &key, &tags, &value, expires);
            let rec = &out[3..];
            prop_assert_eq!(rec.len() as u64, encoded_len(&key, &tags, &value, expires.is_some()));
            let h = RecordHeader::parse(rec).expect("parses");
            prop_assert_eq!(h.len(), rec.len() as u64);
            let meta = &rec[..h.meta_len() as usize];
            prop_assert!(h.meta_ok(seed, meta));
            prop_assert!(h.value_ok(seed, &rec[h.meta_len() as usize..]));
            prop_assert_eq!(h.key(meta), &key[..]);
            prop_assert_eq!(decode_tags(h.tags(meta)), Some(tags.clone()));
            prop_assert_eq!(h.expires_at_ms, expires);

            // One flipped bit anywhere fails a checksum (or the parse).
            let mut bad = rec.to_vec();
            let at = flip.index(bad.len());
            bad[at] ^= 1 << bit;
            let caught = match RecordHeader::parse(&bad) {
                None => true,
                Some(h2) => {
                    let meta_len = h2.meta_len() as usize;
                    meta_len > bad.len()
                        || !h2.meta_ok(seed, &bad[..meta_len])
                        || !h2.value_ok(seed, &bad[meta_len..])
                }
            };
            prop_assert!(caught, "flip at {} bit {} not caught", at, bit);

            // Another segment's salt rejects the record.
            prop_assert!(!h.meta_ok(seed ^ 1, meta));
        }
    }
}
