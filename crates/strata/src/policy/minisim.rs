//! Chooses W-TinyLFU's window size by running miniature simulations of every candidate size.
//!
//! Following Waldspurger et al., "Cache Modeling and Optimization using Miniature Simulations"
//! (USENIX ATC 2017): keys are sampled *spatially* (by hash, at rate R), which preserves their
//! reuse distances, so a cache of capacity `R × C` fed only the sampled keys has about the
//! hit ratio of the full cache of capacity `C`. One such mini cache per candidate window size,
//! each running the very same shard code, tells which window the live cache should use; all
//! candidates are judged in parallel on the same requests, so the choice follows a change of
//! workload within a few epochs instead of a step at a time as a hill climber does.

use std::hash::{BuildHasher, Hash, Hasher};

use crate::listener::RemovalCause;
use crate::memory::removals::Removals;
use crate::memory::shard::{NEVER, NewEntry, Shard};

/// A shape of the policy: the window's share of capacity, and the protected segment's share
/// of the main region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    pub(crate) window: f64,
    pub(crate) protected: f64,
    /// S3-FIFO instead of W-TinyLFU: the window is S3-FIFO's small queue (entries hit there
    /// move to main, the others leave a ghost), keys that return while their ghost lasts go
    /// straight to main, and main is a FIFO with reinsertion (no admission duel).
    pub(crate) s3fifo: bool,
    /// The frequency sketch ages a block at a time instead of all at once (see
    /// `FrequencySketch::set_staggered`).
    pub(crate) staggered: bool,
    /// S3-FIFO only: while main has room, new keys go straight to it (as LIRS makes its
    /// first keys LIR, and quick_cache fills its hot region).
    pub(crate) fill_main: bool,
    /// W-TinyLFU only: a newcomer must out-count its victims by two, not one (see
    /// `Shard::admit`). A lead of one count is within the sketch's error: a collision adds
    /// one, aging rounds down.
    pub(crate) strict: bool,
}

/// W-TinyLFU with `window` of capacity for the window and `protected` of the main region
/// for its protected segment, its sketch halved all at once.
pub(crate) const fn w_tinylfu(window: f64, protected: f64) -> Shape {
    Shape {
        window,
        protected,
        s3fifo: false,
        staggered: false,
        fill_main: false,
        strict: false,
    }
}

