//! Replays a cache trace and prints each cache's hit ratio per segment of requests: where
//! in a trace one cache gains or loses against another (for instance, how long the adaptive
//! policy takes to reach the shape a pinned one starts with).

use std::path::PathBuf;

use clap::Parser;

/// Replays a `*.keys.zst` trace as "get; on a miss, insert" (unit weights); one JSON object
/// per cache: `{"cache":…,"trace":…,"capacity":…,"segment":…,"hit_ratios":[…]}`, each ratio
/// the mean over the runs, in percent.
#[derive(Parser)]
struct Args {
    /// Trace file (zstd text, one u64 key per line).
    #[arg(long)]
    trace: PathBuf,
    /// Capacity in entries.
    #[arg(long)]
    capacity: u64,
    /// Requests per segment.
    #[arg(long, default_value_t = 100_000)]
    segment: usize,
    /// Caches, comma-separated (as the `trace` bench takes them: strata, strata:s3fifo, …).
    #[arg(long, value_delimiter = ',', default_value = "strata,moka,quick_cache")]
    cache: Vec<String>,
    /// Runs per cache, each with a freshly seeded cache.
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let keys = strata_bench::read_trace(&args.trace)?;
    let segment = args.segment.max(1);
    for name in &args.cache {
        let mut hits = vec![0_u64; keys.len().div_ceil(segment)];
        for _ in 0..args.runs.max(1) {
            let cache = strata_bench::build(name, args.capacity)?;
            for (total, chunk) in hits.iter_mut().zip(keys.chunks(segment)) {
                *total += strata_bench::replay(cache.as_ref(), chunk);
            }
        }
        let ratios: Vec<f64> = hits
            .iter()
            .zip(keys.chunks(segment))
            .map(|(&h, chunk)| {
                let requests = (args.runs.max(1) * chunk.len()) as f64;
                (h as f64 * 10_000.0 / requests).round() / 100.0
            })
            .collect();
        let line = serde_json::json!({
            "cache": name,
            "trace": args.trace.display().to_string(),
            "capacity": args.capacity,
            "segment": segment,
            "hit_ratios": ratios,
        });
        println!("{line}");
    }
    Ok(())
}
