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

impl BenchCache for quick_cache::sync::Cache<u64, u64> {
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

/// Builds the named cache with room for `capacity` unit-weight entries.
///
/// # Errors
/// An unknown name.
pub fn build(name: &str, capacity: u64) -> Result<Box<dyn BenchCache>, String> {
    if let Some(builder) = strata_builder(name, capacity)? {
        return Ok(Box::new(builder.build().map_err(|e| e.to_string())?));
    }
    Ok(match name {
        "moka" => Box::new(moka::sync::Cache::<u64, u64>::new(capacity)),
        "moka_bounded" => Box::new(BoundedMoka(moka::sync::Cache::new(capacity))),
        "quick_cache" => Box::new(quick_cache::sync::Cache::<u64, u64>::new(
            usize::try_from(capacity).map_err(|e| e.to_string())?,
        )),
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
