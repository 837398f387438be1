//! Expiry in a shard: the deadline of each timed entry, a min-heap of deadlines, and the
//! reclaiming of entries whose deadline passed, a batch at a time on the callers' writes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{NEVER, Shard};
use crate::listener::RemovalCause;
use crate::memory::removals::Removals;

/// At most this many expired entries are reclaimed per write, to bound a write's latency.
pub(super) const EXPIRE_BATCH: usize = 64;

/// Expiry data of a timed entry, in clock nanoseconds.
#[derive(Debug, Default)]
pub(super) struct Timing {
    /// Bumped each time the slot's expiry is set, so a stale deadline-heap node (of an older
    /// entry in this slot, or an older deadline of this one) never matches.
    pub(super) version: u32,
    /// Absolute TTL deadline, or [`NEVER`].
    pub(super) expires_at: u64,
    /// Last access; used only when the cache has a time-to-idle.
    pub(super) last_access: AtomicU64,
}

impl Timing {
    pub(super) fn deadline(&self, tti: Option<u64>) -> u64 {
        match tti {
            None => self.expires_at,
            Some(idle) => self.expires_at.min(
                self.last_access
                    .load(Ordering::Relaxed)
                    .saturating_add(idle),
            ),
        }
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Shard<K, V, S> {
    pub(crate) fn has_deadlines(&self) -> bool {
        !self.deadlines.is_empty()
    }

    /// The entry's expiry deadline, or [`NEVER`].
    pub(super) fn deadline(&self, idx: u32) -> u64 {
        if self.entry(idx).timed {
            self.timing[idx as usize].deadline(self.tti)
        } else {
            NEVER
        }
    }

    /// Records the entry's expiry data and schedules its deadline; older deadline-heap nodes
    /// of this slot stop matching.
    pub(super) fn set_timing(&mut self, idx: u32, expires_at: u64, now: u64) {
        let timed = expires_at != NEVER || self.tti.is_some();
        self.entry_mut(idx).timed = timed;
        if !timed {
            return;
        }
        if self.timing.len() <= idx as usize {
            self.timing.resize_with(self.slots.len(), Timing::default);
        }
        let timing = &mut self.timing[idx as usize];
        timing.version = timing.version.wrapping_add(1);
        timing.expires_at = expires_at;
        *timing.last_access.get_mut() = now;
        let deadline = timing.deadline(self.tti);
        self.deadlines
            .push(Reverse((deadline, idx, timing.version)));
    }

    /// True if a deadline-heap node `(slot, version)` still stands for a live timed entry.
    fn deadline_is_current(&self, idx: u32, version: u32) -> bool {
        self.slots[idx as usize].as_ref().is_some_and(|e| e.timed)
            && self.timing[idx as usize].version == version
    }

    /// Reclaims up to `limit` entries whose deadline passed.
    pub(crate) fn expire(&mut self, now: u64, limit: usize, out: &mut Removals<'_, K, V>) -> bool {
        let mut reclaimed = 0;
        let mut more = false;
        while let Some(&Reverse((deadline, idx, version))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            if reclaimed == limit {
                more = true;
                break;
            }
            self.deadlines.pop();
            if !self.deadline_is_current(idx, version) {
                continue;
            }
            let actual = self.deadline(idx);
            if actual > now {
                // Touched since (time-to-idle): wait for its new deadline.
                self.deadlines.push(Reverse((actual, idx, version)));
                continue;
            }
            let (key, value) = self.unlink_entry(idx, out);
            out.push(key, value, RemovalCause::Expired);
            reclaimed += 1;
        }
        self.evict_if_over(out);
        if self.deadlines.len() > 2 * self.table.len() + 64 {
            let mut nodes = std::mem::take(&mut self.deadlines).into_vec();
            nodes.retain(|Reverse((_, idx, v))| self.deadline_is_current(*idx, *v));
            self.deadlines = BinaryHeap::from(nodes);
        }
        more
    }
}
