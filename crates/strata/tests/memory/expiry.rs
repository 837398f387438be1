use std::time::Duration;

use strata::{Cache, InsertOptions, MockClock, RemovalCause};

use crate::recorder;

fn cache_with(
    clock: &MockClock,
    configure: impl FnOnce(
        strata::CacheBuilder<&'static str, u32>,
    ) -> strata::CacheBuilder<&'static str, u32>,
) -> Cache<&'static str, u32> {
    configure(Cache::builder().max_capacity(100).clock(clock.clone()))
        .build()
        .expect("valid config")
}

#[test]
fn per_entry_ttl_expires_exactly_at_its_deadline() {
    let clock = MockClock::new();
    let cache = cache_with(&clock, |b| b);
    cache.insert_with_ttl("short", 1, Duration::from_secs(10));
    cache.insert("forever", 2);
    clock.advance(Duration::from_secs(9));
    assert_eq!(cache.get("short"), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        cache.get("short"),
        None,
        "an expired entry is never returned"
    );
    assert!(!cache.contains_key("short"));
    assert_eq!(cache.get("forever"), Some(2));
    assert_eq!(cache.iter().count(), 1, "iter skips expired entries");
}

#[test]
fn default_ttl_applies_and_per_entry_ttl_overrides_it() {
    let clock = MockClock::new();
    let cache = cache_with(&clock, |b| b.time_to_live(Duration::from_secs(60)));
    cache.insert("default", 1);
    cache.insert_with(
        "custom",
        2,
        &InsertOptions::new().ttl(Duration::from_secs(120)),
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(cache.get("default"), None);
    assert_eq!(cache.get("custom"), Some(2));
}

#[test]
fn reinserting_restarts_the_ttl() {
    let clock = MockClock::new();
    let cache = cache_with(&clock, |b| b.time_to_live(Duration::from_secs(10)));
    cache.insert("k", 1);
    clock.advance(Duration::from_secs(8));
    cache.insert("k", 2);
    clock.advance(Duration::from_secs(8));
    assert_eq!(cache.get("k"), Some(2));
}

#[test]
fn time_to_idle_is_extended_by_reads() {
    let clock = MockClock::new();
    let cache = cache_with(&clock, |b| b.time_to_idle(Duration::from_secs(10)));
    cache.insert("read", 1);
    cache.insert("idle", 2);
    for _ in 0..5 {
        clock.advance(Duration::from_secs(6));
        assert_eq!(cache.get("read"), Some(1));
    }
    assert_eq!(cache.get("idle"), None);
    // Reclaiming must not drop the entry that is still being read.
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 1);
}

#[test]
fn expired_entries_are_reclaimed_by_writes_and_reported() {
    let clock = MockClock::new();
    let (log, listener) = recorder();
    let cache = Cache::builder()
        .max_capacity(1000)
        .clock(clock.clone())
        .shards(1)
        .eviction_listener(listener)
        .build()
        .expect("valid config");
    for i in 0..50_u32 {
        cache.insert_with_ttl(i, i, Duration::from_secs(1));
    }
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.len(), 50, "nothing reclaimed until the cache is used");
    cache.insert(1000, 0); // a write reclaims a batch
    assert_eq!(cache.len(), 1);
    let log = log.lock().expect("lock");
    assert_eq!(log.len(), 50);
    assert!(
        log.iter()
            .all(|(_, _, cause)| *cause == RemovalCause::Expired)
    );
    assert_eq!(cache.stats().evicted_expired, 50);
}

#[test]
fn run_pending_tasks_reclaims_without_writes() {
    let clock = MockClock::new();
    let cache = cache_with(&clock, |b| b.time_to_live(Duration::from_secs(1)));
    cache.insert("a", 1);
    cache.insert("b", 2);
    clock.advance(Duration::from_secs(1));
    cache.run_pending_tasks();
    assert!(cache.is_empty());
}

/// A mass expiry is reclaimed in batches (the shard's lock is released between them), and
/// entirely: more expired entries in one shard than a batch holds.
#[test]
fn run_pending_tasks_reclaims_a_mass_expiry_in_one_call() {
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(20_000)
        .shards(1)
        .clock(clock.clone())
        .build()
        .expect("valid config");
    for i in 0..10_000 {
        cache.insert_with_ttl(i, i, Duration::from_secs(1));
    }
    cache.insert(u32::MAX, 0);
    clock.advance(Duration::from_secs(1));
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.stats().evicted_expired, 10_000);
}

/// TTLs at the edges: zero expires at once, `Duration::MAX` never does (it saturates instead
/// of overflowing the clock's nanoseconds), and neither disturbs the entries around them.
#[test]
fn ttls_at_the_edges() {
    let clock = MockClock::new();
    let cache = cache_with(&clock, |b| b);
    cache.insert_with_ttl("zero", 1, Duration::ZERO);
    cache.insert_with_ttl("max", 2, Duration::MAX);
    cache.insert("plain", 3);
    assert_eq!(cache.get("zero"), None, "a zero TTL expires at once");
    clock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
    assert_eq!(cache.get("max"), Some(2));
    assert_eq!(cache.get("plain"), Some(3));
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 2);
}
