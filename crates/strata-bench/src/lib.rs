//! Benchmarks that run Strata and its peers (moka, quick_cache) on the same workload in the
//! same process, so that their ratios, not absolute times, are what is compared.

use std::io::{BufRead, BufReader};
use std::path::Path;

/// The caches under test, behind one interface (`u64` keys and values, unit weights).
pub trait BenchCache: Send + Sync {
    /// Looks a key up.
    fn get(&self, key: u64) -> Option<u64>;
    /// Inserts a key.
    fn insert(&self, key: u64, value: u64);
}

impl<T: BenchCache + ?Sized> BenchCache for Box<T> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        (**self).get(key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        (**self).insert(key, value);
    }
}

impl BenchCache for strata::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        strata::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        strata::Cache::insert(self, key, value);
    }
}

impl BenchCache for moka::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
}

/// moka with its bound enforced at every write (`run_pending_tasks` after each insert).
///
/// moka applies its policy in batches, off the write path: between batches a new entry is
/// already readable but not yet admitted or evicted for, so the cache holds more entries than
/// its capacity (up to 554 in a 500-entry cache replaying lirs-multi1, 515 on average; see the
/// `moka_overshoot` example) and judges a new key only after it has had a few requests' time
/// to be hit. This variant compares moka's policy with the others at their configured size.
/// It is the same crate; `run_pending_tasks` is moka's own call for doing the pending work
/// now.
pub struct BoundedMoka(moka::sync::Cache<u64, u64>);

impl BenchCache for BoundedMoka {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
        self.0.run_pending_tasks();
    }
}

impl<W: quick_cache::Weighter<u64, u64> + Clone + Send + Sync> BenchCache
    for quick_cache::sync::Cache<u64, u64, W>
{
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

/// The names `--cache` accepts (`moka_bounded`: see [`BoundedMoka`]; Strata with a pinned
/// policy: see [`strata_builder`]).
pub const CACHES: [&str; 4] = ["strata", "moka", "quick_cache", "moka_bounded"];

/// A builder for `name` if it names Strata: `strata` (adaptive, the default), or Strata with
/// its policy pinned: `strata:tinylfu` (1% window), `strata:tinylfu-W` (window `W`, a fraction
/// of capacity) or `strata:s3fifo`. `None` for another cache's name.
///
/// # Errors
/// An unknown policy, or a window that is not a number.
pub fn strata_builder(
    name: &str,
    capacity: u64,
) -> Result<Option<strata::CacheBuilder<u64, u64>>, String> {
    use strata::EvictionPolicy;
    let Some(policy) = name.strip_prefix("strata") else {
        return Ok(None);
    };
    let policy = match policy {
        "" | ":adaptive" => EvictionPolicy::adaptive(),
        ":tinylfu" => EvictionPolicy::tiny_lfu(),
        ":s3fifo" => EvictionPolicy::s3_fifo(),
        other => match other.strip_prefix(":tinylfu-") {
            Some(window) => EvictionPolicy::tiny_lfu_with_window(
                window
                    .parse()
                    .map_err(|e| format!("{name}: window {window:?}: {e}"))?,
            ),
            None => {
                return Err(format!(
                    "{name}: expected strata, strata:adaptive, strata:tinylfu, \
                     strata:tinylfu-WINDOW or strata:s3fifo"
                ));
            }
        },
    };
    Ok(Some(
        strata::Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(policy),
    ))
}

/// The weight of `key` when entries weigh from 1 to `max` (1 when `max` is 1): a hash of the
/// key, so that a key always weighs the same and weight is independent of popularity.
pub fn key_weight(key: u64, max: u32) -> u32 {
    if max <= 1 {
        return 1;
    }
    let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    1 + (mixed % u64::from(max)) as u32
}

/// [`key_weight`] as quick_cache's weigher.
#[derive(Debug, Clone, Copy)]
pub struct KeyWeighter(pub u32);

impl quick_cache::Weighter<u64, u64> for KeyWeighter {
    fn weight(&self, key: &u64, _value: &u64) -> u64 {
        u64::from(key_weight(*key, self.0))
    }
}

/// Builds the named cache with room for `capacity` unit-weight entries.
///
/// # Errors
/// An unknown name.
pub fn build(name: &str, capacity: u64) -> Result<Box<dyn BenchCache>, String> {
    build_weighted(name, capacity, 1)
}

/// Builds the named cache for entries that weigh [`key_weight`]`(key, max_weight)`, bounded
/// by weight: `capacity` entries of the mean weight, so that it holds about `capacity` entries
/// whatever `max_weight` is. With `max_weight` 1, the same caches as [`build`] (unit weights,
/// no weigher).
///
/// # Errors
/// An unknown name.
pub fn build_weighted(
    name: &str,
    capacity: u64,
    max_weight: u32,
) -> Result<Box<dyn BenchCache>, String> {
    let max = max_weight.max(1);
    // Mean weight (max + 1) / 2, rounded down.
    let weight_capacity = capacity * (u64::from(max) + 1) / 2;
    let weigh = move |key: &u64, _: &u64| key_weight(*key, max);
    if let Some(builder) = strata_builder(name, weight_capacity)? {
        let builder = if max > 1 {
            builder.weigher(weigh)
        } else {
            builder
        };
        return Ok(Box::new(builder.build().map_err(|e| e.to_string())?));
    }
    let moka = || {
        let builder = moka::sync::Cache::builder().max_capacity(weight_capacity);
        if max > 1 {
            builder.weigher(weigh).build()
        } else {
            builder.build()
        }
    };
    let entries = usize::try_from(capacity).map_err(|e| e.to_string())?;
    Ok(match name {
        "moka" => Box::new(moka()),
        "moka_bounded" => Box::new(BoundedMoka(moka())),
        "quick_cache" if max > 1 => Box::new(quick_cache::sync::Cache::with_weighter(
            entries,
            weight_capacity,
            KeyWeighter(max),
        )),
        "quick_cache" => Box::new(quick_cache::sync::Cache::<u64, u64>::new(entries)),
        other => {
            return Err(format!(
                "unknown cache {other:?}; expected one of {CACHES:?}"
            ));
        }
    })
}

/// Reads a `*.keys.zst` trace: zstd-compressed text, one unsigned 64-bit key per line.
///
/// # Errors
/// An unreadable file, bad compression, or a line that is not a `u64`.
pub fn read_trace(path: &Path) -> Result<Vec<u64>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let decoder = zstd::Decoder::new(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (n, line) in BufReader::new(decoder).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let key = line
            .parse()
            .map_err(|e| format!("{}:{}: {line:?}: {e}", path.display(), n + 1))?;
        keys.push(key);
    }
    Ok(keys)
}

