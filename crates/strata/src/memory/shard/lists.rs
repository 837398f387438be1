//! The intrusive queues of a shard: doubly linked lists threaded through the slab, one per
//! [`Region`].

use std::hash::{BuildHasher, Hash};

use super::{NIL, Region, Shard};

/// A doubly linked list threaded through the slab.
#[derive(Debug, Clone, Copy)]
pub(super) struct List {
    /// The oldest entry, the first the policy examines ([`NIL`] if empty).
    pub(super) head: u32,
    /// The newest entry.
    pub(super) tail: u32,
    /// The total weight of its entries.
    pub(super) weight: u64,
}

impl List {
    pub(super) const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        weight: 0,
    };
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Shard<K, V, S> {
    /// Appends the entry at `idx` to the newest end of `region`'s queue.
    pub(super) fn link_tail(&mut self, region: Region, idx: u32) {
        let tail = self.lists[region as usize].tail;
        let entry = self.entry_mut(idx);
        entry.region = region;
        entry.prev = tail;
        entry.next = NIL;
        let weight = u64::from(entry.weight);
        if tail == NIL {
            self.lists[region as usize].head = idx;
        } else {
            self.entry_mut(tail).next = idx;
        }
        let list = &mut self.lists[region as usize];
        list.tail = idx;
        list.weight += weight;
    }

    /// Takes the entry at `idx` out of its queue.
    pub(super) fn unlink(&mut self, idx: u32) {
        let entry = self.entry(idx);
        let (prev, next, region, weight) = (
            entry.prev,
            entry.next,
            entry.region as usize,
            u64::from(entry.weight),
        );
        if prev == NIL {
            self.lists[region].head = next;
        } else {
            self.entry_mut(prev).next = next;
        }
        if next == NIL {
            self.lists[region].tail = prev;
        } else {
            self.entry_mut(next).prev = prev;
        }
        self.lists[region].weight -= weight;
    }

    /// Moves the entry at `idx` to the newest end of `region`'s queue.
    pub(super) fn move_to_tail(&mut self, region: Region, idx: u32) {
        self.unlink(idx);
        self.link_tail(region, idx);
    }
}
