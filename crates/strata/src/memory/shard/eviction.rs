//! Which entry leaves when a shard is over its capacity: W-TinyLFU's admission duels, or
//! S3-FIFO's queues, as the shard's [`Shape`](crate::policy::minisim::Shape) says.

use std::hash::{BuildHasher, Hash};

use super::{NIL, Region, Shard};
use crate::listener::RemovalCause;
use crate::memory::prefetch::prefetch;
use crate::memory::removals::Removals;
use crate::policy::ghost::Ghost;

/// At most this many entries per write move out of a region that is over its share after a
/// change of shape: the change completes within a few writes, none of them long.
pub(super) const REBALANCE_BUDGET: usize = 32;

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Shard<K, V, S> {
    /// Prefetches what the next write's eviction starts with: the sketch block of each queue's
    /// head (its duel or its folded hits; W-TinyLFU only) and the slot after it.
    pub(super) fn prefetch_heads(&self) {
        for list in &self.lists {
            if list.head != NIL {
                if !self.shape.s3fifo {
                    self.sketch.prefetch(self.hash_of(list.head));
                }
                self.prefetch_slot(self.entry(list.head).next);
            }
        }
    }

    fn prefetch_slot(&self, idx: u32) {
        if let Some(slot) = self.slots.get(idx as usize) {
            prefetch(slot);
        }
    }

    /// Evicts if the shard is over its capacity after a removal: an entry that leaves gives
    /// back all it borrowed (see [`lend`](Self::lend)), which is more than its weight if it
    /// got lighter since (a lighter value, or `update`), and the shard shrinks by that.
    pub(super) fn evict_if_over(&mut self, out: &mut Removals<'_, K, V>) {
        if self.weight > self.capacity {
            self.evict(out);
        }
    }

    /// Evicts until the shard is within capacity (see the module docs for the policy).
    pub(super) fn evict(&mut self, out: &mut Removals<'_, K, V>) {
        if self.shape.s3fifo {
            self.evict_s3fifo(out);
            return;
        }
        // The window's overflow competes, one candidate at a time, for a place in main. After a
        // change of shape the overflow can be large: it is worked off a budget per write.
        let mut budget = REBALANCE_BUDGET;
        while self.lists[Region::Window as usize].weight > self.window_capacity && budget > 0 {
            budget -= 1;
            let candidate = self.lists[Region::Window as usize].head;
            if self.forget_hits(candidate) {
                self.move_to_tail(Region::Window, candidate);
                continue;
            }
            // The candidate stays at the window's head during its duels: they only touch main.
            if self.make_room(candidate, out) {
                self.move_to_tail(Region::Probation, candidate);
            } else {
                self.evict_entry(candidate, out);
            }
        }
        self.demote_protected_overflow(REBALANCE_BUDGET);
        // Still over (the window grew, or an update got heavier): evict without a duel.
        while self.weight > self.capacity {
            let victim = match self.main_victim() {
                Some(victim) => victim,
                None => {
                    let head = self.lists[Region::Window as usize].head;
                    if self.take_hits(head) {
                        self.move_to_tail(Region::Window, head);
                        continue;
                    }
                    head
                }
            };
            self.evict_entry(victim, out);
        }
    }

    /// S3-FIFO's eviction (see [`Shape::s3fifo`](crate::policy::minisim::Shape::s3fifo)).
    fn evict_s3fifo(&mut self, out: &mut Removals<'_, K, V>) {
        if self.entering_s3fifo {
            // The window this cache had is the small queue now; what exceeds its share is
            // older than S3-FIFO's small queue would hold: main's, as if promoted already.
            let mut budget = REBALANCE_BUDGET;
            while self.lists[Region::Window as usize].weight > self.window_capacity && budget > 0 {
                budget -= 1;
                let head = self.lists[Region::Window as usize].head;
                self.move_to_tail(Region::Probation, head);
            }
            self.entering_s3fifo =
                self.lists[Region::Window as usize].weight > self.window_capacity;
        }
        while self.weight > self.capacity {
            let small = self.lists[Region::Window as usize].head;
            let from_small = small != NIL
                && (self.lists[Region::Window as usize].weight > self.window_capacity
                    || self.main_weight() == 0);
            if from_small {
                if self.forget_hits(small) {
                    self.move_to_tail(Region::Probation, small);
                } else {
                    let hash = self.hash_of(small);
                    if self.table.len() > 2 * self.ghost.remembered() {
                        // The shard has filled since its ghost was sized.
                        self.ghost = Ghost::new(self.table.len());
                    }
                    self.ghost.insert(hash);
                    self.evict_entry(small, out);
                }
                continue;
            }
            // S3-FIFO's main is one FIFO: what W-TinyLFU left in protected goes through it
            // first (its oldest part), so no entry is kept out of the FIFO's reach.
            let protected = self.lists[Region::Protected as usize].head;
            let victim = if protected == NIL {
                self.lists[Region::Probation as usize].head
            } else {
                protected
            };
            if victim == NIL {
                break;
            }
            let hits = self.entry_mut(victim).hits.get_mut();
            if *hits > 0 {
                // FIFO-Reinsertion with a 2-bit counter: reinserted, one access forgotten.
                *hits = (*hits).min(3) - 1;
                self.move_to_tail(Region::Probation, victim);
            } else {
                self.evict_entry(victim, out);
            }
        }
    }

    fn main_weight(&self) -> u64 {
        self.lists[Region::Probation as usize].weight
            + self.lists[Region::Protected as usize].weight
    }

    /// The main region's next victim: the oldest probation entry not hit since it was last
    /// examined; hit ones are promoted to protected on the way. Falls back to protected.
    fn main_victim(&mut self) -> Option<u32> {
        loop {
            let victim = self.lists[Region::Probation as usize].head;
            if victim == NIL {
                let oldest = self.lists[Region::Protected as usize].head;
                if oldest == NIL {
                    return None;
                }
                if self.take_hits(oldest) {
                    self.move_to_tail(Region::Protected, oldest);
                    continue;
                }
                return Some(oldest);
            }
            if !self.take_hits(victim) {
                return Some(victim);
            }
            self.unlink(victim);
            self.link_tail(Region::Protected, victim);
            self.demote_protected_overflow(usize::MAX);
        }
    }

    /// Demotes the oldest protected entries (hit ones get a second chance) to probation while
    /// protected is over its share, at most `budget` moves.
    fn demote_protected_overflow(&mut self, mut budget: usize) {
        while self.lists[Region::Protected as usize].weight > self.protected_capacity && budget > 0
        {
            budget -= 1;
            let oldest = self.lists[Region::Protected as usize].head;
            self.unlink(oldest);
            if self.take_hits(oldest) {
                self.link_tail(Region::Protected, oldest);
            } else {
                self.link_tail(Region::Probation, oldest);
            }
        }
    }

    /// Makes room in main for the window's `candidate` by admission duels; false if it lost
    /// one (it must leave). More than one duel only after a change of shape left main over
    /// its share.
    fn make_room(&mut self, candidate: u32, out: &mut Removals<'_, K, V>) -> bool {
        loop {
            let room = self.room_needed(candidate);
            if room == 0 {
                return true;
            }
            if !self.admit(candidate, room) {
                return false;
            }
            if self.victims.is_empty() {
                return true; // main is empty: the eviction after the duels makes room
            }
            let victims = std::mem::take(&mut self.victims);
            for &victim in &victims {
                self.evict_entry(victim, out);
            }
            self.victims = victims;
        }
    }

    /// The room `candidate` needs in main, at most its weight: the shard must fit its
    /// capacity, and the candidate main's share.
    fn room_needed(&self, candidate: u32) -> u64 {
        let weight = u64::from(self.entry(candidate).weight);
        let main_capacity = self.capacity - self.window_capacity;
        self.weight
            .saturating_sub(self.capacity)
            .min((self.main_weight() + weight).saturating_sub(main_capacity))
            .min(weight)
    }

    /// TinyLFU's admission duel, size-aware: does `candidate` deserve `room` in main? Its
    /// victims are main's next entries in eviction order, as many as free `room` (or all
    /// there are); they are left in `self.victims` for the caller to evict. The candidate must
    /// be seen more often than all of them together (Einziger, Eytan, Friedman, Manes,
    /// "Lightweight Robust Size Aware Cache Management", 2022; moka does the same): a heavy
    /// newcomer displaces several entries and wins only if it is worth them all. With unit
    /// weights this is the classic duel against one victim. A [strict](crate::policy::minisim::Shape::strict) shape
    /// asks for more than one count beyond them.
    fn admit(&mut self, candidate: u32, room: u64) -> bool {
        self.victims.clear();
        let mut freed = 0;
        let mut next = self.main_victim();
        while let Some(victim) = next {
            self.victims.push(victim);
            freed += u64::from(self.entry(victim).weight);
            if freed >= room {
                break;
            }
            next = self.victim_after(victim);
        }
        // Estimates only after the walk: the hits it folded in may have halved the sketch.
        let candidate_frequency = u32::from(self.sketch.frequency(self.hash_of(candidate)));
        // A strict shape asks for a lead of two counts: the victims start one up.
        let mut frequency = u32::from(self.shape.strict);
        for &victim in &self.victims {
            frequency += u32::from(self.sketch.frequency(self.hash_of(victim)));
            if frequency >= candidate_frequency {
                self.victims.clear();
                return false;
            }
        }
        true
    }

    /// The entry after `victim` in its list that was not hit since it was last examined, hit
    /// ones promoted on the way (as [`main_victim`](Self::main_victim) does from the head);
    /// None at the list's end.
    fn victim_after(&mut self, victim: u32) -> Option<u32> {
        loop {
            let next = self.entry(victim).next;
            if next == NIL {
                return None;
            }
            if !self.take_hits(next) {
                return Some(next);
            }
            self.unlink(next);
            self.link_tail(Region::Protected, next);
            self.demote_protected_overflow(usize::MAX);
        }
    }

    /// Clears the hit counter of an entry in the window without counting the hits as
    /// frequency; true if it had any (it then gets a second chance in the window).
    ///
    /// Hits while an entry is still in the window are *correlated references*: accesses close
    /// in time to its arrival, such as a burst. Following LRU-K (O'Neil, O'Neil, Weikum,
    /// SIGMOD 1993), they earn recency but are not independent evidence of popularity, so
    /// they do not raise the entry's chance to be admitted to the main region.
    fn forget_hits(&mut self, idx: u32) -> bool {
        std::mem::take(self.entry_mut(idx).hits.get_mut()) > 0
    }

    /// Clears the entry's hit counter, folding the hits into the sketch; true if it had any.
    fn take_hits(&mut self, idx: u32) -> bool {
        let entry = self.entry_mut(idx);
        let hits = std::mem::take(entry.hits.get_mut());
        // The policy walks on from a head it examines: load the next one meanwhile.
        let next = entry.next;
        self.prefetch_slot(next);
        if hits > 0 {
            let hash = self.hash_of(idx);
            self.sketch.increment_by(hash, hits);
        }
        hits > 0
    }

    pub(super) fn evict_entry(&mut self, idx: u32, out: &mut Removals<'_, K, V>) {
        let (key, value) = self.unlink_entry(idx, out);
        out.push(key, value, RemovalCause::Size);
    }
}
