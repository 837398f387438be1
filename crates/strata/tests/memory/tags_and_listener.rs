use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use strata::{Cache, InsertOptions, RemovalCause};

use crate::recorder;

#[test]
fn invalidate_tag_drops_every_entry_carrying_it_across_shards() {
    let cache = Cache::builder()
        .max_capacity(100_000)
        .shards(8)
        .build()
        .expect("valid config");
    for i in 0..1000_u32 {
        let user = i % 10;
        cache.insert_with(
            i,
            i,
            &InsertOptions::new()
                .tag(format!("user:{user}"))
                .tag("all-users"),
        );
    }
    cache.insert(5000, 5000); // untagged
    assert_eq!(cache.invalidate_tag("user:3"), 100);
    assert_eq!(cache.len(), 901);
    assert!(
        (0..1000_u32)
            .filter(|i| i % 10 == 3)
            .all(|i| cache.get(&i).is_none())
    );
    assert_eq!(cache.get(&13), None);
    assert_eq!(cache.get(&14), Some(14));
    assert_eq!(cache.stats().removed_tag, 100);
    assert_eq!(cache.invalidate_tag("all-users"), 900);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&5000), Some(5000));
    assert_eq!(cache.invalidate_tag("no-such-tag"), 0);
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_replaced_entry_carries_only_its_new_tags() {
    let cache = Cache::new(100);
    cache.insert_with("k", 1, &InsertOptions::new().tag("old"));
    cache.insert_with("k", 2, &InsertOptions::new().tag("new"));
    cache.invalidate_tag("old");
    assert_eq!(cache.get("k"), Some(2));
    cache.invalidate_tag("new");
    assert_eq!(cache.get("k"), None);
}

#[test]
fn the_listener_hears_every_cause() {
    let (log, listener) = recorder();
    let cache = Cache::builder()
        .max_capacity(2)
        .shards(1)
        .eviction_listener(listener)
        .build()
        .expect("valid config");
    cache.insert("a", 1);
    cache.insert("a", 2); // Replaced (old value 1)
    cache.insert_with("b", 3, &InsertOptions::new().tag("t"));
    cache.invalidate_tag("t"); // Tag
    cache.remove("a"); // Explicit
    for i in 0..10 {
        cache.insert(
            ["c", "d", "e", "f", "g", "h", "i", "j", "k", "l"][i],
            i as u32,
        ); // Size
    }
    let log = log.lock().expect("lock");
    assert_eq!(log[0], ("a", 1, RemovalCause::Replaced));
    assert_eq!(log[1], ("b", 3, RemovalCause::Tag));
    assert_eq!(log[2], ("a", 2, RemovalCause::Explicit));
    assert!(log[3..].iter().all(|(_, _, c)| *c == RemovalCause::Size));
    assert_eq!(log.len(), 3 + 8, "ten inserts into two slots evict eight");
    assert!(RemovalCause::Size.was_evicted() && !RemovalCause::Explicit.was_evicted());
}

#[test]
fn the_listener_may_use_the_cache() {
    // Listeners run after internal locks are released, so this must not deadlock.
    let cache: Arc<std::sync::OnceLock<Cache<u32, u32>>> = Arc::new(std::sync::OnceLock::new());
    let handle = cache.clone();
    let built = Cache::builder()
        .max_capacity(1)
        .shards(1)
        .eviction_listener(move |k, _, _| {
            if let Some(c) = handle.get() {
                let _ = c.get(&k);
            }
        })
        .build()
        .expect("valid config");
    assert!(cache.set(built).is_ok());
    let cache = cache.get().expect("set above");
    for i in 0..100 {
        cache.insert(i, i);
    }
    assert_eq!(cache.len(), 1);
}

#[test]
fn weigher_bounds_total_weight_and_refuses_oversized_entries() {
    let (log, listener) = recorder();
    let cache = Cache::builder()
        .max_capacity(1000)
        .shards(1)
        .weigher(|_: &u32, v: &Vec<u8>| v.len() as u32)
        .eviction_listener(listener)
        .build()
        .expect("valid config");
    for i in 0..100 {
        cache.insert(i, vec![0; 95]);
        assert!(cache.weighted_size() <= 1000);
    }
    assert!(cache.len() <= 10);
    cache.insert(7777, vec![0; 1001]);
    assert_eq!(cache.get(&7777), None);
    let log = log.lock().expect("lock");
    let last = log.last().expect("the oversized entry was reported");
    assert_eq!(
        (last.0, last.1.len(), last.2),
        (7777, 1001, RemovalCause::Size)
    );
}

#[test]
fn invalidate_all_and_retain() {
    let cache = Cache::new(1000);
    for i in 0..100_u32 {
        cache.insert(i, i);
    }
    cache.retain(|_, v| v % 2 == 0);
    assert_eq!(cache.len(), 50);
    cache.invalidate_if(|k, _| *k < 50);
    assert_eq!(cache.len(), 25);
    assert!(cache.iter().all(|(k, v)| k == v && k >= 50 && k % 2 == 0));
    cache.invalidate_all();
    assert!(cache.is_empty());
    assert_eq!(cache.stats().removed_explicit, 100);
}

#[test]
fn shrinking_the_bound_evicts_at_once_and_tells_the_listener() {
    let evicted = Arc::new(AtomicU64::new(0));
    let seen = evicted.clone();
    let cache = Cache::builder()
        .max_capacity(1000)
        .eviction_listener(move |_k: u32, _v: u32, cause| {
            if cause == RemovalCause::Size {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    for i in 0..1000 {
        cache.insert(i, i);
    }
    assert_eq!(cache.len(), 1000);
    cache.set_max_capacity(100);
    assert_eq!(cache.capacity(), 100);
    assert!(cache.weighted_size() <= 100, "{}", cache.weighted_size());
    assert_eq!(evicted.load(Ordering::Relaxed), 1000 - cache.len() as u64);
    // Growing makes room again.
    cache.set_max_capacity(2000);
    for i in 1000..2500 {
        cache.insert(i, i);
    }
    assert!(cache.len() > 1000 && cache.weighted_size() <= 2000);
    // 0 turns caching off: everything leaves, nothing is kept, until the bound grows again.
    cache.set_max_capacity(0);
    assert!(cache.is_empty());
    assert_eq!(evicted.load(Ordering::Relaxed), 2500);
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), None);
    assert_eq!(
        evicted.load(Ordering::Relaxed),
        2501,
        "refused, as too heavy"
    );
    cache.set_max_capacity(10);
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
}
