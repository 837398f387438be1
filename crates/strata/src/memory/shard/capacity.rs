//! A shard's capacity, and the capacity it lends to and borrows from the other shards for
//! entries heavier than one shard can hold.

use std::hash::{BuildHasher, Hash};

use super::Shard;
use crate::memory::removals::Removals;

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Shard<K, V, S> {
    /// Changes the shard's capacity, keeping its shape, and evicts down to it. Loans are
    /// forgotten: every shard gets its new share, and the loans from now on are of `epoch`.
    pub(crate) fn set_capacity(&mut self, capacity: u64, epoch: u64, out: &mut Removals<'_, K, V>) {
        self.loan_epoch = epoch;
        self.lent = 0;
        self.borrowed = 0;
        self.loans.clear();
        self.resize(capacity);
        self.evict(out);
    }

    /// Changes the capacity, keeping the shape's proportions; no eviction.
    pub(super) fn resize(&mut self, capacity: u64) {
        self.capacity = capacity;
        self.size_regions();
    }

    /// Lends up to `amount` of this shard's capacity to another shard's entry that is heavier
    /// than that shard can hold: a sharded cache stores any entry up to its whole capacity, as
    /// an unsharded one would. The lenders' shrinking is what the heavy entry displaces, spread
    /// over the shards. They evict down to it only once the entry was admitted
    /// ([`settle`](Self::settle)): an entry TinyLFU turns away displaces nothing. Returns what
    /// was lent: never capacity it borrowed itself.
    pub(crate) fn lend(&mut self, amount: u64) -> u64 {
        let lent = amount.min(self.capacity - self.borrowed);
        self.lent += lent;
        self.resize(self.capacity - lent);
        lent
    }

    /// Takes back up to `amount` of the capacity this shard lent; returns how much.
    pub(crate) fn take_back(&mut self, amount: u64) -> u64 {
        let back = amount.min(self.lent);
        self.lent -= back;
        self.resize(self.capacity + back);
        back
    }

    /// Capacity this shard has lent and not had back.
    pub(crate) fn lent(&self) -> u64 {
        self.lent
    }

    /// Evicts down to the capacity (after lending some).
    pub(crate) fn settle(&mut self, out: &mut Removals<'_, K, V>) {
        self.evict(out);
    }

    /// After an [`update`](Self::update) made the entry at `idx` heavier than the shard: adds
    /// `loan` to what the entry borrowed (see [`lend`](Self::lend)), evicts the entry if it is
    /// still too heavy (as `insert` would refuse it), then evicts down to the capacity.
    pub(crate) fn grant(&mut self, idx: u32, loan: u64, out: &mut Removals<'_, K, V>) {
        self.resize(self.capacity + loan);
        self.record_loan(idx, loan);
        if u64::from(self.entry(idx).weight) > self.capacity {
            self.evict_entry(idx, out);
        }
        self.evict(out);
    }

    /// Adds `loan` (capacity the shard was just lent for it) to what the entry at `idx`
    /// borrowed; it goes back when the entry leaves (`unlink_entry`).
    pub(super) fn record_loan(&mut self, idx: u32, loan: u64) {
        if loan > 0 {
            *self.loans.entry(idx).or_default() += loan;
            self.borrowed += loan;
        }
    }

    /// Shrinks back by `amount` borrowed capacity, which `out` carries back to the lenders.
    pub(super) fn repay(&mut self, amount: u64, out: &mut Removals<'_, K, V>) {
        if amount > 0 {
            self.resize(self.capacity - amount);
            out.repay(amount, self.loan_epoch);
        }
    }

    /// Capacity this shard's heavy entries borrowed (tests only).
    #[cfg(test)]
    pub(crate) fn borrowed(&self) -> u64 {
        self.borrowed
    }
}
