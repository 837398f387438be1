//! The tiered cache's latency per tier next to a plain `redis` crate GET, and how long an
//! invalidation takes to reach another client's local tier. Needs a Redis at `--url`.
//!
//! One JSON line per figure: `{"what":…,"p50_us":…,"p99_us":…,"mean_us":…,"samples":…}`.

use std::time::{Duration, Instant};

use clap::Parser;
use redis::AsyncCommands;
use strata_redis::{RedisConfig, TieredCache};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    url: String,
    /// Samples per figure.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Invalidations timed for the propagation delay.
    #[arg(long, default_value_t = 500)]
    invalidations: usize,
}

type BoxError = Box<dyn std::error::Error>;

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e6 / samples.len() as f64;
    let line = serde_json::json!({
        "what": what,
        "p50_us": (pick(0.5) * 10.0).round() / 10.0,
        "p99_us": (pick(0.99) * 10.0).round() / 10.0,
        "mean_us": (mean * 10.0).round() / 10.0,
        "samples": samples.len(),
    });
    println!("{line}");
}

async fn time<F: Future<Output = ()>>(n: usize, mut f: impl FnMut(usize) -> F) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        f(i).await;
        out.push(start.elapsed());
    }
    out
}

async fn subscribed(cache: &TieredCache<String, String>) {
    while !cache.stats().subscribed {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let prefix = format!("bench-{}", std::process::id());
    let config = RedisConfig::standalone(&args.url)
        .prefix(&prefix)
        .strict(true);
    let keys: Vec<String> = (0..1000).map(|i| format!("key{i}")).collect();
    let value = "v".repeat(100);

    // A plain redis crate GET, the baseline.
    let mut plain = redis::Client::open(args.url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let _: () = plain.set(format!("{prefix}:plain"), &value).await?;
    let samples = time(args.samples, |_| {
        let mut c = plain.clone();
        let key = format!("{prefix}:plain");
        async move {
            let _: Option<String> = c.get(key).await.unwrap_or_default();
        }
    })
    .await;
    report("redis crate GET", samples);

    // Through the tiered cache, with the value in memory, on disk, and only in Redis.
    let dir = tempfile::tempdir()?;
    let memory: TieredCache<String, String> = TieredCache::builder()
        .redis(config.clone())
        .memory(10_000)
        .build()
        .await?;
    let store = strata::DiskStore::builder(dir.path())
        .max_bytes(64 << 20)
        .open()?;
    let disk: TieredCache<String, String> = TieredCache::builder()
        .redis(config.clone())
        .disk(store.clone())
        .build()
        .await?;
    let remote: TieredCache<String, String> =
        TieredCache::builder().redis(config.clone()).build().await?;
    for key in &keys {
        memory.insert(key, value.clone()).await?;
    }
    for key in &keys {
        disk.get(key).await?; // promotes into its disk tier
    }
    // Out of the write buffer and into the file: a disk hit is a pread.
    store.flush()?;
    for (what, cache) in [
        ("tiered: memory hit", &memory),
        ("tiered: disk hit", &disk),
        ("tiered: redis hit", &remote),
    ] {
        let samples = time(args.samples, |i| {
            let key = &keys[i % keys.len()];
            async move {
                assert!(cache.get(key).await.unwrap().is_some());
            }
        })
        .await;
        report(what, samples);
    }

    // Invalidation propagation: A overwrites a key that B holds locally; the time until B's
    // local tier has dropped it (B then reads the new value).
    let a: TieredCache<String, String> = TieredCache::builder()
        .redis(config.clone())
        .memory(100)
        .build()
        .await?;
    let b: TieredCache<String, String> = TieredCache::builder()
        .redis(config.clone())
        .memory(100)
        .build()
        .await?;
    subscribed(&a).await;
    subscribed(&b).await;
    let key = "propagation".to_string();
    let mut delays = Vec::with_capacity(args.invalidations);
    for i in 0..args.invalidations {
        a.insert(&key, format!("v{i}")).await?;
        while b.get(&key).await?.as_deref() != Some(&format!("v{i}")) {
            tokio::task::yield_now().await;
        }
        // B now holds v{i} in memory; A writes v{i}+1 and we time until B sees it.
        let next = format!("v{i}+1");
        let start = Instant::now();
        a.insert(&key, next.clone()).await?;
        while b.get(&key).await?.as_deref() != Some(next.as_str()) {
            tokio::task::yield_now().await;
        }
        delays.push(start.elapsed());
    }
    report(
        "invalidation propagation (A writes → B reads the new value)",
        delays,
    );
    remote.invalidate_all().await?;
    let _: () = plain.del(format!("{prefix}:plain")).await?;
    Ok(())
}
