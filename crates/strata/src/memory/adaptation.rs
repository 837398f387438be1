//! How a cache chooses its policy's shape while it runs: miniature simulations of every
//! candidate shape, fed a sample of the requests. One per cache, not per shard: it sees every
//! request. See `docs/memory-tier.md`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::policy::minisim::{
    ACTIVE_EPOCHS, CANDIDATES, INITIAL, MiniSim, Shape, TARGET_SIM_ENTRIES,
};
use crate::stats::{Counter, ThreadCounters, thread_stripe};

/// A shard reports to the adaptation once per this many inserts.
pub(super) const ADAPT_EVERY_INSERTS: u32 = 64;
/// Sampled requests are replayed in the mini caches in batches of this many.
const SAMPLE_BATCH: usize = 64;
/// After an active period that changed the shape, the simulations rest this many times as
/// long: a quarter of the requests pay for sampling.
const REST_FACTOR: u64 = 3;
/// Each active period that kept the shape doubles the next rest, until the simulations cost
/// at most this many mini-cache accesses per request on average (see `Sampler::max_rest`): a
/// workload that stays put stops paying for them. A small cache needs this most: its mini
/// caches are as large as itself and replay every request once per candidate, which halved its
/// throughput at 1,000 entries. A large cache samples few requests, and rests 3× at most.
const STABLE_COST: f64 = 1.0 / 16.0;
/// A resting simulation wakes early, and its rests start over from [`REST_FACTOR`], when the
/// live cache's hit ratio over an active period's worth of requests falls this far below its
/// level in the last active period: the workload changed, and the shape may no longer fit it.
/// Only a fall counts: the shape in use is doing better, not worse. A window as long as an
/// active period keeps a bursty trace's swings from waking the simulations (more active
/// periods than now cost lirs-sprite up to 0.7 points).
const DRIFT: f64 = 0.05;

/// What chooses the policy's shape.
enum Chooser {
    /// Unit-weight caches: miniature simulations of every candidate shape.
    Simulations(Box<Sampler>),
    /// Weighted caches (their capacity beside): the same simulations, of weighted mini caches.
    /// Their sampling rate depends on how many entries the cache holds, which its mean weight
    /// so far tells: they start at the first report of inserts.
    WeightedSimulations(OnceLock<Box<Sampler>>, u64),
    /// A pinned policy (`EvictionPolicy`): nothing changes the shape.
    Fixed,
}

/// The shape shared by all shards, and what chooses it.
pub(super) struct Adaptation {
    chooser: Chooser,
    /// The policy shape in use (read by shards only when `epoch` moved).
    shape: Mutex<Shape>,
    /// Bumped on each change of `shape`; a shard re-reads the shape when it sees a new epoch.
    epoch: AtomicU64,
    /// The sampler's `mask`, or [`NEVER_SAMPLED`] while there is no sampler: a read checks
    /// this one word, kept beside the shape's epoch, before it looks for the sampler.
    sample_mask: AtomicU64,
}

/// A `sample_mask` no hash passes: a hash's sampled bits (`hash >> 40`) never reach bit 63,
/// which [`Adaptation::sampled`] sets.
const NEVER_SAMPLED: u64 = 1 << 63;

impl Adaptation {
    pub(super) fn new(capacity: u64, weighted: bool) -> Self {
        let chooser = if weighted {
            Chooser::WeightedSimulations(OnceLock::new(), capacity)
        } else {
            Chooser::Simulations(Box::new(Sampler::new(capacity)))
        };
        Self::with(chooser, INITIAL)
    }

    /// A pinned shape that nothing changes.
    pub(super) fn fixed(shape: Shape) -> Self {
        Self::with(Chooser::Fixed, shape)
    }