/// Candidate shapes: TinyLFU in front of one LRU queue (moka's shape) with a strict duel,
/// then W-TinyLFU with windows from Caffeine's classic 1 % up to plain LRU (window 1), main
/// region split 20/80 as in Caffeine, S3-FIFO as published, the classic W-TinyLFU with
/// staggered aging, and S3-FIFO with LIRS's 1% small queue, filled through it or main first.
/// Spaced to cover the range, not fitted to any trace.
/// - S3-FIFO's ghost history wins where recency at middle distances matters (the ARC paper's
///   P3 trace, web and block traces), W-TinyLFU's frequency filter on loops and scans.
/// - A 1% small queue keeps main's entries longer than the published 10% (LIRS keeps 1% of
///   its blocks HIR). Filling main first is how LIRS and quick_cache fill, and how the live
///   cache fills in effect (W-TinyLFU's 1% window passes its overflow to main without a duel
///   while main has room): a mini cache filled that way predicts what a switch to this shape
///   does to the live cache where the first keys matter (multi-pattern traces). A shard runs
///   the two 1% shapes alike but while main has room (its first fill, or after removals).
/// - Without a window, every new key duels on its first request, so the sketch's error
///   decides between keys of equal counts: on a loop one collision lets a newcomer evict the
///   key asked for next, which comes back one count ahead and evicts the next, and so on
///   through the pass. Asking for a lead of two counts ([`Shape::strict`]) keeps the cached
///   set through loops and scans, at a cost on recency-heavy traces, which the windowed
///   shapes serve: the candidates are spread apart, each good at its own kind of trace.
/// - Staggered aging (`FrequencySketch::set_staggered`) spares block traces the burst of
///   admissions that follows each halving of the whole sketch; on loops, whose keys are all
///   equally frequent, the whole-sketch halving keeps them tied and the cached set fixed.
pub(crate) const CANDIDATES: [Shape; 10] = [
    Shape {
        strict: true,
        ..w_tinylfu(0.0, 0.0)
    },
    w_tinylfu(0.01, 0.8),
    w_tinylfu(0.1, 0.8),
    w_tinylfu(0.3, 0.8),
    w_tinylfu(0.6, 0.8),
    w_tinylfu(1.0, 0.8),
    S3FIFO,
    Shape {
        staggered: true,
        ..w_tinylfu(0.01, 0.8)
    },
    Shape {
        window: 0.01,
        fill_main: true,
        ..S3FIFO
    },
    Shape {
        window: 0.01,
        ..S3FIFO
    },
];
/// S3-FIFO as published (Yang et al., SOSP 2023): a 10% small queue.
pub(crate) const S3FIFO: Shape = Shape {
    window: 0.1,
    protected: 0.0,
    s3fifo: true,
    staggered: false,
    fill_main: false,
    strict: false,
};
/// The shape a cache starts with: W-TinyLFU's classic.
pub(crate) const INITIAL: Shape = CANDIDATES[1];
/// Mini caches hold at least this many entries when the cache is large enough to sample.
pub(crate) const TARGET_SIM_ENTRIES: u64 = 1024;
/// The simulations run this many epochs, then rest (see `Sampler` in `memory/adaptation.rs`).
pub(crate) const ACTIVE_EPOCHS: u32 = 8;
/// An epoch lasts this many sampled requests per mini-cache entry.
const EPOCH_PER_ENTRY: u64 = 2;
/// Weight of the newest epoch in each candidate's score (an average over about four epochs:
/// long enough that one noisy epoch does not move the live cache, whose every change of window
/// costs hits while its regions resize).
const SCORE_DECAY: f64 = 0.25;
/// The current window is kept unless another scores better by this much (hit ratio), so noise
/// does not make the live cache flap between near-equal sizes.
const HYSTERESIS: f64 = 0.002;
/// Where two shapes trade the lead epoch by epoch, HYSTERESIS does not stop the flapping. A
/// loop whose period aliases with the epoch's length is one case: on lirs-loop at 768 entries
/// an epoch is 1.5 passes of the loop, and the no-window and 1% window shapes score 68 and 84
/// in alternate epochs, in opposite phase, so their decayed scores swap places every epoch.
/// So a switch back to the shape just left doubles the lead every switch needs from then on
/// (an exponential back-off). Each scored epoch without a switch multiplies the margin by
/// this, `0.5^(1 / ACTIVE_EPOCHS)`, so that a doubling fades over an active period.
const MARGIN_DECAY: f64 = 0.917;

/// The sampled requests per epoch of mini caches of `capacity` entries.
fn epoch_length(capacity: u64) -> u64 {
    EPOCH_PER_ENTRY.saturating_mul(capacity).max(256)
}

/// A sampled key stands in for itself in the mini caches: it is the live key's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SampledKey(u64);

/// Hashes a [`SampledKey`] to itself (it already is a hash).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Prehashed;

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

/// See [`Prehashed`].
#[derive(Debug)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `SampledKey`; fold anything else in, FNV-style.
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The mini caches and their scores.
#[derive(Debug)]
pub(crate) struct MiniSim {
    sims: Vec<Shard<SampledKey, (), Prehashed>>,
    /// Hits of each mini cache during this epoch.
    epoch_hits: [u64; CANDIDATES.len()],
    /// Decayed hit ratio of each candidate over past epochs.
    scores: [f64; CANDIDATES.len()],
    /// False until an epoch has been scored (a score of 0.0 is a real hit ratio).
    scored: bool,
    /// A mini cache has evicted: it is full (a weighted one may stay below its capacity).
    evicted: bool,
    epoch_requests: u64,
    /// Epochs completed since the simulations last woke up.
    active_epochs: u32,
    /// Epochs left that only warm the mini caches up again after a rest: not scored.
    warm_up_epochs: u8,
    epoch_length: u64,
    /// Index into [`CANDIDATES`] (and `sims`) of the shape in use.
    current: usize,
    /// The shape in use before `current`: a switch back to it is a flap.
    previous: Option<usize>,
    /// The lead a candidate needs over the shape in use to replace it: [`HYSTERESIS`], more
    /// after flaps (see [`MARGIN_DECAY`]).
    margin: f64,
    /// The shape in use changed since the simulations last woke up.
    switched: bool,
}

impl MiniSim {
    /// Mini caches of `capacity` entries each.
    pub(crate) fn new(capacity: u64) -> Self {
        Self::with_shapes(capacity, capacity, CANDIDATES)
    }

