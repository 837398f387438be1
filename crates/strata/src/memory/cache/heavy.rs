//! Entries heavier than one shard's share of the capacity: the shard borrows capacity from
//! the others, which evict down to what they have left once the entry is admitted, and get
//! it back when the entry leaves (see `docs/memory-tier.md`, "Entries heavier than a shard").

use std::hash::{BuildHasher, Hash};

use parking_lot::MutexGuard;

use super::{Cache, ShardCell};
use crate::coalesce::LeaderGuard;
use crate::memory::removals::{Removals, Repaid};
use crate::memory::shard::NewEntry;

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// [`insert_entry`](Self::insert_entry) for an entry heavier than its shard can hold: it
    /// borrows capacity from the other shards first (see [`Shard::lend`](crate::memory::shard::Shard::lend)). Rare and slow.
    #[cold]
    #[inline(never)]
    pub(super) fn insert_heavy(
        &self,
        mut new: NewEntry<K, V>,
        ttl: Option<u64>,
        mut removals: Removals<'_, K, V>,
        load: Option<&LeaderGuard<'_, K, V>>,
    ) {
        let (hash, weight) = (new.hash, new.weight);
        // Held until the lenders have settled: no change of capacity comes between, and one
        // heavy insert at a time puts the cache above its bound (by at most its loan, until
        // the lenders evict).
        let loans;
        (loans, new.loan) = self.borrow(hash, u64::from(weight));
        let (added, adapt) = {
            let mut cell = self.write_shard(hash);
            if !self.may_write(hash, &new.key, load) {
                // Outdated meanwhile: the lenders take their loan back, nobody evicts.
                drop(cell);
                self.return_loan(new.loan);
                return;
            }
            self.insert_locked(&mut cell, new, ttl, &mut removals)
        };
        if let Some(epoch) = &loans {
            self.settle_loans(**epoch, &mut removals);
        }
        drop(loans);
        self.after_insert(hash, weight, added, adapt, removals);
    }

    /// Lends capacity from the other shards to the shard of `hash`, which cannot hold an
    /// entry of `weight`: what the entry displaces in an unsharded cache, spread evenly over
    /// all shards (the home shard evicts its part itself), and at least what the home shard
    /// lacks. Returns `loans`, held until the lenders settle, and the loan; nothing for an
    /// entry heavier than the whole cache, which the shard refuses.
    pub(super) fn borrow(&self, hash: u64, weight: u64) -> (Option<MutexGuard<'_, u64>>, u64) {
        let guard = self.inner.loans.lock();
        let home = self.inner.shards[self.shard_index(hash)]
            .read()
            .shard
            .capacity();
        match self.lend_to(hash, home, weight) {
            0 => (None, 0),
            loan => (Some(guard), loan),
        }
    }

    /// The lending of [`borrow`](Self::borrow), for an entry of `weight` in the shard of
    /// `hash`, whose capacity is `home` (and which the caller may hold locked). The caller
    /// holds `loans`. Returns the loan.
    fn lend_to(&self, hash: u64, home: u64, weight: u64) -> u64 {
        let shards = &self.inner.shards[..self.in_use()];
        let n = shards.len() as u64;
        if n == 1 || weight > self.capacity() {
            return 0;
        }
        let home_index = self.shard_index(hash);
        let lacking = weight.saturating_sub(home);
        let need = (weight - weight / n).max(lacking);
        let part = need.div_ceil(n - 1);
        let mut loan = 0;
        for (i, lock) in shards.iter().enumerate() {
            if i != home_index && loan < need {
                loan += lock.write().shard.lend(part.min(need - loan));
            }
        }
        loan
    }

    /// After a heavy entry's insert: the lenders evict down to what they have left. If the
    /// policy turned the entry away, its loan goes back first and they evict nothing. The
    /// caller holds `loans`, of `epoch`.
    #[cold]
    #[inline(never)]
    pub(super) fn settle_loans(&self, epoch: u64, removals: &mut Removals<'_, K, V>) {
        self.repay_locked(epoch, removals.take_repaid());
        for lock in self.inner.shards.iter() {
            let mut cell = lock.write();
            if cell.shard.lent() > 0 {
                cell.shard.settle(removals);
            }
        }
        // A lender may have evicted a heavy entry of its own.
        self.repay_locked(epoch, removals.take_repaid());
    }

    /// Gives capacity that heavy entries handed back by leaving to the shards that lent it.
    #[cold]
    #[inline(never)]
    pub(super) fn repay(&self, repaid: Repaid) {
        let epoch = self.inner.loans.lock();
        self.repay_locked(*epoch, repaid);
    }

    /// [`repay`](Self::repay), for a caller that holds `loans`, of `epoch`. A loan lent
    /// before the epoch began is void: the new bound gave every shard its share.
    fn repay_locked(&self, epoch: u64, repaid: Repaid) {
        if repaid.epoch == epoch {
            self.return_loan(repaid.amount);
        }
    }

    /// The lenders take back `amount`, lent in the current epoch. The caller holds `loans`.
    fn return_loan(&self, mut amount: u64) {
        for lock in self.inner.shards.iter() {
            if amount == 0 {
                break;
            }
            let mut cell = lock.write();
            if cell.shard.lent() > 0 {
                amount -= cell.shard.take_back(amount);
            }
        }
    }

    /// [`update`](Self::update) made the entry at `slot` of the shard `cell` (locked)
    /// heavier than the shard: borrows for it as [`insert_heavy`](Self::insert_heavy) does,
    /// and returns `loans`, to hold until the lenders have settled. Only if no other heavy
    /// write is in flight: `loans` is only tried, since a heavy write holding it may be
    /// waiting for this shard. Otherwise, or if the entry is heavier than the cache, the
    /// entry is evicted.
    #[cold]
    #[inline(never)]
    pub(super) fn grant(
        &self,
        cell: &mut ShardCell<K, V, S>,
        hash: u64,
        slot: u32,
        weight: u32,
        removals: &mut Removals<'_, K, V>,
    ) -> Option<MutexGuard<'_, u64>> {
        let loans = self.inner.loans.try_lock();
        let loan = loans.as_ref().map_or(0, |_| {
            self.lend_to(hash, cell.shard.capacity(), u64::from(weight))
        });
        cell.shard.grant(slot, loan, removals);
        loans.filter(|_| loan > 0)
    }
}
