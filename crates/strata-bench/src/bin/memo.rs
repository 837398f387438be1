//! The cost of a memoized hit: Strata's `#[cached]` and `get_with` against moka's `get_with` and
//! the `cached` crate's `#[cached]`, in one process. Prints one JSON line per contender.

use std::hint::black_box;
use std::time::Instant;

use clap::Parser;

/// Calls each memoized function over `--keys` warm keys (all hits) and reports ns per call.
#[derive(Parser)]
struct Args {
    /// Distinct keys (all cached before timing).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Calls per contender per round.
    #[arg(long, default_value_t = 5_000_000)]
    calls: u64,
    /// Rounds; contenders take turns and the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

#[strata::cached(capacity = 10_000)]
fn strata_macro(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9)
}

#[cached::cached(max_size = 10_000)]
fn cached_crate(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9)
}

fn time(calls: u64, keys: u64, mut f: impl FnMut(u64) -> u64) -> f64 {
    let start = Instant::now();
    let mut acc = 0_u64;
    for i in 0..calls {
        acc = acc.wrapping_add(f(black_box(i % keys)));
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    let args = Args::parse();
    let strata_cache: strata::Cache<u64, u64> = strata::Cache::new(10_000);
    let moka_cache: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(10_000);
    let compute = |n: u64| n.wrapping_mul(0x9E37_79B9);
    type Contender<'a> = (&'static str, Box<dyn FnMut(u64) -> u64 + 'a>);
    let mut contenders: Vec<Contender<'_>> = vec![
        ("strata #[cached]", Box::new(strata_macro)),
        (
            "strata get_with",
            Box::new(|n| strata_cache.get_with(n, || compute(n))),
        ),
        (
            "moka get_with",
            Box::new(|n| moka_cache.get_with(n, || compute(n))),
        ),
        ("cached #[cached]", Box::new(cached_crate)),
    ];
    for (_, f) in &mut contenders {
        for k in 0..args.keys {
            f(k); // warm: every later call is a hit
        }
    }
    let mut samples = vec![Vec::new(); contenders.len()];
    for _ in 0..args.rounds {
        for ((_, f), samples) in contenders.iter_mut().zip(&mut samples) {
            samples.push(time(args.calls, args.keys, f));
        }
    }
    for ((name, _), mut samples) in contenders.into_iter().zip(samples) {
        samples.sort_by(f64::total_cmp);
        let line = serde_json::json!({
            "contender": name,
            "keys": args.keys,
            "ns_per_hit": (samples[samples.len() / 2] * 10.0).round() / 10.0,
        });
        println!("{line}");
    }
}