    /// Mini caches of `capacity` in weight, holding about `entries` entries (their sketches
    /// and epochs are sized by it). No shape is [strict](Shape::strict): with weights, the
    /// duel also sorts keys by size (a light newcomer needs one victim, a heavy one several),
    /// and the churn a strict duel stops is what moves a loop's cached set to its lighter
    /// keys (weighted lirs-loop −2.4 points on both rows with it, `docs/benchmarks.md`,
    /// session 17).
    pub(crate) fn weighted(capacity: u64, entries: u64) -> Self {
        Self::with_shapes(
            capacity,
            entries,
            CANDIDATES.map(|shape| Shape {
                strict: false,
                ..shape
            }),
        )
    }

    fn with_shapes(capacity: u64, entries: u64, shapes: [Shape; CANDIDATES.len()]) -> Self {
        let sims = shapes
            .iter()
            .enumerate()
            .map(|(i, &shape)| {
                let mut shard = Shard::new(
                    capacity,
                    usize::try_from(entries).unwrap_or(usize::MAX),
                    None,
                    i as u64 + 1,
                    Prehashed,
                );
                shard.pin(shape);
                shard
            })
            .collect();
        Self {
            sims,
            epoch_hits: [0; CANDIDATES.len()],
            scores: [0.0; CANDIDATES.len()],
            scored: false,
            evicted: false,
            epoch_requests: 0,
            active_epochs: 0,
            warm_up_epochs: 0,
            epoch_length: epoch_length(entries),
            current: 1,
            previous: None,
            margin: HYSTERESIS,
            switched: false,
        }
    }

    /// Replays one sampled request ("get; on a miss, insert", the key weighing `weight`) in
    /// every mini cache. Returns the shape to use when an epoch ends with a new choice.
    pub(crate) fn access(&mut self, hash: u64, weight: u32) -> Option<Shape> {
        let key = SampledKey(hash);
        let mut dropped = Removals::new(false, None);
        for (sim, hits) in self.sims.iter_mut().zip(&mut self.epoch_hits) {
            match sim.get(hash, &key, || 0) {
                Some(()) => *hits += 1,
                None => {
                    let entry = NewEntry {
                        hash,
                        key,
                        value: (),
                        weight,
                        expires_at: NEVER,
                        tags: Box::default(),
                        loan: 0,
                    };
                    sim.insert(entry, 0, &mut dropped);
                }
            }
        }
        self.evicted |= dropped.count(RemovalCause::Size) > 0;
        self.epoch_requests += 1;
        if self.epoch_requests < self.epoch_length {
            return None;
        }
        self.end_epoch()
    }

    fn end_epoch(&mut self) -> Option<Shape> {
        let (hits, requests) = self.take_epoch();
        let requests = requests as f64;
        self.active_epochs += 1;
        // Until the mini caches are full their hit ratios tell how they fill, not how they
        // evict: no scores from then. (Full: at capacity, or evicting; a weighted one may stay
        // just under its capacity.) A warm-up epoch is one that ends with them full.
        if !self.evicted && self.sims.iter().any(|sim| sim.weight() < sim.capacity()) {
            return None;
        }
        if self.warm_up_epochs > 0 {
            self.warm_up_epochs -= 1;
            return None;
        }
        let weight = if self.scored { SCORE_DECAY } else { 1.0 };
        for (score, hits) in self.scores.iter_mut().zip(hits) {
            *score = weight * (hits as f64 / requests) + (1.0 - weight) * *score;
        }
        self.scored = true;
        let (best, best_score) = self
            .scores
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("there are candidates");
        if best != self.current && best_score > self.scores[self.current] + self.margin {
            if self.previous == Some(best) {
                self.margin *= 2.0;
            }
            self.previous = Some(self.current);
            self.current = best;
            self.switched = true;
            return Some(self.sims[best].shape());
        }
        self.margin = (self.margin * MARGIN_DECAY).max(HYSTERESIS);
        None
    }

    /// The sampled requests per epoch.
    pub(crate) fn epoch_length(&self) -> u64 {
        self.epoch_length
    }

    /// True if the shape in use changed since the simulations last woke up.
    pub(crate) fn switched(&self) -> bool {
        self.switched
    }

    /// True once the simulations have run their active epochs and should rest.
    pub(crate) fn wants_rest(&self) -> bool {
        self.active_epochs >= ACTIVE_EPOCHS
    }

