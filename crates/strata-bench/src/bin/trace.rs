//! Replays cache traces against Strata and its peers; prints one JSON object per run.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

/// Replays a `*.keys.zst` trace as "get; on a miss, insert" (unit weights unless `--weights`).
#[derive(Parser)]
struct Args {
    /// Trace files (zstd text, one u64 key per line).
    #[arg(long, required = true, num_args = 1..)]
    trace: Vec<PathBuf>,
    /// Capacities in entries, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    capacity: Vec<u64>,
    /// Caches to run, comma-separated: strata, moka, quick_cache, moka_bounded (trace only),
    /// or Strata with a pinned policy: strata:tinylfu, strata:tinylfu-WINDOW, strata:s3fifo.
    #[arg(long, value_delimiter = ',', default_value = "strata,moka,quick_cache")]
    cache: Vec<String>,
    /// Runs per cache and capacity, each with a freshly (randomly) seeded cache; the hit ratio
    /// reported is their mean, with the min and max beside it.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Entries weigh from 1 to this (a hash of the key, see `strata_bench::key_weight`), and
    /// every cache is bounded by weight: capacity × the mean weight. 1: unit weights.
    #[arg(long, default_value_t = 1)]
    weights: u32,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    for path in &args.trace {
        let keys = strata_bench::read_trace(path)?;
        let trace = path.file_name().and_then(|n| n.to_str()).map_or_else(
            || path.display().to_string(),
            |n| n.trim_end_matches(".keys.zst").to_string(),
        );
        for &capacity in &args.capacity {
            for name in &args.cache {
                let (mut hits, mut secs) = (Vec::new(), 0.0);
                for _ in 0..args.runs.max(1) {
                    let cache = strata_bench::build_weighted(name, capacity, args.weights)?;
                    let start = Instant::now();
                    hits.push(strata_bench::replay(cache.as_ref(), &keys));
                    secs += start.elapsed().as_secs_f64();
                }
                let percent =
                    |h: u64| (h as f64 * 10_000.0 / keys.len().max(1) as f64).round() / 100.0;
                let mean = hits.iter().sum::<u64>() / hits.len() as u64;
                let line = serde_json::json!({
                    "cache": name,
                    "trace": trace,
                    "capacity": capacity,
                    "weights": args.weights,
                    "requests": keys.len(),
                    "hits": mean,
                    "hit_ratio": percent(mean),
                    "hit_ratio_min": percent(*hits.iter().min().expect("at least one run")),
                    "hit_ratio_max": percent(*hits.iter().max().expect("at least one run")),
                    "ops_per_sec": ((keys.len() * hits.len()) as f64 / secs).round(),
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}
