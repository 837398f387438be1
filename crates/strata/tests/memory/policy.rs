use strata::{Cache, EvictionPolicy};

/// TinyLFU's promise: a scan of never-repeated keys does not flush a hot working set.
#[test]
fn a_hot_set_survives_a_large_scan() {
    let cache = Cache::builder()
        .max_capacity(1000)
        .build()
        .expect("valid config");
    let hot: Vec<u64> = (0..500).collect();
    for _ in 0..20 {
        for &k in &hot {
            if cache.get(&k).is_none() {
                cache.insert(k, k);
            }
        }
    }
    for k in 1_000_000..1_020_000_u64 {
        if cache.get(&k).is_none() {
            cache.insert(k, k);
        }
    }
    let survivors = hot.iter().filter(|k| cache.contains_key(k)).count();
    assert!(
        survivors >= 450,
        "only {survivors} of 500 hot keys survived a 20× scan"
    );
}

/// Statistics count what happened, exactly, on one thread.
#[test]
fn statistics_are_exact_single_threaded() {
    let cache = Cache::new(10);
    for i in 0..100_u32 {
        if cache.get(&(i % 20)).is_none() {
            cache.insert(i % 20, i);
        }
    }
    let stats = cache.stats();
    assert_eq!(stats.requests(), 100);
    assert_eq!(stats.hits + stats.misses, 100);
    assert_eq!(stats.inserts, stats.misses);
    assert_eq!(stats.inserts - stats.evicted_size, cache.len() as u64);
}

/// A thread that counts in several caches in turn counts each one's events in its own
/// statistics, and a cache built after another was dropped starts from zero (each thread
/// remembers the counters it used last: they must never be taken for another cache's).
#[test]
fn statistics_stay_apart_for_caches_used_in_turn() {
    let (a, b) = (Cache::<u32, u32>::new(10), Cache::<u32, u32>::new(10));
    for i in 0..30_u32 {
        a.insert(i, i);
        for _ in 0..2 {
            assert_eq!(b.get(&i), None);
        }
    }
    assert_eq!((a.stats().inserts, a.stats().misses), (30, 0));
    assert_eq!((b.stats().inserts, b.stats().misses), (0, 60));
    drop(a);
    for _ in 0..3 {
        let c = Cache::new(10);
        c.insert(1, 1);
        assert_eq!(c.get(&1), Some(1));
        let stats = c.stats();
        assert_eq!((stats.inserts, stats.hits, stats.misses), (1, 1, 0));
    }
    assert_eq!(b.stats().misses, 60);
}

/// Replays "get; on a miss, insert" and returns the hit ratio.
fn hit_ratio(cache: &Cache<u64, u64>, keys: impl IntoIterator<Item = u64>) -> f64 {
    let (mut hits, mut requests) = (0, 0);
    for k in keys {
        requests += 1;
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k);
        }
    }
    f64::from(hits) / f64::from(requests)
}

/// `keys` new keys, each asked for again 50 requests later, then never.
fn short_reuse(keys: u64) -> impl Iterator<Item = u64> {
    (0..keys).flat_map(|i| [i, i.saturating_sub(50)])
}

fn pinned(policy: EvictionPolicy) -> Cache<u64, u64> {
    Cache::builder()
        .max_capacity(1000)
        .shards(1)
        .eviction_policy(policy)
        .build()
        .expect("valid config")
}

/// A loop 20% larger than the cache defeats recency: a pinned recency-only policy stays at
/// no hits, where TinyLFU keeps a fixed part of the loop and the adaptive default moves to it.
#[test]
fn a_pinned_policy_keeps_its_shape() {
    let looping = || (0..40).flat_map(|_| 0..1200_u64);
    let recency = hit_ratio(
        &pinned(EvictionPolicy::tiny_lfu_with_window(1.0)),
        looping(),
    );
    let tiny_lfu = hit_ratio(
        &pinned(EvictionPolicy::tiny_lfu_with_window(0.0)),
        looping(),
    );
    let adaptive = hit_ratio(&pinned(EvictionPolicy::adaptive()), looping());
    assert!(recency < 0.05, "recency only: {recency}");
    assert!(tiny_lfu > 0.7, "TinyLFU: {tiny_lfu}");
    assert!(adaptive > 0.6, "adaptive: {adaptive}");
}