    /// Starts a new active period after a rest that let `missed` sampled requests by. The mini
    /// caches missed them, so the epoch under way only re-warms them, and so does the next one
    /// if less than half of this one is left. (Simulations that start after the live cache
    /// did, a weighted cache's, pass 0: their first epoch once full is not scored.)
    ///
    /// The epochs keep their clock through the rest: each starts where it would have, had the
    /// simulations run all along. Where a workload's period aliases with the epoch's length (a
    /// loop of 1.5 epochs), two shapes' scores alternate, and which one leads in which epoch
    /// depends on where the epochs start against the loop. With the clock kept, the epochs
    /// after a rest compare the same stretches as before it. Restarting it drew that phase
    /// again, and could hand every other epoch to the shape the one in use had beaten
    /// (lirs-loop at 768 entries: 75.74 against OPT's 75.81 in 40-run means;
    /// `docs/benchmarks.md`, session 21).
    pub(crate) fn wake(&mut self, missed: u64) {
        self.active_epochs = 0;
        self.switched = false;
        let (_, at) = self.take_epoch();
        self.epoch_requests = (at + missed % self.epoch_length) % self.epoch_length;
        let left = self.epoch_length - self.epoch_requests;
        self.warm_up_epochs = if left < self.epoch_length / 2 { 2 } else { 1 };
    }

    /// This epoch's hits per candidate and its request count; starts the next epoch at zero.
    fn take_epoch(&mut self) -> ([u64; CANDIDATES.len()], u64) {
        (
            std::mem::take(&mut self.epoch_hits),
            std::mem::take(&mut self.epoch_requests),
        )
    }

