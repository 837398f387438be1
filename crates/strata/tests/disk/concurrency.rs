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