/// Keys asked for twice in quick succession and never again: S3-FIFO's small queue catches
/// the second request; TinyLFU without a window refuses newcomers that lose the duel.
#[test]
fn s3_fifo_catches_short_reuse_that_tiny_lfu_filters_out() {
    let s3_fifo = hit_ratio(&pinned(EvictionPolicy::s3_fifo()), short_reuse(20_000));
    let tiny_lfu = hit_ratio(
        &pinned(EvictionPolicy::tiny_lfu_with_window(0.0)),
        short_reuse(20_000),
    );
    assert!(s3_fifo > 0.45, "S3-FIFO: {s3_fifo}");
    assert!(
        tiny_lfu < s3_fifo - 0.2,
        "TinyLFU {tiny_lfu} vs S3-FIFO {s3_fifo}"
    );
}

#[test]
fn a_window_outside_the_capacity_is_refused() {
    for window in [-0.1, 1.5, f64::NAN] {
        let built = Cache::<u64, u64>::builder()
            .max_capacity(10)
            .eviction_policy(EvictionPolicy::tiny_lfu_with_window(window))
            .build();
        assert!(
            matches!(built, Err(strata::Error::InvalidWindow(w)) if w.is_nan() || w == window),
            "window {window} accepted"
        );
    }
}

/// On short reuse the adaptive default leaves the shape it starts with, TinyLFU's 1% window
/// (which lets every second request go), for a recency shape.
#[test]
fn the_default_adapts_its_shape() {
    let tiny_lfu = hit_ratio(&pinned(EvictionPolicy::tiny_lfu()), short_reuse(40_000));
    let adaptive = hit_ratio(&pinned(EvictionPolicy::adaptive()), short_reuse(40_000));
    assert!(tiny_lfu < 0.3, "TinyLFU: {tiny_lfu}");
    assert!(adaptive > 0.45, "adaptive: {adaptive} (TinyLFU {tiny_lfu})");
}

/// A cache bounded by weight adapts its shape as one bounded by entry count does.
#[test]
fn a_weighted_cache_adapts_its_shape_too() {
    // Weights 1 to 4 (mean 2.5): about 1,000 entries fit, as in the caches above.
    let weighted = |policy: EvictionPolicy| {
        Cache::builder()
            .max_capacity(2_500)
            .weigher(|key: &u64, _: &u64| (key % 4 + 1) as u32)
            .shards(1)
            .eviction_policy(policy)
            .build()
            .expect("valid config")
    };
    let tiny_lfu = hit_ratio(&weighted(EvictionPolicy::tiny_lfu()), short_reuse(40_000));
    let adaptive = hit_ratio(&weighted(EvictionPolicy::adaptive()), short_reuse(40_000));
    assert!(tiny_lfu < 0.3, "TinyLFU: {tiny_lfu}");
    assert!(adaptive > 0.45, "adaptive: {adaptive} (TinyLFU {tiny_lfu})");
}

/// Weighers at the edges: entries that weigh nothing (they never count against the bound)
/// and entries heavier than the cache. The simulations size themselves from such caches
/// without panicking, and the bound holds.
#[test]
fn weighers_at_the_edges_keep_the_bound() {
    for weigh in [
        |_: &u64, _: &u64| 0_u32,
        |k: &u64, _: &u64| if k.is_multiple_of(2) { 0 } else { u32::MAX },
    ] {
        let cache = Cache::builder()
            .max_capacity(1_000)
            .weigher(weigh)
            .build()
            .expect("valid config");
        let ratio = hit_ratio(&cache, (0..50_000_u64).map(|i| i % 3_000));
        assert!(cache.weighted_size() <= 1_000);
        // Weightless keys are all kept: every one of them hits after its first request.
        assert!(ratio > 0.4, "hit ratio {ratio}");
    }
    // A terabyte of weightless entries as far as the estimate can tell: the simulations
    // are sized within reason (this would try to allocate hundreds of gigabytes otherwise).
    let huge = Cache::builder()
        .max_capacity(1 << 40)
        .weigher(|_: &u64, _: &u64| 0)
        .build()
        .expect("valid config");
    assert!(hit_ratio(&huge, (0..20_000_u64).map(|i| i % 5_000)) > 0.7);
}

/// A bound no cache reaches ("no bound" written as `u64::MAX`) builds, works and allocates
/// for what it holds, not for its bound.
#[test]
fn an_unreachable_bound_works() {
    for capacity in [u64::MAX, 1 << 40] {
        let cache = Cache::new(capacity);
        let ratio = hit_ratio(&cache, (0..20_000_u64).map(|i| i % 5_000));
        assert!(ratio > 0.7, "hit ratio {ratio}");
        assert_eq!(cache.len(), 5_000);
    }
    let weighted = Cache::builder()
        .max_capacity(u64::MAX)
        .weigher(|key: &u64, _: &u64| (key % 7 + 1) as u32)
        .build()
        .expect("valid config");
    assert!(hit_ratio(&weighted, (0..20_000_u64).map(|i| i % 5_000)) > 0.7);
}