    fn with(chooser: Chooser, shape: Shape) -> Self {
        let sample_mask = match &chooser {
            Chooser::Simulations(sampler) => sampler.mask,
            Chooser::WeightedSimulations(..) | Chooser::Fixed => NEVER_SAMPLED,
        };
        Self {
            chooser,
            shape: Mutex::new(shape),
            epoch: AtomicU64::new(0),
            sample_mask: AtomicU64::new(sample_mask),
        }
    }

    /// True if `hash` is a sampled key's (whether or not the simulations rest).
    #[inline]
    fn sampled(&self, hash: u64) -> bool {
        ((hash >> 40) | NEVER_SAMPLED) & self.sample_mask.load(Ordering::Relaxed) == 0
    }

    /// The shape to apply if it changed since `seen` (a shard's last epoch), updating `seen`.
    #[inline]
    pub(super) fn changed_since(&self, seen: &mut u64) -> Option<Shape> {
        let epoch = self.epoch.load(Ordering::Acquire);
        if *seen == epoch {
            return None;
        }
        *seen = epoch;
        Some(self.shape())
    }

    #[cold]
    fn shape(&self) -> Shape {
        *self.shape.lock()
    }

    /// Called by every read: samples it for the mini simulations (one check of a word beside
    /// the shape's epoch when the key is not sampled).
    #[inline]
    pub(super) fn on_read(&self, hash: u64, stats: &ThreadCounters) {
        if self.sampled(hash)
            && let Some(sampler) = self.sampler()
            && sampler.samples(hash)
            && let Some(shape) = sampler.record(hash, stats)
        {
            self.publish(shape);
        }
    }

    #[inline]
    fn sampler(&self) -> Option<&Sampler> {
        match &self.chooser {
            Chooser::Simulations(sampler) => Some(sampler),
            Chooser::WeightedSimulations(sampler, _) => sampler.get().map(|s| &**s),
            Chooser::Fixed => None,
        }
    }

    /// Called by every insert: in a weighted cache, the mini caches learn a sampled key's
    /// weight.
    #[inline]
    pub(super) fn on_insert(&self, hash: u64, weight: u32) {
        if self.sampled(hash)
            && let Chooser::WeightedSimulations(sampler, _) = &self.chooser
            && let Some(sampler) = sampler.get()
            && sampler.samples(hash)
        {
            sampler.remember(hash, weight);
        }
    }

    /// Called every [`ADAPT_EVERY_INSERTS`] inserts of a shard, with the entries the cache
    /// holds when full as that shard estimates them: wakes resting simulations; in a weighted
    /// cache, starts them first.
    pub(super) fn on_inserts(&self, stats: &ThreadCounters, entries: u64) {
        match &self.chooser {
            Chooser::Simulations(sampler) => sampler.maybe_wake(stats),
            Chooser::WeightedSimulations(sampler, capacity) => match sampler.get() {
                Some(sampler) => sampler.maybe_wake(stats),
                None => {
                    let sampler = sampler.get_or_init(|| {
                        let sampler = Sampler::weighted(*capacity, entries);
                        // The live cache has a head start: the mini caches' first epoch once
                        // full measures their fill's aftermath, not the shapes.
                        sampler.sim.lock().wake(0);
                        Box::new(sampler)
                    });
                    self.sample_mask.store(sampler.mask, Ordering::Relaxed);
                }
            },
            Chooser::Fixed => {}
        }
    }

    /// Makes every shard take `shape` at its next write.
    fn publish(&self, shape: Shape) {
        *self.shape.lock() = shape;
        self.epoch.fetch_add(1, Ordering::Release);
    }
}

/// Hits and requests (hits + misses) so far.
fn counts(stats: &ThreadCounters) -> (u64, u64) {
    let hits = stats.get(Counter::Hits);
    (hits, hits + stats.get(Counter::Misses))
}

/// The live cache's hit ratio as a resting simulation watches it.
struct Watch {
    /// The hit ratio over the last active period: the level the shape in use was chosen at.
    reference: f64,
    /// Hits and requests at the start of the active period, or of the current watch window.
    start: (u64, u64),
}

