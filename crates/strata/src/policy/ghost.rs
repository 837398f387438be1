//! S3-FIFO's ghost queue, kept compact: which keys the small queue recently let go.
//!
//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023)
//! remembers as many evicted keys as its main queue holds entries; a key requested again while
//! remembered goes straight to the main queue. Only membership matters, so instead of a queue
//! of hashes this keeps two sets of 32-bit fingerprints that take turns: new ones go into the
//! current set, and when it holds half the remembered number, the older set is cleared and
//! becomes current. A key is remembered for between half and all of `remembered` insertions
//! since; a fingerprint leaves when its key returns. About 8 bytes per remembered key, and an
//! exact answer but for 32-bit fingerprint collisions (a Bloom filter of that size let a few
//! percent of a scan into main, each pushing out the oldest main entry).

use hashbrown::HashSet;

type Fingerprints = HashSet<u32, foldhash::fast::FixedState>;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Ghost {
    sets: [Fingerprints; 2],
    current: usize,
    /// Keys remembered in all (half per set).
    remembered: usize,
}

fn fingerprint(hash: u64) -> u32 {
    // The high half: the shard and the table index use the low bits.
    (hash >> 32) as u32
}

impl Ghost {
    /// A ghost remembering about `remembered` keys.
    pub(crate) fn new(remembered: usize) -> Self {
        Self {
            sets: Default::default(),
            current: 0,
            remembered: remembered.max(2),
        }
    }

    /// How many keys it was sized for.
    pub(crate) fn remembered(&self) -> usize {
        self.remembered
    }

    pub(crate) fn insert(&mut self, hash: u64) {
        if self.remembered == 0 {
            return;
        }
        if self.sets[self.current].len() >= self.remembered / 2 {
            self.current ^= 1;
            self.sets[self.current].clear();
        }
        self.sets[self.current].insert(fingerprint(hash));
    }

    /// Whether the key of `hash` is remembered; it is forgotten by the asking (it is back).
    pub(crate) fn take(&mut self, hash: u64) -> bool {
        let fingerprint = fingerprint(hash);
        let [a, b] = &mut self.sets;
        a.remove(&fingerprint) | b.remove(&fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(k: u64) -> u64 {
        k.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(31) ^ 0x5851_F42D_4C95_7F2D
    }

    #[test]
    fn remembers_the_recent_half_at_least_and_forgets_the_old() {
        let mut ghost = Ghost::new(1000);
        for k in 0..10_000 {
            ghost.insert(mix(k));
        }
        // The last 500 insertions are always remembered, once.
        assert!((9_500..10_000).all(|k| ghost.take(mix(k))));
        assert!((9_500..10_000).all(|k| !ghost.take(mix(k))));
        // Older ones and never-inserted ones are not.
        assert!((0..5_000).all(|k| !ghost.take(mix(k))));
        assert!((100_000..110_000).all(|k| !ghost.take(mix(k))));
    }

    #[test]
    fn an_unsized_ghost_remembers_nothing() {
        let mut ghost = Ghost::default();
        ghost.insert(42);
        assert!(!ghost.take(42));
    }
}
