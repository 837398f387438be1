//! The in-memory index of the disk tier: key hash → where the key's latest record lives.
//!
//! Only hashes are kept (like foyer and Bitcask's keydir keep only what locates a record); the
//! key stored in the record is compared on every read, so two keys sharing a 64-bit hash can
//! only cost a miss (the later write displaces the earlier one), never return the wrong value.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hashbrown::HashTable;
use parking_lot::RwLock;

const SHARDS: usize = 64;

/// Where a live record is, and what the index needs to know about it without reading it.
#[derive(Debug)]
pub(crate) struct Loc {
    pub(crate) seg: u32,
    pub(crate) offset: u32,
    pub(crate) len: u32,
    /// Unix ms; `u64::MAX` for never.
    pub(crate) expires_at_ms: u64,
    /// Set by reads; an entry read since it was written gets a second chance when its segment
    /// is evicted (it is rewritten at the head of the log).
    pub(crate) referenced: AtomicBool,
}

/// The part of a [`Loc`] a reader copies out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) seg: u32,
    pub(crate) offset: u32,
    pub(crate) len: u32,
    pub(crate) expires_at_ms: u64,
}

impl Loc {
    pub(crate) fn place(&self) -> Place {
        Place {
            seg: self.seg,
            offset: self.offset,
            len: self.len,
            expires_at_ms: self.expires_at_ms,
        }
    }

    fn is_at(&self, seg: u32, offset: u32) -> bool {
        self.seg == seg && self.offset == offset
    }
}

struct Slot {
    hash: u64,
    loc: Loc,
}

/// Sharded hash → [`Loc`] map. Writers serialize on the store's state lock; readers take one
/// shard's read lock.
pub(crate) struct Index {
    shards: Box<[RwLock<HashTable<Slot>>]>,
    /// Entries in all shards, so that a write that only needs the key gone
    /// ([`remove_any`](Self::remove_any)) skips the locks when the index is empty (as it
    /// is while a memory tier in front holds every key).
    len: AtomicUsize,
}

impl Index {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<HashTable<Slot>> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// Where `hash`'s record is, marking it referenced.
    pub(crate) fn lookup(&self, hash: u64) -> Option<Place> {
        let shard = self.shard(hash).read();
        let slot = shard.find(hash, |s| s.hash == hash)?;
        if !slot.loc.referenced.load(Ordering::Relaxed) {
            slot.loc.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.loc.place())
    }

    /// Where `hash`'s record is, without marking it.
    pub(crate) fn peek(&self, hash: u64) -> Option<Place> {
        let shard = self.shard(hash).read();
        shard.find(hash, |s| s.hash == hash).map(|s| s.loc.place())
    }

    /// Points `hash` at `loc`, returning what it pointed at before.
    pub(crate) fn insert(&self, hash: u64, loc: Loc) -> Option<Loc> {
        let mut shard = self.shard(hash).write();
        match shard.find_mut(hash, |s| s.hash == hash) {
            Some(slot) => Some(std::mem::replace(&mut slot.loc, loc)),
            None => {
                shard.insert_unique(hash, Slot { hash, loc }, |s| s.hash);
                self.len.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Removes `hash`.
    pub(crate) fn remove(&self, hash: u64) -> Option<Loc> {
        let mut shard = self.shard(hash).write();
        let entry = shard.find_entry(hash, |s| s.hash == hash).ok()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(entry.remove().0.loc)
    }

    /// [`remove`](Self::remove), for a caller that serializes every write to `hash` (so an
    /// insert of it cannot be in flight): free when the index is empty.
    pub(crate) fn remove_any(&self, hash: u64) {
        if self.len.load(Ordering::Relaxed) > 0 {
            self.remove(hash);
        }
    }

    /// Removes `hash` if it still points at the record at (`seg`, `offset`).
    pub(crate) fn remove_at(&self, hash: u64, seg: u32, offset: u32) -> Option<Loc> {
        let mut shard = self.shard(hash).write();
        let entry = shard
            .find_entry(hash, |s| s.hash == hash && s.loc.is_at(seg, offset))
            .ok()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(entry.remove().0.loc)
    }

    /// Whether `hash` points at (`seg`, `offset`), and if so whether it was referenced since it
    /// was written (clearing the mark).
    pub(crate) fn take_referenced_at(&self, hash: u64, seg: u32, offset: u32) -> Option<bool> {
        let shard = self.shard(hash).read();
        let slot = shard.find(hash, |s| s.hash == hash && s.loc.is_at(seg, offset))?;
        Some(slot.loc.referenced.swap(false, Ordering::Relaxed))
    }

    /// Moves `hash` from (`seg`, `offset`) to a new place (its record was rewritten), keeping
    /// its expiry and tags. False if it no longer points there.
    pub(crate) fn relocate(&self, hash: u64, from: (u32, u32), to: (u32, u32)) -> bool {
        let mut shard = self.shard(hash).write();
        match shard.find_mut(hash, |s| s.hash == hash && s.loc.is_at(from.0, from.1)) {
            Some(slot) => {
                slot.loc.seg = to.0;
                slot.loc.offset = to.1;
                true
            }
            None => false,
        }
    }

    /// The number of entries (expired ones included until they are reclaimed).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.write();
            self.len.fetch_sub(shard.len(), Ordering::Relaxed);
            shard.clear();
        }
    }

    /// Calls `f` with every entry's hash and place, shard by shard (writes made meanwhile may
    /// or may not be seen).
    pub(crate) fn for_each(&self, mut f: impl FnMut(u64, Place)) {
        for shard in &self.shards {
            let places: Vec<(u64, Place)> = shard
                .read()
                .iter()
                .map(|s| (s.hash, s.loc.place()))
                .collect();
            for (hash, place) in places {
                f(hash, place);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_takes_32_bytes() {
        // Per entry in memory: this, the table's control byte, and its share of empty slots.
        assert!(
            std::mem::size_of::<Slot>() <= 32,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
