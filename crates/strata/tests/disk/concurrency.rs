//! Many threads reading and writing at once.

use std::sync::Barrier;

use strata::{DiskStore, InsertOptions, SyncPolicy};

use crate::{key_of, value_for};

#[test]
fn concurrent_writers_and_readers_only_ever_see_values_of_the_key_they_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let max = 3 << 20;
    let segment = 128 << 10;
    let store = DiskStore::builder(dir.path())
        .max_bytes(max)
        .segment_size(segment)
        .sync(SyncPolicy::Interval(std::time::Duration::from_millis(5)))
        .open()
        .unwrap();
    let threads = 6;
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, barrier) = (&store, &barrier);
            s.spawn(move || {
                barrier.wait();
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                for i in 0..6_000u64 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let key = format!("key{}", (state >> 16) % 4000);
                    match state % 10 {
                        0 => {
                            store.remove(key.as_bytes()).unwrap();
                        }
                        1 => {
                            let tag = format!("t{}", state % 7);
                            let opts = InsertOptions::new().tag(tag.as_str());
                            let v = value_for(key.as_bytes(), i, (state % 3000) as usize);
                            store.insert_with(key.as_bytes(), &v, &opts).unwrap();
                        }
                        2 if i % 50 == 0 => {
                            store.invalidate_tag(&format!("t{}", state % 7)).unwrap();
                        }
                        3..=5 => {
                            let v = value_for(key.as_bytes(), i, (state % 3000) as usize);
                            store.insert(key.as_bytes(), &v).unwrap();
                        }
                        _ => {
                            if let Some(v) = store.get(key.as_bytes()).unwrap() {
                                assert_eq!(key_of(&v), key.as_bytes());
                            }
                        }
                    }
                    if i % 512 == 0 {
                        assert!(store.disk_bytes() <= max + segment);
                    }
                }
            });
        }
    });
    let stats = store.stats();
    assert_eq!(stats.corrupt_reads, 0);
    assert!(stats.hits > 0 && stats.evictions > 0, "{stats:?}");
    drop(store);
    // What the threads left behind reopens cleanly, and every entry is its key's.
    let store = DiskStore::builder(dir.path())
        .max_bytes(max)
        .segment_size(segment)
        .open()
        .unwrap();
    assert_eq!(store.stats().recovery_skipped_bytes, 0);
    for k in 0..4000 {
        let key = format!("key{k}");
        if let Some(v) = store.get(key.as_bytes()).unwrap() {
            assert_eq!(key_of(&v), key.as_bytes());
        }
    }
}

/// Each thread owns its keys and remembers what it last wrote to each. While the others'
/// writes fill the store and make it evict segments (re-writing the entries read since they
/// were written), every read returns the thread's last write or nothing, never an older
/// value. After a clean close and a reopen, the same holds for every key.
#[test]
fn each_thread_reads_its_own_latest_writes_before_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (max, segment) = (2 << 20, 64 << 10);
    let open = || {
        DiskStore::builder(dir.path())
            .max_bytes(max)
            .segment_size(segment)
            .sync(SyncPolicy::Interval(std::time::Duration::from_millis(5)))
            .open()
            .unwrap()
    };
    let store = open();
    let threads = 4_u64;
    let barrier = Barrier::new(threads as usize);
    let models: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (store, barrier) = (&store, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut model = std::collections::HashMap::new();
                    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 7);
                    for i in 0..6_000u64 {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let key = format!("t{t}k{}", (state >> 16) % 300).into_bytes();
                        match state % 10 {
                            0 => {
                                store.remove(&key).unwrap();
                                model.remove(&key);
                            }
                            1..=4 => {
                                let v = value_for(&key, i, (state >> 40) as usize % 4000);
                                store.insert(&key, &v).unwrap();
                                model.insert(key, v);
                            }
                            _ => {
                                if let Some(v) = store.get(&key).unwrap() {
                                    assert_eq!(
                                        Some(&v),
                                        model.get(&key),
                                        "{} at {i}",
                                        String::from_utf8_lossy(&key)
                                    );
                                }
                            }
                        }
                    }
                    model
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(store.stats().evictions > 0, "{:?}", store.stats());
    drop(store);
    let store = open();
    for t in 0..threads {
        for k in 0..300 {
            let key = format!("t{t}k{k}").into_bytes();
            if let Some(v) = store.get(&key).unwrap() {
                assert_eq!(
                    Some(&v),
                    models[t as usize].get(&key),
                    "{} after reopen",
                    String::from_utf8_lossy(&key)
                );
            }
        }
    }
}