/// Replays `keys` as "get; on a miss, insert"; returns the number of hits.
pub fn replay(cache: &dyn BenchCache, keys: &[u64]) -> u64 {
    let mut hits = 0;
    for &key in keys {
        if cache.get(key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The point of `moka_bounded`: after every insert, moka holds no more than its capacity.
    #[test]
    fn bounded_moka_never_holds_more_than_its_capacity() {
        let cache = BoundedMoka(moka::sync::Cache::new(100));
        for key in 0..2_000_u64 {
            if cache.get(key % 300).is_none() {
                cache.insert(key % 300, key);
            }
            assert!(cache.0.iter().count() <= 100, "after key {key}");
        }
    }

    #[test]
    fn replay_counts_hits_and_every_name_builds() {
        for name in CACHES {
            let cache = build(name, 10).expect("a known name");
            // Five distinct keys fit: only the first request of each misses.
            let keys: Vec<u64> = (0..50).map(|i| i % 5).collect();
            assert_eq!(replay(cache.as_ref(), &keys), 45, "{name}");
        }
        assert!(build("lru", 10).is_err());
    }

    #[test]
    fn key_weights_are_fixed_per_key_and_spread_over_their_range() {
        assert!((0..1000).all(|key| key_weight(key, 1) == 1));
        let weights: Vec<u32> = (0..10_000).map(|key| key_weight(key, 16)).collect();
        assert!(weights.iter().all(|w| (1..=16).contains(w)));
        assert_eq!(weights[7], key_weight(7, 16));
        let mean = f64::from(weights.iter().sum::<u32>()) / weights.len() as f64;
        assert!((mean - 8.5).abs() < 0.3, "mean weight {mean}");
        assert!((1..=16).all(|w| weights.contains(&w)));
    }

    #[test]
    fn every_name_builds_bounded_by_weight() {
        for name in CACHES
            .into_iter()
            .chain(["strata:tinylfu", "strata:s3fifo"])
        {
            // Room for 100 entries of the mean weight: five keys of at most 16 fit.
            let cache = build_weighted(name, 100, 16).expect("a known name");
            let keys: Vec<u64> = (0..50).map(|i| i % 5).collect();
            assert_eq!(replay(cache.as_ref(), &keys), 45, "{name}");
        }
    }

    #[test]
    fn strata_names_pin_the_policy() {
        for name in [
            "strata:adaptive",
            "strata:tinylfu",
            "strata:tinylfu-0.3",
            "strata:s3fifo",
        ] {
            let cache = build(name, 10).expect("a known name");
            let keys: Vec<u64> = (0..50).map(|i| i % 5).collect();
            assert_eq!(replay(cache.as_ref(), &keys), 45, "{name}");
        }
        for bad in ["strata:lru", "strata:tinylfu-x", "strata:tinylfu-2"] {
            assert!(build(bad, 10).is_err(), "{bad}");
        }
        // Another cache's name is not Strata's to build.
        assert!(matches!(strata_builder("moka", 10), Ok(None)));
    }
}
