//! A count-min sketch of 4-bit counters that estimates how often a key was seen recently.
//!
//! This is TinyLFU's frequency filter (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient
//! Cache Admission Policy", 2017), laid out as Caffeine's `FrequencySketch` (block variant):
//! the four counters of a key all sit in one 64-byte block, so counting or estimating a key
//! costs one cache miss instead of four. A periodic halving ("reset") ages out old popularity
//! so the sketch follows a changing workload: all counters at once, or one block at a time
//! at the same pace (`set_staggered`, one of the shapes the adaptation can choose).
//!
//! Each sketch mixes a random seed into the counter positions. TinyLFU can be attacked by
//! inflating a resident victim's estimate with keys that share its counters, so that every
//! newcomer loses the duel and the cache freezes. Caffeine, whose key hashes are predictable,
//! answers with admitting at random; that also churns benign workloads whose keys tie (a loop
//! lost up to 7 points to it here). With seeded positions an attacker cannot pick keys that
//! share a victim's counters, short of colliding the full 64-bit key hash, which the cache's
//! default hasher (seeded per cache) prevents as well.

/// Clears the top bit of every 4-bit counter after a right shift (halving all counters).
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
/// The lowest bit of every 4-bit counter (used to count the odd counters lost by halving).
const ONE_MASK: u64 = 0x1111_1111_1111_1111;
/// Saturation value of a 4-bit counter.
pub(crate) const MAX_FREQUENCY: u8 = 15;
/// A new sketch has room for at most this many keys; it doubles as its shard fills (see
/// [`FrequencySketch::reserve`]), so a cache bounded far above what it holds (`u64::MAX` for
/// "no bound") does not allocate for its bound.
const INITIAL_KEYS: usize = 4096;

/// Eight words of sixteen 4-bit counters, one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Block([u64; 8]);

/// Frequency estimates for keys (by hash); see the module docs.
#[derive(Debug)]
pub(crate) struct FrequencySketch {
    table: Box<[Block]>,
    /// `table.len() - 1`; the length is a power of two.
    mask: usize,
    /// Additions after which all counters are halved (10 × the number of keys sized for).
    sample_size: u64,
    /// Additions since the last reset.
    additions: u64,
    /// Mixed into every hash before it picks counters (see the module docs).
    seed: u64,
    /// Ages a block at a time: see [`set_staggered`](Self::set_staggered).
    staggered: bool,
    /// The next block a staggered sketch halves.
    age_next: usize,
    /// The resident keys the sketch is for: its table grows to them (see `reserve`).
    keys: usize,
}

impl FrequencySketch {
    /// A sketch for up to `entries` distinct resident keys (16 counters per key), aging every
    /// 10 × `entries` additions, its counter positions seeded with `seed`. Its table starts
    /// with room for at most [`INITIAL_KEYS`] keys.
    pub(crate) fn new(entries: usize, seed: u64) -> Self {
        Self::with_room(entries, entries.min(INITIAL_KEYS), seed)
    }

    /// A sketch for `entries` keys whose table has room for `room` of them.
    fn with_room(entries: usize, room: usize, seed: u64) -> Self {
        let blocks = blocks_for(room);
        Self {
            table: vec![Block::default(); blocks].into_boxed_slice(),
            mask: blocks - 1,
            sample_size: (entries.max(1) as u64).saturating_mul(10),
            additions: 0,
            seed,
            staggered: false,
            age_next: 0,
            keys: entries.max(1),
        }
    }

    /// Staggered aging halves one block every `sample_size / blocks` additions, in turn,
    /// instead of every counter every `sample_size` additions: no halving sets off a burst of
    /// admissions, but keys in a block halved just now look rarer than the others for a while.
    pub(crate) fn set_staggered(&mut self, staggered: bool) {
        if staggered && !self.staggered {
            // Keep the pace: the blocks due so far would all be halved at once otherwise.
            self.additions %= self.per_block();
        }
        self.staggered = staggered;
    }

    /// Additions between two blocks' halvings in staggered aging. The table's length is a
    /// power of two, so this is a shift by the mask's trailing ones (one `bsf`; a division
    /// took ~30 cycles, and `count_ones` is a software popcount on baseline x86-64).
    fn per_block(&self) -> u64 {
        (self.sample_size >> self.mask.trailing_ones()).max(1)
    }

