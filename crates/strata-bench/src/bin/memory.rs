//! Memory per entry, side by side: each cache is filled past its capacity with `u64` keys and
//! values in a process of its own, and the growth of the process's resident set is divided by
//! the entries it then holds. Resident memory is what a user pays: the entries, the index, the
//! policy's metadata (Strata's frequency sketch and mini simulations, moka's deques and
//! sketch, quick_cache's ghosts) and the allocator's slack. Prints one JSON line per cache.

use std::process::Command;

use clap::Parser;

/// Fills each cache with `--keys` distinct keys (a multiple of `--capacity`, so that it is full
/// and has evicted) and reports resident bytes per entry held.
#[derive(Parser)]
struct Args {
    /// Caches to measure: strata (or a pinned Strata, see `trace --help`), moka, quick_cache,
    /// foyer.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "strata,moka,quick_cache,foyer"
    )]
    cache: Vec<String>,
    /// Entries each cache is bounded to.
    #[arg(long, default_value_t = 1_000_000)]
    capacity: u64,
    /// Distinct keys inserted, as a multiple of the capacity.
    #[arg(long, default_value_t = 2)]
    churn: u64,
    /// Measure this one cache in this process (what each child process is run with).
    #[arg(long, hide = true)]
    one: Option<String>,
}

/// The process's resident set in bytes (Linux `/proc/self/statm`).
fn resident_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| e.to_string())?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/self/statm: {statm:?}"))?;
    Ok(pages * 4096)
}

/// Fills the cache `name` and prints its line.
fn measure(name: &str, capacity: u64, churn: u64) -> Result<(), String> {
    let keys = capacity * churn;
    // Keys spread over the whole u64 range, as hashes of real keys would be.
    let key = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let before = resident_bytes()?;
    // Each arm fills its cache and returns the entries it holds, with the cache kept alive
    // until the resident set is read.
    let (entries, after) = if let Some(builder) = strata_bench::strata_builder(name, capacity)? {
        let cache = builder.build().map_err(|e| e.to_string())?;
        (0..keys).for_each(|i| cache.insert(key(i), i));
        (cache.len() as u64, resident_bytes()?)
    } else {
        match name {
            "moka" => {
                let cache = moka::sync::Cache::new(capacity);
                (0..keys).for_each(|i| cache.insert(key(i), i));
                // Its bound is enforced in batches: apply what is pending first.
                cache.run_pending_tasks();
                (cache.entry_count(), resident_bytes()?)
            }
            "quick_cache" => {
                let entries = usize::try_from(capacity).map_err(|e| e.to_string())?;
                let cache = quick_cache::sync::Cache::<u64, u64>::new(entries);
                (0..keys).for_each(|i| cache.insert(key(i), i));
                (cache.len() as u64, resident_bytes()?)
            }
            "foyer" => {
                let entries = usize::try_from(capacity).map_err(|e| e.to_string())?;
                let cache: foyer::Cache<u64, u64> = foyer::CacheBuilder::new(entries).build();
                (0..keys).for_each(|i| {
                    cache.insert(key(i), i);
                });
                (cache.usage() as u64, resident_bytes()?)
            }
            other => return Err(format!("unknown cache {other:?}")),
        }
    };
    let grown = after.saturating_sub(before);
    println!(
        "{}",
        serde_json::json!({
            "cache": name,
            "capacity": capacity,
            "entries": entries,
            "resident_bytes": grown,
            "bytes_per_entry": ((grown as f64 / entries.max(1) as f64) * 10.0).round() / 10.0,
        })
    );
    Ok(())
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    if let Some(name) = &args.one {
        return measure(name, args.capacity, args.churn.max(1));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for name in &args.cache {
        // A fresh process per cache: memory freed by one cache is not reused by the next.
        let status = Command::new(&exe)
            .args(["--one", name])
            .args(["--capacity", &args.capacity.to_string()])
            .args(["--churn", &args.churn.to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("{name}: {status}"));
        }
    }
    Ok(())
}
