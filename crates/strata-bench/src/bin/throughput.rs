//! Multi-threaded throughput of Strata and its peers on a Zipf workload; one JSON line per cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use strata_bench::BenchCache;

/// Each thread replays its own pre-generated Zipf key sequence: R% reads (get, insert on a
/// miss), the rest inserts.
#[derive(Parser)]
struct Args {
    /// Caches to run, comma-separated: strata, moka, quick_cache, moka_bounded (trace only),
    /// or Strata with a pinned policy: strata:tinylfu, strata:tinylfu-WINDOW, strata:s3fifo.
    #[arg(long, value_delimiter = ',', default_value = "strata,moka,quick_cache")]
    cache: Vec<String>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Cache capacity in entries.
    #[arg(long, default_value_t = 100_000)]
    capacity: u64,
    /// Zipf exponent.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Percentage of operations that are reads.
    #[arg(long, default_value_t = 90)]
    read_pct: u32,
    /// Seconds each cache runs per round.
    #[arg(long, default_value_t = 2.0)]
    secs: f64,
    /// Rounds; caches take turns each round and the median is reported (the machine is shared).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Shards for Strata and quick_cache alike (a power of two); each cache's own default if
    /// not given. moka's sync cache has no shards.
    #[arg(long)]
    shards: Option<usize>,
    /// Reads that miss do not insert: after the warm-up the cache holds a fixed set of keys
    /// and only the read path is measured (with `--read-pct 100`).
    #[arg(long)]
    no_insert_on_miss: bool,
    /// Run exactly this many operations per thread and round instead of `--secs`: a fixed
    /// amount of work, for counting instructions and cache misses (e.g. under cachegrind).
    #[arg(long)]
    ops: Option<u64>,
    /// Entries weigh from 1 to this (a hash of the key, see `strata_bench::key_weight`), and
    /// every cache is bounded by weight: capacity × the mean weight. Each cache's default
    /// shard count; every cache is called through a `Box<dyn BenchCache>` then (the same
    /// indirection for all). 1: unit weights.
    #[arg(long, default_value_t = 1)]
    weights: u32,
}

/// Operations per thread: a key, and whether it is a read.
const OPS_PER_THREAD: usize = 1 << 20;

fn main() -> Result<(), String> {
    let args = Args::parse();
    let zipf = Zipf::new(args.keys as f64, args.zipf).map_err(|e| e.to_string())?;
    let workloads: Vec<Arc<Vec<(u64, bool)>>> = (0..args.threads)
        .map(|t| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64 + 1);
            // Spread ranks over the key space so hot keys do not share low bits.
            let ops = (0..OPS_PER_THREAD)
                .map(|_| {
                    let rank = zipf.sample(&mut rng) as u64;
                    (
                        rank.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        rng.random_range(0..100) < args.read_pct,
                    )
                })
                .collect();
            Arc::new(ops)
        })
        .collect();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); args.cache.len()];
    for _ in 0..args.rounds {
        for (name, samples) in args.cache.iter().zip(&mut samples) {
            if args.weights > 1 {
                if args.shards.is_some() {
                    return Err("--shards and --weights: one or the other".into());
                }
                let cache = strata_bench::build_weighted(name, args.capacity, args.weights)?;
                samples.push(run(Arc::new(cache), &workloads, &args));
                continue;
            }
            if let Some(mut builder) = strata_bench::strata_builder(name, args.capacity)? {
                if let Some(shards) = args.shards {
                    builder = builder.shards(shards);
                }
                let cache = builder.build().map_err(|e| e.to_string())?;
                samples.push(run(Arc::new(cache), &workloads, &args));
                continue;
            }
            samples.push(match name.as_str() {
                "moka" => run(
                    Arc::new(moka::sync::Cache::<u64, u64>::new(args.capacity)),
                    &workloads,
                    &args,
                ),
                "quick_cache" => {
                    let cache = match args.shards {
                        None => quick_cache::sync::Cache::<u64, u64>::new(args.capacity as usize),
                        Some(shards) => quick_cache::sync::Cache::with_options(
                            quick_cache::OptionsBuilder::new()
                                .estimated_items_capacity(args.capacity as usize)
                                .weight_capacity(args.capacity)
                                .shards(shards)
                                .build()
                                .map_err(|e| e.to_string())?,
                            quick_cache::UnitWeighter,
                            quick_cache::DefaultHashBuilder::default(),
                            quick_cache::sync::DefaultLifecycle::default(),
                        ),
                    };
                    run(Arc::new(cache), &workloads, &args)
                }
                other => {
                    return Err(format!(
                        "unknown cache {other:?}; expected strata[:POLICY], moka or quick_cache"
                    ));
                }
            });
        }
    }
    for (name, mut samples) in args.cache.iter().zip(samples) {
        samples.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        let median = samples[samples.len() / 2];
        let line = serde_json::json!({
            "cache": name,
            "threads": args.threads,
            "read_pct": args.read_pct,
            "ops_per_sec": median.ops_per_sec.round(),
            "hit_ratio": (median.hit_ratio * 10_000.0).round() / 100.0,
        });
        println!("{line}");
    }
    Ok(())
}

/// One timed run of one cache.
#[derive(Clone, Copy)]
struct Sample {
    ops_per_sec: f64,
    /// Hits ÷ reads.
    hit_ratio: f64,
}

fn run<C: BenchCache + 'static>(
    cache: Arc<C>,
    workloads: &[Arc<Vec<(u64, bool)>>],
    args: &Args,
) -> Sample {
    let insert_on_miss = !args.no_insert_on_miss;
    let budget = args.ops;
    // Warm up: fill the cache with the workload's own keys.
    for &(key, _) in workloads[0].iter() {
        if cache.get(key).is_none() {
            cache.insert(key, key);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = workloads
        .iter()
        .map(|ops| {
            let (cache, ops, stop) = (cache.clone(), ops.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut done, mut reads, mut hits) = (0_u64, 0_u64, 0_u64);
                'outer: loop {
                    for chunk in ops.chunks(1024) {
                        for &(key, read) in chunk {
                            if read {
                                reads += 1;
                                if cache.get(key).is_some() {
                                    hits += 1;
                                } else if insert_on_miss {
                                    cache.insert(key, key);
                                }
                            } else {
                                cache.insert(key, key);
                            }
                        }
                        done += chunk.len() as u64;
                        if stop.load(Ordering::Relaxed) || budget.is_some_and(|b| done >= b) {
                            break 'outer;
                        }
                    }
                }
                (done, reads, hits)
            })
        })
        .collect();
    if args.ops.is_none() {
        std::thread::sleep(Duration::from_secs_f64(args.secs));
        stop.store(true, Ordering::Relaxed);
    }
    let (mut done, mut reads, mut hits) = (0, 0, 0);
    for handle in handles {
        let (d, r, h) = handle.join().expect("bench thread");
        (done, reads, hits) = (done + d, reads + r, hits + h);
    }
    Sample {
        ops_per_sec: done as f64 / start.elapsed().as_secs_f64(),
        hit_ratio: hits as f64 / reads.max(1) as f64,
    }
}
