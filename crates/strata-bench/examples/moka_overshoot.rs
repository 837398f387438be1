//! How far above its capacity moka's live entries go during a trace replay ("get; on a miss,
//! insert"), sampled every 97 requests. The hit ratio of moka held to its capacity is the
//! `moka_bounded` cache of the `trace` bench.
//!
//! `cargo run --release -p strata-bench --example moka_overshoot -- TRACE CAPACITY`
use std::path::Path;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(capacity)) = (args.next(), args.next()) else {
        return Err("usage: moka_overshoot TRACE CAPACITY".into());
    };
    let capacity: u64 = capacity.parse().map_err(|e| format!("{capacity:?}: {e}"))?;
    let keys = strata_bench::read_trace(Path::new(&path))?;
    let cache = moka::sync::Cache::<u64, u64>::new(capacity);
    let (mut max, mut sum, mut samples) = (0_u64, 0_u64, 0_u64);
    for (i, &key) in keys.iter().enumerate() {
        if cache.get(&key).is_none() {
            cache.insert(key, key);
        }
        if i % 97 == 0 {
            let live = cache.iter().count() as u64;
            max = max.max(live);
            // The mean counts the full cache only, not its filling.
            if live >= capacity {
                sum += live;
                samples += 1;
            }
        }
    }
    println!(
        "capacity={capacity} max_live_entries={max} mean_live_entries_when_full={:.1}",
        sum as f64 / samples.max(1) as f64
    );
    Ok(())
}