    /// The mini caches' capacity.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> u64 {
        self.sims[0].capacity()
    }

    /// The sampled requests of the epoch under way.
    #[cfg(test)]
    pub(crate) fn epoch_requests(&self) -> u64 {
        self.epoch_requests
    }

    /// The window fraction in use.
    #[cfg(test)]
    pub(crate) fn window(&self) -> f64 {
        self.sims[self.current].shape().window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(k: u64) -> u64 {
        k.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
    }

    /// The strict duel is for unit weights only: a weighted cache's simulations (and so the
    /// live cache, which takes their shapes) run every shape with the classic duel.
    #[test]
    fn only_unweighted_simulations_run_a_strict_shape() {
        let strict = |sim: &MiniSim| sim.sims.iter().filter(|s| s.shape().strict).count();
        assert_eq!(strict(&MiniSim::new(64)), 1);
        assert_eq!(strict(&MiniSim::weighted(64 * 8, 64)), 0);
    }

    /// Mini caches of 64 entries, full, every candidate scored 0.5 so far.
    fn full_sim() -> MiniSim {
        let mut sim = MiniSim::new(64);
        for k in 0..200_u64 {
            sim.access(mix(k), 1);
        }
        sim.scored = true;
        sim.scores = [0.5; CANDIDATES.len()];
        sim
    }

    /// Ends an epoch of 1,000 requests in which every candidate hit 300 times but those in
    /// `hits`; returns the index of the shape in use after it.
    fn epoch(sim: &mut MiniSim, hits: &[(usize, u64)]) -> usize {
        sim.warm_up_epochs = 0;
        sim.epoch_requests = 1_000;
        sim.epoch_hits = [300; CANDIDATES.len()];
        for &(candidate, h) in hits {
            sim.epoch_hits[candidate] = h;
        }
        sim.end_epoch();
        sim.current
    }

    /// Two shapes trading the lead every epoch (as on a loop whose period aliases with the
    /// epoch): the live cache must not follow each swap.
    fn flap(sim: &mut MiniSim, epochs: usize) -> usize {
        let mut switches = 0;
        let mut current = sim.current;
        for i in 0..epochs {
            let (a, b) = if i % 2 == 0 { (560, 440) } else { (440, 560) };
            let now = epoch(sim, &[(0, a), (1, b)]);
            switches += usize::from(now != current);
            current = now;
        }
        switches
    }

    #[test]
    fn two_shapes_trading_the_lead_back_off() {
        let mut sim = full_sim();
        // Without the back-off, a switch every epoch; with it, a few, then about one per
        // active period, as the margin fades back.
        let switches = flap(&mut sim, 40);
        assert!(
            (1..=10).contains(&switches),
            "{switches} switches in 40 epochs"
        );
        // A clear lead still wins at once.
        let outsider = 5;
        let epochs = (1..=3)
            .find(|_| epoch(&mut sim, &[(0, 500), (1, 500), (outsider, 900)]) == outsider)
            .expect("the clear leader takes over");
        assert!(epochs <= 2, "after {epochs} epochs");
    }

    #[test]
    fn the_back_off_fades_when_the_flapping_stops() {
        let mut sim = full_sim();
        flap(&mut sim, 40);
        // Quiet epochs, then a lead of one point wins again, as before the flapping.
        for _ in 0..10 * ACTIVE_EPOCHS {
            epoch(&mut sim, &[(0, 500), (1, 500), (2, 500)]);
        }
        let challenger = 2;
        assert_ne!(sim.current, challenger);
        let taken =
            (0..8).any(|_| epoch(&mut sim, &[(0, 500), (1, 500), (challenger, 510)]) == challenger);
        assert!(taken, "a one-point lead never won after the back-off");
        // A doubling halves over an active period.
        assert!((MARGIN_DECAY.powi(ACTIVE_EPOCHS as i32) - 0.5).abs() < 0.01);
    }

    /// A candidate whose score is a real 0.0 (LRU on a loop) moves by the decay weight when it
    /// starts hitting, like any other; 0.0 once meant "not scored yet" and reset its average.
    #[test]
    fn a_zero_score_is_averaged_like_any_other() {
        let mut sim = full_sim();
        sim.scores = [0.0; CANDIDATES.len()];
        sim.warm_up_epochs = 0;
        sim.epoch_requests = 100;
        sim.epoch_hits = [0; CANDIDATES.len()];
        sim.epoch_hits[5] = 100; // a perfect epoch for the last candidate
        sim.end_epoch();
        assert_eq!(sim.scores[5], SCORE_DECAY);
    }

    /// A loop slightly larger than the cache defeats LRU entirely; TinyLFU with a small window
    /// keeps a fixed part of it. The simulation must pick a small window.
    #[test]
    fn picks_a_small_window_for_a_loop() {
        let mut sim = MiniSim::new(500);
        for i in 0..60_000_u64 {
            sim.access(mix(i % 700), 1);
        }
        assert!(sim.window() <= 0.1, "window {}", sim.window());
    }

    /// After a rest the epoch under way ends where it would have without the rest, and it
    /// re-warms the mini caches; so does the next one when less than half of it was left.
    #[test]
    fn a_rest_keeps_the_epochs_clock() {
        let mut sim = MiniSim::new(64);
        let length = sim.epoch_length();
        for k in 0..100 {
            sim.access(mix(k), 1);
        }
        sim.wake(3 * length + 20);
        assert_eq!((sim.epoch_requests, sim.warm_up_epochs), (120, 1));
        sim.wake(length - 130);
        assert_eq!((sim.epoch_requests, sim.warm_up_epochs), (length - 10, 2));
    }

    /// A loop of 1.5 epochs, with rests of odd lengths between active periods, as the live
    /// cache runs them: the shape chosen in the first period must stay through the wakes.
    #[test]
    fn rests_do_not_move_the_epochs_against_a_loop() {
        let mut sim = MiniSim::new(512);
        let period = sim.epoch_length() * 3 / 2;
        let mut position = 0_u64;
        let mut shapes = Vec::new();
        for rest in [0, 7_001, 13_333, 5_555, 20_011, 9_999] {
            position += rest;
            sim.wake(rest);
            while !sim.wants_rest() {
                sim.access(mix(position % period), 1);
                position += 1;
            }
            shapes.push(sim.current);
        }
        assert!(
            shapes[1..].iter().all(|&s| s == shapes[1]),
            "shapes after each active period: {shapes:?}"
        );
    }

    /// Recency-skewed traffic (each key requested again shortly after it is first seen, never
    /// again later) favours LRU: the simulation must move to a large window.
    #[test]
    fn picks_a_large_window_for_recency() {
        let mut sim = MiniSim::new(500);
        let mut next = 0_u64;
        let mut recent = std::collections::VecDeque::new();
        let mut x = 7_u64;
        for _ in 0..60_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half the requests are new keys; half re-request one of the last 400 new keys.
            if x.is_multiple_of(2) || recent.is_empty() {
                next += 1;
                recent.push_back(next);
                if recent.len() > 400 {
                    recent.pop_front();
                }
                sim.access(mix(next), 1);
            } else {
                let k = recent[(x >> 8) as usize % recent.len()];
                sim.access(mix(k), 1);
            }
        }
        assert!(sim.window() >= 0.3, "window {}", sim.window());
    }
}
