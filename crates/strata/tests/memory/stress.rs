use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strata::{Cache, InsertOptions, MockClock};

/// A thread that checks `cache`'s weight against `capacity` until the flag is set; it
/// returns how many checks it made.
fn watch_bound<V: Clone + Send + Sync + 'static>(
    cache: &Cache<u64, V>,
    capacity: u64,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (cache, flag) = (cache.clone(), stop.clone());
    let watcher = std::thread::spawn(move || {
        let mut checks = 0;
        while !flag.load(Ordering::Relaxed) {
            assert!(cache.weighted_size() <= capacity);
            checks += 1;
        }
        checks
    });
    (stop, watcher)
}

/// Joins the workers, then stops the watcher (which must have checked at least once).
fn finish(
    workers: Vec<std::thread::JoinHandle<()>>,
    (stop, watcher): (Arc<AtomicBool>, std::thread::JoinHandle<u64>),
) {
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.join().expect("watcher panicked") > 0);
}

/// Threads hammer a small cache with every kind of operation while a watcher checks the bound.
/// Afterwards: values are never torn or mixed up, the bound held throughout, and the counters
/// and the listener account for every entry.
#[test]
fn concurrent_mixed_operations_keep_every_invariant() {
    const CAPACITY: u64 = 512;
    let clock = MockClock::new();
    let heard = Arc::new(AtomicU64::new(0));
    let heard_in = heard.clone();
    let cache: Cache<u64, (u64, u64)> = Cache::builder()
        .max_capacity(CAPACITY)
        .shards(4)
        .clock(clock.clone())
        .eviction_listener(move |k, v: (u64, u64), _| {
            assert_eq!(v.0, k, "the listener got another key's value");
            heard_in.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .expect("valid config");
    let watch = watch_bound(&cache, CAPACITY);
    let workers: Vec<_> = (0..4_u64)
        .map(|t| {
            let (cache, clock) = (cache.clone(), clock.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                for i in 0..60_000_u64 {
                    let key = rng.random_range(0..2048_u64);
                    match rng.random_range(0..100) {
                        0..60 => {
                            if let Some((k, _)) = cache.get(&key) {
                                assert_eq!(k, key, "a value stored under another key");
                            }
                        }
                        60..85 => cache.insert(key, (key, i)),
                        85..90 => cache.insert_with(
                            key,
                            (key, i),
                            &InsertOptions::new()
                                .ttl(Duration::from_millis(5))
                                .tag(format!("g{}", key % 8)),
                        ),
                        90..95 => {
                            cache.remove(&key);
                        }
                        95..97 => {
                            cache.invalidate_tag(&format!("g{}", key % 8));
                        }
                        97..99 => clock.advance(Duration::from_millis(1)),
                        _ => {
                            let _ = cache.iter().take(10).count();
                        }
                    }
                }
            })
        })
        .collect();
    finish(workers, watch);

    let stats = cache.stats();
    let departed =
        stats.evicted_size + stats.evicted_expired + stats.removed_explicit + stats.removed_tag;
    assert_eq!(stats.inserts - departed, cache.len() as u64, "{stats:?}");
    assert_eq!(heard.load(Ordering::Relaxed), stats.removals());
    assert!(cache.len() as u64 <= CAPACITY);
    assert_eq!(stats.requests(), stats.hits + stats.misses);
}

/// Readers on the same hot keys while writers churn the cache: every read is a value that was
/// written for that key.
#[test]
fn readers_and_writers_on_hot_keys() {
    let cache: Cache<u64, Arc<String>> = Cache::new(64);
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                for i in 0..50_000_u64 {
                    let key = (i * 7 + t) % 128;
                    cache.insert(key, Arc::new(format!("{key}:{i}")));
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let mut hits = 0;
                for i in 0..200_000_u64 {
                    let key = i % 16;
                    if let Some(v) = cache.get(&key) {
                        assert!(v.starts_with(&format!("{key}:")), "key {key} read {v}");
                        hits += 1;
                    }
                }
                hits
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer panicked");
    }
    for r in readers {
        r.join().expect("reader panicked");
    }
    assert!(cache.len() <= 64);
}

/// A cache bounded by weight, its new entries getting heavier halfway through, under four
/// threads (which also feed its weighted mini simulations): the weight bound holds at every
/// instant and the counters account for every entry.
#[test]
fn a_weighted_cache_whose_entries_get_heavier_keeps_its_bound() {
    const CAPACITY: u64 = 4_000;
    let cache: Cache<u64, (u64, u32)> = Cache::builder()
        .max_capacity(CAPACITY)
        .weigher(|_, value: &(u64, u32)| value.1)
        .shards(2)
        .build()
        .expect("valid config");
    let watch = watch_bound(&cache, CAPACITY);
    let workers: Vec<_> = (0..4_u64)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                for i in 0..60_000_u64 {
                    // Weights 1–4 in the first half, 8–11 in the second.
                    let weight = rng.random_range(1..5) + if i < 30_000 { 0 } else { 7 };
                    let key = rng.random_range(0..20_000_u64);
                    match cache.get(&key) {
                        Some((k, _)) => assert_eq!(k, key, "a value stored under another key"),
                        None => cache.insert(key, (key, weight)),
                    }
                    if i % 1000 == 0 {
                        cache.remove(&key);
                    }
                }
            })
        })
        .collect();
    finish(workers, watch);
    let stats = cache.stats();
    let departed = stats.evicted_size + stats.removed_explicit;
    assert_eq!(stats.inserts - departed, cache.len() as u64, "{stats:?}");
    assert!(cache.weighted_size() <= CAPACITY);
}

