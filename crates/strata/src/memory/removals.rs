//! Entries removed under a shard's lock, handed to the listener after the lock is released.

use crate::listener::{RemovalCause, SyncListener};
use crate::stats::{Block, Counter};

/// Collects what a write removed: counts by cause always, the entries only when a listener
/// wants them (otherwise they are dropped at once). A synchronous listener hears of each
/// removal as it happens, under the lock.
pub(crate) struct Removals<'a, K, V> {
    keep: bool,
    sync: Option<&'a SyncListener<K, V>>,
    entries: Vec<(K, V, RemovalCause)>,
    counts: [u64; 5],
    /// Capacity that entries heavier than their shard's share had borrowed from the other
    /// shards, and gave back by leaving (see `Shard::lend`).
    repaid: Repaid,
}

/// Capacity that heavy entries gave back by leaving, and the epoch of the loans it was lent
/// in (the cache's `loans`): a repayment from an earlier epoch is void.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Repaid {
    pub(crate) amount: u64,
    pub(crate) epoch: u64,
}

impl<'a, K, V> Removals<'a, K, V> {
    pub(crate) fn new(keep: bool, sync: Option<&'a SyncListener<K, V>>) -> Self {
        Self {
            keep,
            sync,
            entries: Vec::new(),
            counts: [0; 5],
            repaid: Repaid::default(),
        }
    }

    /// Records capacity a leaving entry gives back to the shards it borrowed from, lent in
    /// `epoch`. A write may go through several shards while a new bound begins a new epoch:
    /// then only what was lent in the latest counts.
    pub(crate) fn repay(&mut self, amount: u64, epoch: u64) {
        let repaid = &mut self.repaid;
        if epoch > repaid.epoch {
            *repaid = Repaid { amount, epoch };
        } else if epoch == repaid.epoch {
            repaid.amount += amount;
        }
    }

    /// The capacity given back so far, which the caller now hands to the lenders.
    pub(crate) fn take_repaid(&mut self) -> Repaid {
        std::mem::take(&mut self.repaid)
    }

    /// How many removals had `cause`.
    pub(crate) fn count(&self, cause: RemovalCause) -> u64 {
        self.counts[cause as usize]
    }

    pub(crate) fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        self.counts[cause as usize] += 1;
        if let Some(sync) = self.sync {
            sync(&key, &value, cause);
        }
        if self.keep {
            self.entries.push((key, value, cause));
        }
    }

    /// Records the counts in the calling thread's `counters` and yields the kept entries.
    pub(crate) fn finish(self, counters: &Block) -> Vec<(K, V, RemovalCause)> {
        for cause in [
            RemovalCause::Size,
            RemovalCause::Expired,
            RemovalCause::Explicit,
            RemovalCause::Replaced,
            RemovalCause::Tag,
        ] {
            let n = self.counts[cause as usize];
            if n > 0 {
                counters.add(Counter::for_removal(cause), n);
            }
        }
        self.entries
    }
}