impl Watch {
    /// The hit ratio since `start`, and the requests it covers.
    fn since(&self, (hits, requests): (u64, u64)) -> (f64, u64) {
        let n = requests.saturating_sub(self.start.1);
        let ratio = hits.saturating_sub(self.start.0) as f64 / n.max(1) as f64;
        (ratio, n)
    }
}

/// Feeds sampled requests to the miniature simulations (see `policy/minisim.rs`). They run in
/// active periods and rest in between; while they rest a read checks one flag.
struct Sampler {
    sim: Mutex<MiniSim>,
    /// False while the simulations rest.
    active: AtomicBool,
    /// The cache's request count at which resting simulations wake up.
    wake_at: AtomicU64,
    /// The length of the next rest, in active periods (written under the `sim` lock).
    rest_factor: AtomicU64,
    /// The cache's request count when the simulations last went to rest.
    rest_started: AtomicU64,
    /// The live hit ratio, watched while the simulations rest.
    watch: Mutex<Watch>,
    /// The requests of one active period: the unit of a rest's length, and the window over
    /// which a resting simulation watches the live hit ratio.
    period: u64,
    /// The longest rest, in active periods: while active, the simulations cost
    /// `CANDIDATES / R` mini-cache accesses per request (one key in R sampled); resting this
    /// long brings the average down to [`STABLE_COST`].
    max_rest: u64,
    /// A key is sampled when `(hash >> 40) & mask == 0` (bits the shard and table do not use):
    /// one key in `mask + 1`.
    mask: u64,
    /// Weighted caches: the weights of sampled keys, direct-mapped (a slot holds the top half
    /// of a key's hash and its weight; 0 is empty), and the mean weight, for a key not found
    /// there.
    weights: Option<(Box<[AtomicU64]>, u32)>,
    /// Per-thread-stripe buffers of sampled hashes: a sampled read never touches a queue that
    /// other threads write, and only `try_lock`s its own stripe.
    buffers: Box<[CachePadded<Mutex<Vec<u64>>>]>,
}

impl Sampler {
    /// Simulations of caches of `capacity` entries.
    fn new(capacity: u64) -> Self {
        Self::sampling(capacity, |den| MiniSim::new(capacity.div_ceil(den)))
    }

    /// Simulations of weighted caches of `capacity` in weight, holding about `entries`: the
    /// sampling rate is chosen by `entries`, as for unit weights, and each mini cache gets
    /// that share of `capacity`.
    fn weighted(capacity: u64, entries: u64) -> Self {
        // Weightless entries can make the estimate absurd; past this, mini caches grow anyway.
        let entries = entries.clamp(1, TARGET_SIM_ENTRIES << 16);
        let mut sampler = Self::sampling(entries, |den| {
            MiniSim::weighted(capacity.div_ceil(den), entries.div_ceil(den))
        });
        // Room for the weights of about four times the keys a mini cache holds.
        let slots = (4 * entries.div_ceil(sampler.mask + 1))
            .next_power_of_two()
            .max(1024);
        let mean = u32::try_from(capacity / entries.max(1))
            .unwrap_or(u32::MAX)
            .max(1);
        sampler.weights = Some(((0..slots).map(|_| AtomicU64::new(0)).collect(), mean));
        sampler
    }

