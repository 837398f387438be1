use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use proptest::prelude::*;

use super::*;
use crate::{EvictionPolicy, MockClock};

#[derive(Debug, Clone)]
enum Op {
    Insert {
        key: u8,
        ttl: Option<u8>,
        tag: Option<u8>,
    },
    Get(u8),
    /// `get_with`: the live value, or a new one computed and inserted.
    GetWith(u8),
    /// Neither of these is an access: the idle time goes on.
    Peek(u8),
    Contains(u8),
    Iter,
    Update(u8),
    Remove(u8),
    InvalidateAll,
    InvalidateTag(u8),
    Advance(u8),
    RetainEven,
    Maintain,
    /// A new bound, 1 to 24 (× 65,536 for a roomy cache).
    Resize(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), proptest::option::of(1..20_u8), proptest::option::of(0..4_u8))
            .prop_map(|(key, ttl, tag)| Op::Insert { key: key % 64, ttl, tag }),
        4 => any::<u8>().prop_map(|k| Op::Get(k % 64)),
        1 => any::<u8>().prop_map(|k| Op::GetWith(k % 64)),
        1 => any::<u8>().prop_map(|k| Op::Peek(k % 64)),
        1 => any::<u8>().prop_map(|k| Op::Contains(k % 64)),
        1 => Just(Op::Iter),
        1 => any::<u8>().prop_map(|k| Op::Update(k % 64)),
        1 => any::<u8>().prop_map(|k| Op::Remove(k % 64)),
        1 => (0..4_u8).prop_map(Op::InvalidateTag),
        1 => (1..10_u8).prop_map(Op::Advance),
        1 => Just(Op::RetainEven),
        1 => Just(Op::Maintain),
        1 => (0..25_u8).prop_map(Op::Resize),
        1 => Just(Op::InvalidateAll),
    ]
}

/// What the model knows of a key: the value written last, its deadline and tag, and
/// when it was last read or written.
#[derive(Debug, Clone, Copy)]
struct Model {
    value: u32,
    deadline: Option<u64>,
    tag: Option<u8>,
    last_access: u64,
}

