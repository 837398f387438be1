//! A tour of Strata's in-memory tier: memoize a slow lookup, expire and invalidate by tag, and
//! read the statistics. Run with `cargo run --release -p strata --example tour`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::{Cache, InsertOptions, RemovalCause};

/// A "database query" that takes 50 µs.
fn load_profile(user: u64) -> Arc<String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(50) {
        std::hint::spin_loop();
    }
    Arc::new(format!("profile of user {user}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache: Cache<u64, Arc<String>> = Cache::builder()
        .max_capacity(2_000)
        .time_to_live(Duration::from_secs(300))
        .eviction_listener(|_user, _profile, cause| {
            if cause == RemovalCause::Tag {
                // A real application might log or forward invalidations here.
            }
        })
        .build()?;

    // 1. Memoize: 200k requests for 20k users, skewed like real traffic (a few users are hot).
    let started = Instant::now();
    let mut x = 88_172_645_463_325_252_u64; // xorshift: deterministic, no extra dependency
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Log-uniform popularity (Zipf-like): user ids near 0 are requested far more often.
        let u = (x >> 11) as f64 / (1_u64 << 53) as f64;
        let user = 20_000_f64.powf(u) as u64 - 1;
        if cache.get(&user).is_none() {
            let profile = load_profile(user);
            cache.insert_with(
                user,
                profile,
                &InsertOptions::new().tag(format!("user:{user}")),
            );
        }
    }
    let stats = cache.stats();
    println!(
        "memoized 200000 lookups in {:.2?} (uncached: ~10s): hit ratio {:.1}%, {} loads instead of 200000, {} entries held (capacity {})",
        started.elapsed(),
        stats.hit_ratio() * 100.0,
        stats.misses,
        cache.len(),
        cache.capacity()
    );

    // 2. Invalidate by tag: user 0 changed, drop everything derived from them.
    let before = cache.contains_key(&0);
    cache.invalidate_tag("user:0");
    println!(
        "user 0 cached before invalidate_tag: {before}, after: {}",
        cache.contains_key(&0)
    );

    // 3. Per-entry TTL.
    cache.insert_with_ttl(
        999_999,
        Arc::new("short-lived".into()),
        Duration::from_millis(20),
    );
    std::thread::sleep(Duration::from_millis(25));
    println!(
        "short-lived entry after its 20 ms TTL: {:?}",
        cache.get(&999_999)
    );

    let stats = cache.stats();
    println!(
        "stats: hits={} misses={} inserts={} evicted(size)={} expired={} tag-invalidated={}",
        stats.hits,
        stats.misses,
        stats.inserts,
        stats.evicted_size,
        stats.evicted_expired,
        stats.removed_tag
    );
    Ok(())
}