    /// Samples one key in R, R chosen so that mini caches for `entries` hold about
    /// [`TARGET_SIM_ENTRIES`]; `sim(R)` builds them.
    fn sampling(entries: u64, sim: impl FnOnce(u64) -> MiniSim) -> Self {
        let rate = (entries / TARGET_SIM_ENTRIES).max(1);
        let den = (1_u64 << rate.ilog2()).min(1 << 16);
        let stripes =
            (std::thread::available_parallelism().map_or(4, |n| n.get()) * 2).next_power_of_two();
        let sim = sim(den);
        Self {
            // Saturating: a bound no cache reaches (`u64::MAX`) must not overflow.
            period: u64::from(ACTIVE_EPOCHS)
                .saturating_mul(sim.epoch_length())
                .saturating_mul(den),
            max_rest: ((CANDIDATES.len() as f64 / den as f64 / STABLE_COST) as u64)
                .saturating_sub(1)
                .max(REST_FACTOR),
            sim: Mutex::new(sim),
            active: AtomicBool::new(true),
            wake_at: AtomicU64::new(0),
            rest_factor: AtomicU64::new(REST_FACTOR),
            rest_started: AtomicU64::new(0),
            watch: Mutex::new(Watch {
                reference: 0.0,
                start: (0, 0),
            }),
            mask: den - 1,
            weights: None,
            buffers: (0..stripes)
                .map(|_| CachePadded::new(Mutex::new(Vec::with_capacity(SAMPLE_BATCH))))
                .collect(),
        }
    }

    /// Records a sampled key's weight (a weighted cache's insert).
    fn remember(&self, hash: u64, weight: u32) {
        if let Some((slots, _)) = &self.weights {
            let slot = &slots[hash as usize & (slots.len() - 1)];
            slot.store((hash & !0xFFFF_FFFF) | u64::from(weight), Ordering::Relaxed);
        }
    }

    /// A sampled key's weight: as last inserted, or the mean (1 in a unit-weight cache).
    fn weight_of(&self, hash: u64) -> u32 {
        match &self.weights {
            None => 1,
            Some((slots, mean)) => {
                let slot = slots[hash as usize & (slots.len() - 1)].load(Ordering::Relaxed);
                if slot != 0 && slot & !0xFFFF_FFFF == hash & !0xFFFF_FFFF {
                    slot as u32
                } else {
                    *mean
                }
            }
        }
    }

    #[inline]
    fn samples(&self, hash: u64) -> bool {
        (hash >> 40) & self.mask == 0 && self.active.load(Ordering::Relaxed)
    }

    /// Buffers a sampled request; replays a full buffer. Returns a newly chosen shape, and
    /// puts the simulations to rest after their active period: for longer each time they kept
    /// the shape, up to `max_rest`.
    fn record(&self, hash: u64, stats: &ThreadCounters) -> Option<Shape> {
        let stripe = &self.buffers[thread_stripe() & (self.buffers.len() - 1)];
        let mut buffer = stripe.try_lock()?;
        buffer.push(hash);
        if buffer.len() < SAMPLE_BATCH {
            return None;
        }
        let batch = std::mem::replace(&mut *buffer, Vec::with_capacity(SAMPLE_BATCH));
        drop(buffer);
        // Lossy like Caffeine's read buffer: if another thread is replaying, drop this batch.
        let mut sim = self.sim.try_lock()?;
        let shape = batch
            .into_iter()
            .filter_map(|hash| sim.access(hash, self.weight_of(hash)))
            .last();
        if sim.wants_rest() && self.active.load(Ordering::Relaxed) {
            let rest_factor = if sim.switched() {
                REST_FACTOR
            } else {
                (self.rest_factor.load(Ordering::Relaxed) * 2).min(self.max_rest)
            };
            self.rest_factor.store(rest_factor, Ordering::Relaxed);
            let now = counts(stats);
            let mut watch = self.watch.lock();
            watch.reference = watch.since(now).0;
            watch.start = now;
            self.wake_at.store(
                now.1
                    .saturating_add(rest_factor.saturating_mul(self.period)),
                Ordering::Relaxed,
            );
            self.rest_started.store(now.1, Ordering::Relaxed);
            self.active.store(false, Ordering::Relaxed);
        }
        shape
    }

