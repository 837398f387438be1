//! How a cache chooses its policy's shape while it runs: miniature simulations for unit-weight
//! caches, a hill climber for weighted ones (whose entry counts the mini caches cannot model).
//! One per cache, not per shard: it sees every request. See `docs/memory-tier.md`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::policy::climber::Climber;
use crate::policy::minisim::{ACTIVE_EPOCHS, INITIAL, MiniSim, Shape, TARGET_SIM_ENTRIES};
use crate::stats::{Counter, ThreadCounters, thread_stripe};

/// A shard reports to the adaptation once per this many inserts.
pub(super) const ADAPT_EVERY_INSERTS: u32 = 64;
/// The climber samples 10 requests per unit of capacity (Caffeine's sample size).
const SAMPLE_PER_CAPACITY: u64 = 10;
/// Sampled requests are replayed in the mini caches in batches of this many.
const SAMPLE_BATCH: usize = 64;
/// After an active period the simulations rest this many times as long: a quarter of the
/// requests pay for sampling, which keeps its cost near a nanosecond per read.
const REST_FACTOR: u64 = 3;

/// The shape shared by all shards, and what chooses it.
pub(super) struct Adaptation {
    sampler: Option<Sampler>,
    climber: Mutex<Climber>,
    /// The policy shape in use (read by shards only when `epoch` moved).
    shape: Mutex<Shape>,
    /// Bumped on each change of `shape`; a shard re-reads the shape when it sees a new epoch.
    epoch: AtomicU64,
    /// Set once the cache first evicted for size; the climber ignores warm-up.
    full: AtomicBool,
}

impl Adaptation {
    pub(super) fn new(capacity: u64, weighted: bool) -> Self {
        Self {
            sampler: (!weighted).then(|| Sampler::new(capacity)),
            climber: Mutex::new(Climber::new(SAMPLE_PER_CAPACITY * capacity)),
            shape: Mutex::new(INITIAL),
            epoch: AtomicU64::new(0),
            full: AtomicBool::new(false),
        }
    }

    /// The shape to apply if it changed since `seen` (a shard's last epoch), updating `seen`.
    pub(super) fn changed_since(&self, seen: &mut u64) -> Option<Shape> {
        let epoch = self.epoch.load(Ordering::Acquire);
        if *seen == epoch {
            return None;
        }
        *seen = epoch;
        Some(*self.shape.lock())
    }

    /// Called by every read: samples it for the mini simulations (one flag check when the key
    /// is not sampled or the simulations rest).
    #[inline]
    pub(super) fn on_read(&self, hash: u64, stats: &ThreadCounters) {
        if let Some(sampler) = &self.sampler
            && sampler.samples(hash)
            && let Some(shape) = sampler.record(hash, || requests(stats))
        {
            self.publish(shape);
        }
    }

    /// Called every [`ADAPT_EVERY_INSERTS`] inserts of a shard: wakes resting simulations, or
    /// feeds the climber (weighted caches).
    pub(super) fn on_inserts(&self, stats: &ThreadCounters) {
        if let Some(sampler) = &self.sampler {
            sampler.maybe_wake(|| requests(stats));
            return;
        }
        if !self.full.load(Ordering::Relaxed) {
            if stats.get(Counter::EvictedSize) == 0 {
                return;
            }
            self.full.store(true, Ordering::Relaxed);
        }
        let Some(mut climber) = self.climber.try_lock() else {
            return; // another thread is adapting right now
        };
        if let Some(window) = climber.record(stats.get(Counter::Hits), stats.get(Counter::Misses)) {
            drop(climber);
            self.publish(Shape {
                window,
                protected: INITIAL.protected,
                s3fifo: false,
            });
        }
    }

    /// Makes every shard take `shape` at its next write.
    fn publish(&self, shape: Shape) {
        *self.shape.lock() = shape;
        self.epoch.fetch_add(1, Ordering::Release);
    }
}

/// Requests (hits + misses) so far.
fn requests(stats: &ThreadCounters) -> u64 {
    stats.get(Counter::Hits) + stats.get(Counter::Misses)
}

/// Feeds sampled requests to the miniature simulations (see `policy/minisim.rs`). They run in
/// active periods and rest in between; while they rest a read checks one flag.
struct Sampler {
    sim: Mutex<MiniSim>,
    /// False while the simulations rest.
    active: AtomicBool,
    /// The cache's request count at which resting simulations wake up.
    wake_at: AtomicU64,
    /// Sampling rate denominator: one key in `den` is sampled.
    den: u64,
    /// A key is sampled when `(hash >> 40) & mask == 0` (bits the shard and table do not use).
    mask: u64,
    /// Per-thread-stripe buffers of sampled hashes: a sampled read never touches a queue that
    /// other threads write, and only `try_lock`s its own stripe.
    buffers: Box<[CachePadded<Mutex<Vec<u64>>>]>,
}

impl Sampler {
    fn new(capacity: u64) -> Self {
        let rate = (capacity / TARGET_SIM_ENTRIES).max(1);
        let den = (1_u64 << rate.ilog2()).min(1 << 16);
        let stripes =
            (std::thread::available_parallelism().map_or(4, |n| n.get()) * 2).next_power_of_two();
        Self {
            sim: Mutex::new(MiniSim::new(capacity.div_ceil(den))),
            active: AtomicBool::new(true),
            wake_at: AtomicU64::new(0),
            den,
            mask: den - 1,
            buffers: (0..stripes)
                .map(|_| CachePadded::new(Mutex::new(Vec::with_capacity(SAMPLE_BATCH))))
                .collect(),
        }
    }

    #[inline]
    fn samples(&self, hash: u64) -> bool {
        (hash >> 40) & self.mask == 0 && self.active.load(Ordering::Relaxed)
    }

    /// Buffers a sampled request; replays a full buffer. Returns a newly chosen shape, and
    /// puts the simulations to rest (until `requests()` has grown enough) after their active
    /// period.
    fn record(&self, hash: u64, requests: impl FnOnce() -> u64) -> Option<Shape> {
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
        let shape = batch.into_iter().filter_map(|hash| sim.access(hash)).last();
        if sim.wants_rest() && self.active.load(Ordering::Relaxed) {
            let active_requests = u64::from(ACTIVE_EPOCHS) * sim.epoch_length() * self.den;
            self.wake_at.store(
                requests() + REST_FACTOR * active_requests,
                Ordering::Relaxed,
            );
            self.active.store(false, Ordering::Relaxed);
        }
        shape
    }

    /// Wakes resting simulations once enough requests went by (called from writes).
    fn maybe_wake(&self, requests: impl FnOnce() -> u64) {
        if self.active.load(Ordering::Relaxed) || requests() < self.wake_at.load(Ordering::Relaxed)
        {
            return;
        }
        if let Some(mut sim) = self.sim.try_lock() {
            sim.wake();
            self.active.store(true, Ordering::Relaxed);
        }
    }
}