    /// The number of resident keys the table has room for (16 counters each).
    pub(crate) fn room(&self) -> usize {
        self.table.len() * 8
    }

    /// Starts over as a sketch for `entries` keys, with the same seed and aging.
    pub(crate) fn start_over(&mut self, entries: usize) {
        self.start_over_with_room(entries, entries.min(INITIAL_KEYS));
    }

    /// Starts over as a sketch for `entries` keys with room for `room` of them.
    fn start_over_with_room(&mut self, entries: usize, room: usize) {
        let staggered = self.staggered;
        *self = Self::with_room(entries, room, self.seed);
        self.staggered = staggered;
    }

    /// Makes room for `resident` keys. Up to the keys the sketch is for, by doubling the
    /// table, each block copied into both halves: a key's block is its old one or the copy of
    /// it, so every estimate stays what it was (a count-min sketch may overcount, never
    /// undercount). Past them (a weighted cache's first guess was low), once twice as many
    /// are resident, the sketch starts over for them: its counts were aged on a period too
    /// short for the cache (keeping them cost arc-p3-160000 1.3 points with weights 1–16).
    pub(crate) fn reserve(&mut self, resident: usize) {
        if resident > 2 * self.keys {
            self.start_over_with_room(resident, resident);
        } else if resident > self.keys {
            return;
        }
        while self.table.len() < blocks_for(resident) {
            let mut table = Vec::with_capacity(2 * self.table.len());
            table.extend_from_slice(&self.table);
            table.extend_from_slice(&self.table);
            self.table = table.into_boxed_slice();
            self.mask = self.table.len() - 1;
        }
    }

    /// The block of `hash`, and for each of its four counters the word and bit shift.
    #[cfg(test)]
    fn locate(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        let (block, counters) = self.position(hash);
        (block, std::array::from_fn(|i| counter(counters, i)))
    }

    /// Starts loading the block of `hash` into the CPU cache, for a count or an estimate soon
    /// after: the block is most often a cache miss, and this lets it overlap other work.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        let block = self.block_of(self.mix(hash));
        crate::memory::prefetch::prefetch(&self.table[block]);
    }

    /// A key hash mixed with this sketch's seed (see the module docs).
    #[inline]
    fn mix(&self, hash: u64) -> u64 {
        spread(hash ^ self.seed)
    }

    /// The block a mixed hash picks.
    #[inline]
    fn block_of(&self, mixed: u64) -> usize {
        (mixed >> 32) as usize & self.mask
    }

    /// The block of `hash`, and the counter hash that picks its four counters in it (see
    /// [`counter`]).
    #[inline]
    fn position(&self, hash: u64) -> (usize, u64) {
        let mixed = self.mix(hash);
        (self.block_of(mixed), rehash(mixed))
    }

    /// Estimated recent frequency of `hash`, `0..=15`.
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        let (block, counters) = self.position(hash);
        let words = &self.table[block].0;
        let mut min = u64::from(MAX_FREQUENCY);
        for i in 0..4 {
            let (word, shift) = counter(counters, i);
            min = min.min((words[word] >> shift) & 0xF);
        }
        min as u8
    }

    /// Records one access of `hash`.
    pub(crate) fn increment(&mut self, hash: u64) {
        self.increment_by(hash, 1);
    }

    /// Records `n` accesses of `hash` in one pass over its counters.
    pub(crate) fn increment_by(&mut self, hash: u64, n: u8) {
        let (block, counters) = self.position(hash);
        let words = &mut self.table[block].0;
        let n = u64::from(n);
        let mut added = 0;
        for i in 0..4 {
            let (word, shift) = counter(counters, i);
            let add = n.min(u64::from(MAX_FREQUENCY) - ((words[word] >> shift) & 0xF));
            words[word] += add << shift;
            added = added.max(add);
        }
        if added > 0 {
            self.additions += added;
            if self.staggered {
                if self.additions >= self.per_block() {
                    self.age_blocks();
                }
            } else if self.additions >= self.sample_size {
                self.reset();
            }
        }
    }

    /// Halves the blocks due in staggered aging.
    #[cold]
    fn age_blocks(&mut self) {
        let per_block = self.per_block();
        while self.additions >= per_block {
            self.additions -= per_block;
            for word in self.table[self.age_next].0.iter_mut() {
                *word = (*word >> 1) & RESET_MASK;
            }
            self.age_next = (self.age_next + 1) & self.mask;
        }
    }

    /// Halves every counter: popularity decays so that new hot keys can displace old ones.
    #[cold]
    fn reset(&mut self) {
        let mut odd = 0_u64;
        for word in self.table.iter_mut().flat_map(|b| b.0.iter_mut()) {
            odd += u64::from((*word & ONE_MASK).count_ones());
            *word = (*word >> 1) & RESET_MASK;
        }
        self.additions = (self.additions - odd / 4) / 2;
    }
}