    /// Wakes resting simulations once their rest is over, or early when the live hit ratio
    /// drifted (see [`DRIFT`]). Called from writes.
    fn maybe_wake(&self, stats: &ThreadCounters) {
        if self.active.load(Ordering::Relaxed) {
            return;
        }
        let now = counts(stats);
        let rested = now.1 >= self.wake_at.load(Ordering::Relaxed);
        let Some(mut watch) = self.watch.try_lock() else {
            return;
        };
        let (ratio, window) = watch.since(now);
        let drifted = window >= self.period && watch.reference - ratio > DRIFT;
        if !rested && !drifted {
            if window >= self.period {
                watch.start = now;
            }
            return;
        }
        if let Some(mut sim) = self.sim.try_lock() {
            if drifted {
                self.rest_factor.store(REST_FACTOR, Ordering::Relaxed);
            }
            watch.start = now;
            // The sampled requests the rest let by: one in `mask + 1` of all requests.
            let missed = now
                .1
                .saturating_sub(self.rest_started.load(Ordering::Relaxed))
                / (self.mask + 1);
            sim.wake(missed);
            self.active.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays `n` requests of a workload that never changes the shape (16 keys, which never
    /// fill the mini caches, so no epoch is scored), counting them as hits or misses in the
    /// live statistics as `hit` says.
    fn replay(sampler: &Sampler, stats: &ThreadCounters, n: u64, hit: bool) {
        for i in 0..n {
            stats.add(if hit { Counter::Hits } else { Counter::Misses }, 1);
            if sampler.samples(i % 16) {
                assert_eq!(sampler.record(i % 16, stats), None);
            }
        }
    }

    /// Runs requests until the simulations go to rest, then checks the rest's length.
    fn run_active_period(sampler: &Sampler, stats: &ThreadCounters) -> u64 {
        assert!(sampler.active.load(Ordering::Relaxed));
        let start = counts(stats).1;
        while sampler.active.load(Ordering::Relaxed) {
            replay(sampler, stats, SAMPLE_BATCH as u64, true);
            assert!(counts(stats).1 - start <= 2 * sampler.period, "never rests");
        }
        let rest = sampler.wake_at.load(Ordering::Relaxed) - counts(stats).1;
        assert_eq!(
            rest,
            sampler.rest_factor.load(Ordering::Relaxed) * sampler.period
        );
        rest
    }

    /// Sleeps through a rest: requests at the same hit ratio, then the wake-up.
    fn rest(sampler: &Sampler, stats: &ThreadCounters, requests: u64) {
        let step = sampler.period / 4;
        let mut done = 0;
        while done < requests {
            replay(sampler, stats, step, true);
            done += step;
            sampler.maybe_wake(stats);
            let awake = sampler.active.load(Ordering::Relaxed);
            assert_eq!(awake, done >= requests, "after {done} of {requests}");
        }
    }

    #[test]
    fn rests_twice_as_long_each_time_the_shape_holds_up_to_the_cap() {
        let sampler = Sampler::new(64);
        let stats = ThreadCounters::new();
        let mut rests = Vec::new();
        for _ in 0..7 {
            let length = run_active_period(&sampler, &stats);
            rests.push(length / sampler.period);
            rest(&sampler, &stats, length);
        }
        // Every request sampled (R = 1): resting 16 × CANDIDATES − 1 periods brings as many
        // mini-cache accesses per request as there are candidates down to 1/16.
        let cap = 16 * CANDIDATES.len() as u64 - 1;
        assert_eq!(rests, [6, 12, 24, 48, 96, cap, cap]);
    }

    /// The epochs keep their clock through a rest (`MiniSim::wake`): on waking, the one under
    /// way has gone on by every sampled request of the rest (all of them, at R = 1).
    #[test]
    fn a_rest_moves_the_epochs_clock_by_the_requests_it_let_by() {
        let sampler = Sampler::new(64);
        let stats = ThreadCounters::new();
        for _ in 0..2 {
            // Up to the request that starts the rest, then a rest woken by the first write
            // after its end: not a whole number of epochs.
            while sampler.active.load(Ordering::Relaxed) {
                replay(&sampler, &stats, 1, true);
            }
            let (at, epoch) = {
                let sim = sampler.sim.lock();
                (sim.epoch_requests(), sim.epoch_length())
            };
            let rested = sampler.wake_at.load(Ordering::Relaxed) - counts(&stats).1 + 37;
            replay(&sampler, &stats, rested, true);
            sampler.maybe_wake(&stats);
            assert!(sampler.active.load(Ordering::Relaxed));
            let expected = (at + rested) % epoch;
            assert_ne!(expected, at);
            assert_eq!(sampler.sim.lock().epoch_requests(), expected);
        }
    }

    #[test]
    fn a_large_cache_samples_few_requests_and_keeps_short_rests() {
        // One key in 64 sampled: 8/64 of a mini-cache access per request even while active.
        let sampler = Sampler::new(64 * TARGET_SIM_ENTRIES);
        assert_eq!(sampler.max_rest, REST_FACTOR);
        // One in 4: 16 × CANDIDATES / 4 − 1 periods.
        let max_rest = 4 * CANDIDATES.len() as u64 - 1;
        assert_eq!(Sampler::new(4 * TARGET_SIM_ENTRIES).max_rest, max_rest);
    }

    #[test]
    fn a_falling_hit_ratio_wakes_a_long_rest_early_and_shortens_the_next() {
        let sampler = Sampler::new(64);
        let stats = ThreadCounters::new();
        // Rests grow to the longest.
        loop {
            let length = run_active_period(&sampler, &stats);
            if length == sampler.max_rest * sampler.period {
                break;
            }
            rest(&sampler, &stats, length);
        }
        // The workload changes: a period's worth of misses (hit ratio 1.0 -> 0.0).
        replay(&sampler, &stats, sampler.period, false);
        sampler.maybe_wake(&stats);
        assert!(sampler.active.load(Ordering::Relaxed), "still resting");
        // No shape change in this period either, but the rests start over.
        assert_eq!(
            run_active_period(&sampler, &stats),
            2 * REST_FACTOR * sampler.period
        );
    }

    #[test]
    fn a_weighted_cache_simulates_weighted_mini_caches() {
        // 100,000 in weight, entries of mean weight 20: 5,000 entries, so one key in 4 is
        // sampled and each mini cache gets a quarter of the weight.
        let adaptation = Adaptation::new(100_000, true);
        let stats = ThreadCounters::new();
        assert!(
            adaptation.sampler().is_none(),
            "simulating before any insert"
        );
        adaptation.on_inserts(&stats, 5_000);
        let sampler = adaptation
            .sampler()
            .expect("simulating after the first report");
        assert_eq!(sampler.mask + 1, 4);
        assert_eq!(sampler.sim.lock().capacity(), 25_000);
        // A sampled key's weight, once inserted, is what the mini caches replay it with;
        // an unknown key weighs the mean.
        let sampled = (0_u64..)
            .map(|i| i << 20)
            .find(|&h| sampler.samples(h))
            .expect("one");
        assert_eq!(sampler.weight_of(sampled), 20);
        adaptation.on_insert(sampled, 7);
        assert_eq!(sampler.weight_of(sampled), 7);
        assert_eq!(sampler.weight_of(sampled ^ (1 << 50)), 20, "another key");
        // A unit-weight cache's keys weigh 1.
        assert_eq!(Sampler::new(64).weight_of(sampled), 1);
    }

    #[test]
    fn a_rising_hit_ratio_does_not_wake_the_simulations() {
        let sampler = Sampler::new(64);
        let stats = ThreadCounters::new();
        // An active period at a hit ratio of one half.
        for i in 0.. {
            if !sampler.active.load(Ordering::Relaxed) {
                break;
            }
            replay(&sampler, &stats, 1, i % 2 == 0);
        }
        replay(&sampler, &stats, 2 * sampler.period, true);
        sampler.maybe_wake(&stats);
        assert!(!sampler.active.load(Ordering::Relaxed));
    }
}
