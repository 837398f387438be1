use strata::Cache;

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