/// Blocks for `keys` keys: 16 counters per key, 8 keys per 64-byte block.
fn blocks_for(keys: usize) -> usize {
    (keys.clamp(8, 1 << 26).next_power_of_two() / 8).max(1)
}

/// Counter `i` (`0..4`) of a key whose counter hash is `counters`: one of the two words
/// `2i` and `2i + 1` of its block, and one of the sixteen 4-bit counters in that word (its
/// bit shift). Five bits each: independent choices for the four counters.
#[inline(always)]
fn counter(counters: u64, i: usize) -> (usize, u32) {
    let h = (counters >> (i << 3)) as u32;
    ((h & 1) as usize + (i << 1), ((h >> 1) & 15) << 2)
}

/// Re-mixes a key hash so the sketch does not reuse the bits that pick the shard and bucket.
fn spread(hash: u64) -> u64 {
    let mut x = hash ^ (hash >> 33);
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// A second, independent mix that picks the counters inside the block.
fn rehash(x: u64) -> u64 {
    let x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_at_fifteen() {
        let mut sketch = FrequencySketch::new(1024, 7);
        for _ in 0..40 {
            sketch.increment(42);
        }
        assert_eq!(sketch.frequency(42), MAX_FREQUENCY);
        assert!(
            sketch.frequency(43) < 2,
            "an unseen key reads as (almost) zero"
        );
    }

    proptest::proptest! {
        /// Counting and estimating do the counters' arithmetic: each of a key's four counters
        /// gains `n` up to 15, none of another's changes, and the estimate is their minimum.
        /// (Few enough additions that the sketch does not age.)
        #[test]
        fn counts_match_a_model_of_the_counters(
            ops in proptest::collection::vec((0..48_u64, 0..6_u8), 1..300),
        ) {
            let mut sketch = FrequencySketch::new(1 << 12, 7);
            let mut model = std::collections::HashMap::new();
            let hash = |key: u64| key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let estimate = |sketch: &FrequencySketch, model: &std::collections::HashMap<_, u8>, key| {
                let (block, counters) = sketch.locate(hash(key));
                counters.iter().map(|&(w, s)| model.get(&(block, w, s)).copied().unwrap_or(0)).min()
            };
            for (key, n) in ops {
                match n {
                    0 => {}
                    1 => sketch.increment(hash(key)),
                    _ => sketch.increment_by(hash(key), n),
                }
                let (block, counters) = sketch.locate(hash(key));
                for (w, s) in counters {
                    let count = model.entry((block, w, s)).or_insert(0_u8);
                    *count = (*count + n).min(MAX_FREQUENCY);
                }
                proptest::prop_assert_eq!(Some(sketch.frequency(hash(key))), estimate(&sketch, &model, key));
            }
            for key in 0..48 {
                proptest::prop_assert_eq!(Some(sketch.frequency(hash(key))), estimate(&sketch, &model, key));
            }
        }
    }

    #[test]
    fn increment_by_equals_repeated_increments() {
        let (mut one, mut many) = (FrequencySketch::new(256, 7), FrequencySketch::new(256, 7));
        for k in 0..200_u64 {
            let n = (k % 7) as u8;
            one.increment_by(k, n);
            for _ in 0..n {
                many.increment(k);
            }
        }
        for k in 0..200_u64 {
            assert_eq!(one.frequency(k), many.frequency(k), "key {k}");
        }
    }

    /// Which keys share a key's counters depends on the seed, so an attacker who does not know
    /// it cannot pick keys that inflate a victim's estimate.
    #[test]
    fn the_seed_decides_which_keys_share_counters() {
        let target = 42_u64;
        let colliding = |seed| {
            let sketch = FrequencySketch::new(64, seed);
            let block = sketch.locate(target).0;
            (0..100_000_u64)
                .filter(|&k| k != target && sketch.locate(k).0 == block)
                .collect::<Vec<_>>()
        };
        let (a, b) = (colliding(1), colliding(2));
        assert!(a.len() > 100, "a small sketch has many keys per block");
        let shared = a.iter().filter(|k| b.binary_search(k).is_ok()).count();
        assert!(
            shared * 4 < a.len(),
            "{shared} of {} keys share the block under both seeds",
            a.len()
        );
    }

    /// A sketch for a bound far above what its shard holds starts small, and growing it keeps
    /// every estimate.
    #[test]
    fn a_sketch_grows_keeping_every_estimate() {
        let mut sketch = FrequencySketch::new(1 << 40, 7);
        assert_eq!(sketch.room(), INITIAL_KEYS, "allocated for the bound");
        let keys: Vec<u64> = (0..3_000_u64)
            .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            sketch.increment_by(k, (i % 16) as u8);
        }
        let before: Vec<u8> = keys.iter().map(|&k| sketch.frequency(k)).collect();
        sketch.reserve(100_000);
        assert_eq!(sketch.room(), 131_072);
        let after: Vec<u8> = keys.iter().map(|&k| sketch.frequency(k)).collect();
        assert_eq!(before, after);
        assert_eq!(
            sketch.sample_size,
            10 << 40,
            "the aging period is the bound's"
        );
    }

    #[test]
    fn reset_halves_popularity() {
        let mut sketch = FrequencySketch::new(64, 7);
        for _ in 0..10 {
            sketch.increment(7);
        }
        let before = sketch.frequency(7);
        // Drive the sketch past its sample size with other keys.
        for k in 0..1_000_u64 {
            sketch.increment(k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 << 40);
        }
        assert!(sketch.frequency(7) < before, "aging must lower old counts");
    }

    /// Staggered aging halves a few blocks at a time: halfway through a sample period about
    /// half of a hot key set has been halved, and after a whole period all of it, once.
    #[test]
    fn staggered_aging_halves_block_by_block() {
        let mut sketch = FrequencySketch::new(4096, 7);
        let hot: Vec<u64> = (0..64_u64)
            .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for _ in 0..8 {
            for &k in &hot {
                sketch.increment(k);
            }
        }
        let counts =
            |sketch: &FrequencySketch| hot.iter().map(|&k| sketch.frequency(k)).collect::<Vec<_>>();
        assert!(counts(&sketch).iter().all(|&c| c >= 8));
        sketch.set_staggered(true);
        // Cold keys, each seen once, drive the additions.
        let mut cold = (1_u64 << 40..).map(|k| k.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut add = |sketch: &mut FrequencySketch, n: u64| {
            for k in cold.by_ref().take(n as usize) {
                sketch.increment(k);
            }
        };
        let period = sketch.sample_size;
        add(&mut sketch, period / 2);
        let halved = counts(&sketch).iter().filter(|&&c| c < 8).count();
        assert!(
            (16..=48).contains(&halved),
            "{halved} of 64 halved halfway through"
        );
        add(&mut sketch, period / 2 + 64);
        assert!(
            counts(&sketch).iter().all(|&c| c < 8),
            "all halved after a period"
        );
    }

    /// Turning staggered aging on keeps its pace: the additions since the last whole halving
    /// do not halve a run of blocks at once.
    #[test]
    fn turning_staggered_aging_on_halves_nothing_at_once() {
        let mut sketch = FrequencySketch::new(4096, 7);
        for k in 0..(sketch.sample_size - 10) {
            sketch.increment(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        let before = sketch.table.clone();
        sketch.set_staggered(true);
        sketch.increment(u64::MAX);
        let changed = before
            .iter()
            .zip(sketch.table.iter())
            .filter(|(a, b)| a.0 != b.0)
            .count();
        assert!(changed <= 2, "{changed} blocks changed for one addition");
    }

    #[test]
    fn hot_keys_outrank_cold_keys() {
        let mut sketch = FrequencySketch::new(512, 7);
        for k in 0..256_u64 {
            for _ in 0..(k % 8) {
                sketch.increment(k);
            }
        }
        let hot = (0..256_u64)
            .filter(|k| k % 8 == 7)
            .map(|k| sketch.frequency(k) as u32);
        let cold = (0..256_u64)
            .filter(|k| k % 8 == 1)
            .map(|k| sketch.frequency(k) as u32);
        assert!(hot.sum::<u32>() > 4 * cold.sum::<u32>());
    }
}