impl Model {
    /// Neither its TTL nor, in a cache with a time-to-idle of `idle`, its idle time has run
    /// out at `now`.
    fn alive(&self, now: u64, idle: Option<u8>) -> bool {
        self.deadline.is_none_or(|d| d > now)
            && idle.is_none_or(|idle| self.last_access + u64::from(idle) > now)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random operation sequences against a map model: the cache never exceeds its bound,
    /// never returns a value that is not the latest one written, and never returns a
    /// removed, tag-invalidated or expired entry. The listener accounts for every entry.
    /// Weighted, entries weigh 1 to 8: often more than a shard's share, so that capacity
    /// moves between shards (on inserts and on updates), and the bound changes meanwhile (`check` sees that no
    /// capacity is created or lost). With room for every key ("roomy", bounds in the
    /// hundreds of thousands) and the default shards, a weighted cache chooses its shard
    /// count midway (7 cases in 256). Some caches have a time-to-idle, a default TTL, a
    /// TTL computed from the value (`expire_after`), or several.
    #[test]
    fn behaves_like_a_bounded_map(ops in proptest::collection::vec(op(), 1..300), mut capacity in 1..24_u64, seed in any::<u64>(), idle in proptest::option::of(1..12_u8), default_ttl in proptest::option::of(1..20_u8), by_value in any::<bool>(), roomy in any::<bool>(), shards in 0..4_u32, policy in 0..4_usize, weighted in any::<bool>()) {
        if roomy {
            capacity = 1 << 20;
        }
        let clock = MockClock::new();
        let removed = Arc::new(StdMutex::new(Vec::new()));
        let sink = removed.clone();
        let heard_sync = Arc::new(StdMutex::new(Vec::new()));
        let sync_sink = heard_sync.clone();
        let policy = [
            EvictionPolicy::adaptive(),
            EvictionPolicy::tiny_lfu_with_window(0.0),
            EvictionPolicy::tiny_lfu_with_window(1.0),
            EvictionPolicy::s3_fifo(),
        ][policy];
        let mut builder = Cache::<u8, u32>::builder()
            .hasher(foldhash::fast::FixedState::with_seed(seed))
            .max_capacity(capacity)
            .eviction_policy(policy)
            .clock(clock.clone())
            .eviction_listener(move |k, v, cause| sink.lock().expect("listener lock").push((k, v, cause)))
            // The synchronous listener (the server's path to its disk tier) must hear of
            // the same removals, each once.
            .synchronous_eviction_listener(move |k: &u8, v: &u32, cause| sync_sink.lock().expect("listener lock").push((*k, *v, cause)));
        if shards < 3 {
            builder = builder.shards(1 << shards);
        }
        if let Some(idle) = idle {
            builder = builder.time_to_idle(Duration::from_secs(idle.into()));
        }
        if let Some(ttl) = default_ttl {
            builder = builder.time_to_live(Duration::from_secs(ttl.into()));
        }
        // A value's own TTL, for one value in three: between an explicit TTL and the
        // default one.
        let value_ttl = move |v: u32| (by_value && v.is_multiple_of(3)).then_some(1 + v % 7);
        if by_value {
            builder = builder.expire_after(move |_, v| value_ttl(*v).map(|t| Duration::from_secs(t.into())));
        }
        let ttl_of = move |explicit: Option<u8>, v: u32| {
            explicit.map(u32::from).or(value_ttl(v)).or(default_ttl.map(u32::from))
        };
        if weighted {
            // By value too: an update re-weighs its entry, often past its shard's share.
            builder = builder.weigher(|k, v| 1 + (u32::from(*k) + *v) % 8);
        }
        let cache = builder.build().expect("valid config");
        if roomy {
            // 40 keys the operations never touch: a weighted cache with the default
            // shards splits at its 64th new key, amid the operations.
            for key in 128..168 {
                cache.insert(key, 0);
            }
        }
        let mut model: HashMap<u8, Model> = HashMap::new();
        let mut now = 0_u64;
        let mut version = 0_u32;
        for op in ops {
            match op {
                Op::Insert { key, ttl, tag } => {
                    version += 1;
                    let mut options = InsertOptions::new();
                    if let Some(ttl) = ttl {
                        options = options.ttl(Duration::from_secs(ttl.into()));
                    }
                    if let Some(tag) = tag {
                        options = options.tag(format!("t{tag}"));
                    }
                    cache.insert_with(key, version, &options);
                    model.insert(key, Model {
                        value: version,
                        deadline: ttl_of(ttl, version).map(|t| now + u64::from(t)),
                        tag,
                        last_access: now,
                    });
                }
                Op::Get(key) => {
                    let live = model.get_mut(&key).filter(|m| m.alive(now, idle));
                    // None is allowed (evicted); a value must be the latest live one.
                    if let Some(value) = cache.get(&key) {
                        let expected = live.map(|m| {
                            m.last_access = now;
                            m.value
                        });
                        prop_assert_eq!(Some(value), expected, "key {} returned a stale or dead value", key);
                    }
                }
                Op::GetWith(key) => {
                    version += 1;
                    let loaded = std::cell::Cell::new(false);
                    let got = cache.get_with(key, || {
                        loaded.set(true);
                        version
                    });
                    let live = model.get_mut(&key).filter(|m| m.alive(now, idle));
                    match live {
                        // Still cached: a hit, an access. (Told by the loader not running,
                        // not by the value: an updated value may equal the new version.)
                        Some(m) if !loaded.get() => {
                            prop_assert_eq!(got, m.value, "key {} returned a stale value", key);
                            m.last_access = now;
                        }
                        None if !loaded.get() => prop_assert!(false, "key {} returned {} though dead", key, got),
                        _ => {
                            prop_assert_eq!(got, version, "key {} did not return its load", key);
                            let deadline = ttl_of(None, version).map(|t| now + u64::from(t));
                            model.insert(key, Model { value: version, deadline, tag: None, last_access: now });
                        }
                    }
                }
                Op::Peek(key) => {
                    if let Some(value) = cache.peek(&key) {
                        let live = model.get(&key).filter(|m| m.alive(now, idle));
                        prop_assert_eq!(Some(value), live.map(|m| m.value), "key {} peeked a stale or dead value", key);
                    }
                }
                Op::Contains(key) => {
                    if cache.contains_key(&key) {
                        prop_assert!(model.get(&key).is_some_and(|m| m.alive(now, idle)), "key {} contained though dead", key);
                    }
                }
                Op::Iter => {
                    for (key, value) in cache.iter() {
                        if key < 64 {
                            let live = model.get(&key).filter(|m| m.alive(now, idle));
                            prop_assert_eq!(Some(value), live.map(|m| m.value), "key {} listed stale or dead", key);
                        }
                    }
                }
                Op::InvalidateAll => {
                    cache.invalidate_all();
                    model.clear();
                    prop_assert!(cache.is_empty());
                }
                Op::Update(key) => {
                    // +2 keeps the value's parity, which `RetainEven` goes by.
                    let updated = cache.update(&key, |v| *v += 2);
                    let live = model.get_mut(&key).filter(|m| m.alive(now, idle));
                    match live {
                        Some(m) if updated => m.value += 2,
                        Some(_) => {} // evicted
                        None => prop_assert!(!updated, "key {} updated though dead", key),
                    }
                }
                Op::Remove(key) => {
                    let got = cache.remove(&key);
                    let live = model.remove(&key).filter(|m| m.alive(now, idle));
                    if let Some(value) = got {
                        prop_assert_eq!(Some(value), live.map(|m| m.value));
                    }
                }
                Op::InvalidateTag(tag) => {
                    cache.invalidate_tag(&format!("t{tag}"));
                    model.retain(|_, m| m.tag != Some(tag));
                }
                Op::Advance(secs) => {
                    clock.advance(Duration::from_secs(secs.into()));
                    now += u64::from(secs);
                }
                Op::RetainEven => {
                    cache.retain(|_, v| v % 2 == 0);
                    model.retain(|_, m| m.value % 2 == 0);
                }
                Op::Maintain => cache.run_pending_tasks(),
                Op::Resize(bound) => {
                    capacity = u64::from(bound) << if roomy { 16 } else { 0 };
                    cache.set_max_capacity(capacity);
                }
            }
            prop_assert!(cache.weighted_size() <= capacity);
            prop_assert!(cache.len() as u64 <= capacity);
            cache.check();
        }
        // Every key the model still holds alive is either in the cache with the latest
        // value or was evicted for size (never silently lost).
        let removed = removed.lock().expect("listener lock").clone();
        for (key, m) in &model {
            if !m.alive(now, idle) {
                continue;
            }
            match cache.get(key) {
                Some(v) => prop_assert_eq!(v, m.value),
                None => prop_assert!(
                    removed.iter().any(|(k, v, c)| k == key && *v == m.value && *c == RemovalCause::Size),
                    "key {} vanished without a size eviction", key
                ),
            }
        }
        let stats = cache.stats();
        prop_assert_eq!(stats.removals() as usize, removed.len());
        prop_assert_eq!(&*heard_sync.lock().expect("listener lock"), &removed);
    }
}

/// Found by `behaves_like_a_bounded_map`: `remove` handed back the value of an entry whose
/// TTL had passed but which was not reclaimed yet.
#[test]
fn remove_does_not_return_an_expired_value() {
    let clock = MockClock::new();
    let causes = Arc::new(StdMutex::new(Vec::new()));
    let sink = causes.clone();
    let cache = Cache::<u32, u32>::builder()
        .max_capacity(10)
        .clock(clock.clone())
        .eviction_listener(move |_, _, cause| sink.lock().expect("lock").push(cause))
        .build()
        .expect("valid config");
    cache.insert_with_ttl(8, 1, Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.remove(&8), None);
    assert_eq!(*causes.lock().expect("lock"), [RemovalCause::Expired]);
}

/// `update` changes a value without being an access or a replacement: no statistic, no
/// listener; the entry keeps its expiry and its tags, and is re-weighed.
#[test]
fn update_changes_a_value_in_place() {
    let clock = MockClock::new();
    let causes = Arc::new(StdMutex::new(Vec::new()));
    let sink = causes.clone();
    let cache = Cache::<u32, Vec<u8>>::builder()
        .max_capacity(100)
        .weigher(|_, v: &Vec<u8>| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .shards(1)
        .clock(clock.clone())
        .eviction_listener(move |k, _, cause| sink.lock().expect("lock").push((k, cause)))
        .build()
        .expect("valid config");
    let options = InsertOptions::new().ttl(Duration::from_secs(10)).tag("t");
    cache.insert_with(1, vec![0; 10], &options);
    cache.insert(2, vec![0; 10]);
    let before = cache.stats();

    assert!(cache.update(&1, |v| v.push(7)));
    assert!(
        !cache.update(&3, |v| v.push(7)),
        "no entry, nothing to change"
    );
    assert_eq!(cache.peek(&1).map(|v| v.len()), Some(11));
    assert_eq!(cache.weighted_size(), 21, "re-weighed");
    assert_eq!(cache.stats(), before, "not counted");
    assert!(causes.lock().expect("lock").is_empty(), "not a removal");
    assert_eq!(cache.invalidate_tag("t"), 1, "its tags stay");

    cache.insert_with_ttl(1, vec![0; 10], Duration::from_secs(10));
    clock.advance(Duration::from_secs(10));
    assert!(!cache.update(&1, |v| v.push(7)), "its expiry stays");

    // Heavier than the bound now: evicted, as an insert of it would be refused.
    assert!(cache.update(&2, |v| v.resize(101, 0)));
    assert_eq!(cache.peek(&2), None);
    assert!(cache.weighted_size() <= 100);
    cache.check();
}

/// A peek does not reset the time-to-idle; a get does.
#[test]
fn peek_is_not_an_access() {
    let clock = MockClock::new();
    let cache = Cache::<u32, u32>::builder()
        .max_capacity(10)
        .time_to_idle(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .expect("valid config");
    cache.insert(1, 1);
    cache.insert(2, 2);
    clock.advance(Duration::from_secs(6));
    assert_eq!(cache.peek(&1), Some(1));
    assert_eq!(cache.get(&2), Some(2));
    clock.advance(Duration::from_secs(6));
    assert_eq!(cache.peek(&1), None, "idle for 12 s");
    assert_eq!(cache.peek(&2), Some(2), "idle for 6 s");
}

#[test]
fn stale_deadline_nodes_do_not_expire_a_rewritten_entry() {
    let clock = MockClock::new();
    let cache = Cache::<u32, u32>::builder()
        .max_capacity(10)
        .clock(clock.clone())
        .build()
        .expect("valid config");
    cache.insert_with_ttl(1, 1, Duration::from_secs(5));
    cache.insert(1, 2); // no TTL any more
    clock.advance(Duration::from_secs(10));
    cache.run_pending_tasks();
    assert_eq!(cache.get(&1), Some(2));
    cache.check();
}

/// A cache of 8,000 bytes in 8 shards (a 1,000-byte share each), pinned to TinyLFU.
fn bytes_cache() -> Cache<u32, Vec<u8>> {
    Cache::builder()
        .max_capacity(8_000)
        .shards(8)
        .weigher(|_, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
        .eviction_policy(EvictionPolicy::tiny_lfu())
        .build()
        .expect("valid config")
}

/// [`bytes_cache`] holding 40 entries of 10 bytes. The hasher is seeded per process, and
/// 40 sequential keys sometimes crowd into a few shards: 400 bytes fit beside a 3,000-byte
/// entry in any one shard, so whatever the spread, nothing needs evicting.
fn lightly_filled() -> Cache<u32, Vec<u8>> {
    let cache = bytes_cache();
    for key in 0..40 {
        cache.insert(key, vec![0; 10]);
    }
    cache
}

/// Each shard's capacity and what it has lent.
fn shares(cache: &Cache<u32, Vec<u8>>) -> Vec<(u64, u64)> {
    let cells = cache.inner.shards.iter().map(|lock| lock.read());
    cells
        .map(|cell| (cell.shard.capacity(), cell.shard.lent()))
        .collect()
}

/// The invariants hold and every shard has its `share`, no loan outstanding.
fn assert_no_loans(cache: &Cache<u32, Vec<u8>>, share: u64) {
    cache.check();
    assert!(
        shares(cache).iter().all(|&s| s == (share, 0)),
        "{:?}",
        shares(cache)
    );
}

/// An entry three times its shard's share is stored, as in an unsharded cache: the other
/// shards lend it capacity, and have it back when it leaves.
#[test]
fn an_entry_heavier_than_its_shard_borrows_from_the_others() {
    let cache = lightly_filled();
    cache.insert(1_000, vec![0; 3_000]);
    assert_eq!(cache.get(&1_000).map(|v| v.len()), Some(3_000));
    assert!(cache.weighted_size() <= 8_000);
    cache.check();
    let home = cache.shard_index(cache.inner.hasher.hash_one(1_000_u32));
    for (i, (capacity, lent)) in shares(&cache).into_iter().enumerate() {
        if i == home {
            assert!(capacity >= 3_000, "the home shard holds the entry");
        } else {
            assert!(lent > 0 && capacity < 1_000, "shard {i} lent its part");
        }
    }
    cache.remove(&1_000);
    assert_no_loans(&cache, 1_000);
}

/// A heavy newcomer that TinyLFU turns away (its one sighting against the many entries it
/// would displace) leaves every other entry in place: the lenders evict only for an entry
/// that stays.
#[test]
fn a_heavy_newcomer_turned_away_displaces_nothing() {
    let cache = bytes_cache();
    for key in 0..200 {
        cache.insert(key, vec![0; 50]);
    }
    let held: Vec<u32> = (0..200).filter(|key| cache.contains_key(key)).collect();
    // A key whose shard is full, so that it must displace entries there: a shard that
    // the hasher left emptier would take it without a duel.
    let heavy = (1_000..)
        .find(|key: &u32| {
            let home = cache.shard_index(cache.inner.hasher.hash_one(key));
            cache.inner.shards[home].read().shard.weight() >= 950
        })
        .expect("200 keys of 50 bytes fill some shard of 1,000");
    let evicted = cache.stats().evicted_size;
    cache.insert(heavy, vec![0; 3_000]);
    assert_eq!(cache.get(&heavy), None);
    assert!(held.iter().all(|key| cache.contains_key(key)));
    assert_eq!(cache.stats().evicted_size, evicted + 1);
    assert_no_loans(&cache, 1_000);
}

/// A new bound ends the loans: every shard gets its share of it, whatever it had lent or
/// borrowed, and the heavy entry leaving later gives nothing back twice.
#[test]
fn a_new_bound_ends_the_loans() {
    let cache = bytes_cache();
    cache.insert(1_000, vec![0; 3_000]);
    assert!(shares(&cache).iter().any(|&(_, lent)| lent > 0));
    cache.set_max_capacity(16_000);
    assert_no_loans(&cache, 2_000);
    cache.remove(&1_000);
    assert_no_loans(&cache, 2_000);
}

/// A loan that comes back after a new bound ended the loans is void: the bound gave every
/// shard its share, and what the shards have lent since is another entry's. (Paid back
/// to them, it made capacity: a remover hands the loan back after its shard's lock, and
/// a thread changing the bound can come between.)
#[test]
fn a_loan_repaid_after_a_new_bound_is_void() {
    let cache = bytes_cache();
    cache.insert(1_000, vec![0; 3_000]);
    // A remover, up to the moment it hands the loan back.
    let hash = cache.inner.hasher.hash_one(1_000_u32);
    let mut removals = cache.removals();
    let removed = (cache.write_shard(hash).shard).remove(hash, &1_000, || 0, &mut removals);
    assert!(removed.is_some());
    cache.set_max_capacity(8_000);
    cache.insert(2_000, vec![0; 3_000]);
    assert!(cache.contains_key(&2_000));
    cache.finish(removals);
    cache.check();
    cache.remove(&2_000);
    assert_no_loans(&cache, 1_000);
}

/// An entry that an update makes heavier than its shard keeps its place, as one
/// inserted that heavy would: the other shards lend. Made heavier than the whole cache, it
/// is evicted, and the loans go back.
#[test]
fn an_update_that_outgrows_the_shard_borrows() {
    let cache = lightly_filled();
    cache.insert(1_000, vec![0; 500]);
    assert!(cache.update(&1_000, |v| v.resize(3_000, 1)));
    assert_eq!(cache.peek(&1_000).map(|v| v.len()), Some(3_000));
    assert!(cache.weighted_size() <= 8_000);
    assert!(
        shares(&cache)
            .iter()
            .any(|&(capacity, _)| capacity >= 3_000)
    );
    cache.check();
    let evicted = cache.stats().evicted_size;
    assert!(cache.update(&1_000, |v| v.resize(9_000, 1)));
    assert_eq!(cache.peek(&1_000), None, "heavier than the cache");
    assert_eq!(cache.stats().evicted_size, evicted + 1);
    assert_no_loans(&cache, 1_000);
}

/// An entry that got lighter since it borrowed keeps its loan, and its shard fills the
/// room. When it leaves it gives back the whole loan, more than its weight: the shard
/// evicts down to what it has left (it stayed above its capacity before).
#[test]
fn a_lightened_entry_gives_back_its_whole_loan() {
    let cache = bytes_cache();
    cache.insert(1_000, vec![0; 3_000]);
    cache.insert(1_000, vec![0; 10]);
    let home = cache.shard_index(cache.inner.hasher.hash_one(1_000_u32));
    let home_weight = || cache.inner.shards[home].read().shard.weight();
    for key in
        (0..100_000).filter(|key: &u32| cache.shard_index(cache.inner.hasher.hash_one(key)) == home)
    {
        if home_weight() >= 2_000 {
            break;
        }
        cache.insert(key, vec![0; 50]);
    }
    assert!(home_weight() >= 2_000, "the home shard filled its loan");
    cache.remove(&1_000);
    assert_no_loans(&cache, 1_000);
}

/// An entry heavier than the whole cache is refused, and no capacity moves.
#[test]
fn an_entry_heavier_than_the_cache_is_refused() {
    let cache = bytes_cache();
    cache.insert(1, vec![0; 8_001]);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.stats().evicted_size, 1);
    assert_no_loans(&cache, 1_000);
}

/// Four threads insert light and heavy entries (up to 3 shards' worth), replace, grow
/// (`update`) and remove them, and one of them changes the bound now and then. The weight never exceeds the
/// bound by more than one heavy entry being inserted, no capacity is made or lost, and
/// once the entries are gone every shard has its share back.
#[test]
fn heavy_entries_under_concurrent_writes() {
    const CAPACITY: u64 = 64 << 10;
    const HEAVY: usize = 24 << 10;
    let cache: Cache<u32, Vec<u8>> = Cache::builder()
        .max_capacity(CAPACITY)
        .shards(8)
        .weigher(|_, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
        .build()
        .expect("valid config");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (cache, stop) = (cache.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut snapshots = 0;
            while !stop.load(Ordering::Relaxed) {
                // All shards at one instant (`weighted_size` reads them in turn, and
                // capacity moves between them meanwhile). Only tried: a thread holding
                // several shards must hold `loans` (a blocking read here deadlocked with
                // an update borrowing under its shard's lock).
                let shards: Option<Vec<_>> =
                    cache.inner.shards.iter().map(|s| s.try_read()).collect();
                if let Some(shards) = shards {
                    let weight: u64 = shards.iter().map(|cell| cell.shard.weight()).sum();
                    let capacity: u64 = shards.iter().map(|cell| cell.shard.capacity()).sum();
                    // A bound changing meanwhile is at most `CAPACITY`.
                    assert!(capacity <= CAPACITY, "capacity made: {capacity}");
                    assert!(weight <= CAPACITY + HEAVY as u64, "{weight}");
                    snapshots += 1;
                }
            }
            snapshots
        })
    };
    let workers: Vec<_> = (0..4_u32)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let mut x = u64::from(t) + 1;
                for i in 0..20_000 {
                    if t == 0 && i % 2_000 == 1_999 {
                        let bound = if i % 4_000 == 1_999 {
                            CAPACITY * 3 / 4
                        } else {
                            CAPACITY
                        };
                        cache.set_max_capacity(bound);
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = (x % 4_096) as u32;
                    match x >> 60 {
                        0 => {
                            cache.remove(&key);
                        }
                        1 => cache.insert(
                            key,
                            vec![t as u8; HEAVY / 2 + (x >> 20) as usize % (HEAVY / 2)],
                        ),
                        2 => {
                            // Grows a light entry past its shard's share, or shrinks it.
                            let len = HEAVY / 2 + (x >> 20) as usize % (HEAVY / 2);
                            cache.update(&key, |value| value.resize(len % 9_000, t as u8));
                        }
                        _ => {
                            if cache.get(&key).is_none() {
                                cache.insert(key, vec![t as u8; 1 + (x >> 20) as usize % 512]);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    stop.store(true, Ordering::Relaxed);
    let snapshots = watcher.join().expect("the bound held");
    assert!(snapshots > 0, "the watcher saw every shard at once");
    assert!(cache.weighted_size() <= CAPACITY);
    cache.check();
    cache.invalidate_all();
    assert_no_loans(&cache, 8 << 10);
}

/// A weighted cache of entries weighing 1.
fn light_cache(capacity: u64) -> Cache<u32, u32> {
    Cache::builder()
        .max_capacity(capacity)
        .weigher(|_, _| 1)
        .build()
        .expect("valid config")
}

/// A weighted cache starts as one shard and chooses its shard count from its first new
/// keys' mean weight, as a cache bounded by entries does from its bound: light entries get
/// the shards their number calls for, large values few.
#[test]
fn a_weighted_cache_chooses_its_shards_from_its_first_entries() {
    let light = light_cache(1 << 24);
    assert_eq!(light.in_use(), 1);
    for key in 0..100 {
        light.insert(key, key);
    }
    assert_eq!(light.in_use(), crate::memory::builder::shard_count(1 << 24));
    light.check();
    // 64 MiB of 64 KiB values: 1,024 entries, one shard.
    let large: Cache<u32, Vec<u8>> = Cache::builder()
        .max_capacity(64 << 20)
        .weigher(|_, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
        .build()
        .expect("valid config");
    for key in 0..100 {
        large.insert(key, vec![0; 64 << 10]);
    }
    assert_eq!(large.in_use(), 1);
}

/// The entries a weighted cache held when it chose its shards move to their new shards
/// whole: found, with their tags and deadlines.
#[test]
fn entries_keep_their_tags_and_deadlines_across_the_split() {
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(1 << 24)
        .weigher(|_, _| 1)
        .clock(clock.clone())
        .build()
        .expect("valid config");
    let tagged = InsertOptions::new().tag("early");
    let timed = InsertOptions::new().ttl(Duration::from_secs(10));
    for key in 0..63 {
        cache.insert_with(key, key, if key < 31 { &tagged } else { &timed });
    }
    assert_eq!(cache.in_use(), 1);
    cache.insert(63, 63);
    assert!(cache.in_use() > 1);
    cache.check();
    assert!((0..64).all(|key| cache.get(&key) == Some(key)));
    assert_eq!(cache.invalidate_tag("early"), 31);
    clock.advance(Duration::from_secs(11));
    cache.run_pending_tasks();
    assert_eq!(
        cache.stats().evicted_expired,
        32,
        "their deadlines moved too"
    );
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&63), Some(63));
}

/// In a cache with a time-to-idle, an entry's idle time goes on across the split: moved
/// at its 64th key, the entries last read 6 s before still leave 4 s later (they did not
/// start a new 10 s). Found by `behaves_like_a_bounded_map` once it had caches with a
/// time-to-idle.
#[test]
fn idle_times_go_on_across_the_split() {
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(1 << 24)
        .weigher(|_, _| 1)
        .time_to_idle(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .expect("valid config");
    for key in 0..63 {
        cache.insert(key, key);
    }
    clock.advance(Duration::from_secs(6));
    cache.insert(63, 63);
    assert!(cache.in_use() > 1, "split");
    clock.advance(Duration::from_secs(4));
    assert!((0..63).all(|key| cache.get(&key).is_none()));
    assert_eq!(cache.get(&63), Some(63));
}

/// Four threads insert from the start, so that the shard count changes under them: no
/// key is lost or stored in the wrong shard (`check`), and every one is found after.
#[test]
fn the_split_under_concurrent_writers() {
    let cache = light_cache(1 << 24);
    let start = Arc::new(std::sync::Barrier::new(4));
    let workers: Vec<_> = (0..4_u32)
        .map(|t| {
            let (cache, start) = (cache.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..5_000 {
                    let key = t * 1_000_000 + i;
                    cache.insert(key, key);
                    if i % 7 == 0 {
                        assert_eq!(cache.remove(&key), Some(key), "a writer finds its key");
                        cache.insert(key, key);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    assert!(cache.in_use() > 1);
    cache.check();
    assert_eq!(cache.len(), 20_000);
    assert!((0..4).all(|t| (0..5_000).all(|i| cache.get(&(t * 1_000_000 + i)).is_some())));
}