/// Each thread owns its keys and keeps a model of them. Whatever the other threads do to the
/// cache meanwhile (their inserts evict, their heavy entries borrow capacity from every
/// shard, the bound changes, a roomy weighted cache chooses its shard count under them), a
/// read returns the thread's last write to the key, or nothing (evicted), never an older
/// value; an update changes only a live entry.
#[test]
fn each_thread_reads_its_own_latest_writes() {
    for roomy in [false, true] {
        let capacity = if roomy { 1 << 24 } else { 4096 };
        let mut builder = Cache::builder()
            .max_capacity(capacity)
            .weigher(|_, v: &Vec<u64>| u32::try_from(v.len()).unwrap_or(u32::MAX));
        if !roomy {
            // Shares of 512: the heavy values below borrow from the other shards.
            builder = builder.shards(8);
        }
        let cache: Cache<u64, Vec<u64>> = builder.build().expect("valid config");
        let workers: Vec<_> = (0..4_u64)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t + 100);
                    let mut model = std::collections::HashMap::new();
                    for version in 0..30_000_u64 {
                        let key = (t << 32) | rng.random_range(0..256_u64);
                        match rng.random_range(0..100) {
                            0..40 => {
                                let len = if rng.random_range(0..50) == 0 {
                                    700
                                } else {
                                    1 + version % 16
                                };
                                let value = vec![version; len as usize];
                                cache.insert(key, value.clone());
                                model.insert(key, value);
                            }
                            40..80 => {
                                if let Some(value) = cache.get(&key) {
                                    assert_eq!(
                                        Some(&value),
                                        model.get(&key),
                                        "key {key:#x} at {version}"
                                    );
                                }
                            }
                            80..90 => {
                                if cache.update(&key, |v| v.push(version)) {
                                    let value =
                                        model.get_mut(&key).expect("updated a key it never wrote");
                                    value.push(version);
                                } else {
                                    model.remove(&key);
                                }
                            }
                            90..98 => {
                                let removed = cache.remove(&key);
                                let known = model.remove(&key);
                                if removed.is_some() {
                                    assert_eq!(removed, known, "key {key:#x} removed at {version}");
                                }
                            }
                            _ if t == 0 && !roomy => {
                                cache.set_max_capacity(if version % 2 == 0 { 3072 } else { 4096 });
                            }
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        assert!(cache.weighted_size() <= cache.capacity());
    }
}
