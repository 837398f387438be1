//! The byte bound, FIFO eviction by segment, and the second chance for entries in use.

use strata::{DiskStore, SyncPolicy};

use crate::value_for;

fn files_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn disk_usage_stays_within_the_bound_plus_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let max = 4 << 20;
    let segment = 256 << 10;
    let store = DiskStore::builder(dir.path())
        .max_bytes(max)
        .segment_size(segment)
        .sync(SyncPolicy::Never)
        .open()
        .unwrap();
    for i in 0..40_000u64 {
        let key = format!("k{i}");
        store
            .insert(
                key.as_bytes(),
                &value_for(key.as_bytes(), i, 50 + (i as usize % 900)),
            )
            .unwrap();
        if i % 1000 == 0 {
            assert!(
                store.disk_bytes() <= max + segment,
                "{} at {i}",
                store.disk_bytes()
            );
        }
    }
    store.flush().unwrap();
    assert!(store.disk_bytes() <= max + segment);
    assert!(
        files_bytes(dir.path()) <= max + segment,
        "files: {}",
        files_bytes(dir.path())
    );
    assert_eq!(
        files_bytes(dir.path()),
        store.disk_bytes(),
        "accounting matches the files"
    );
    let stats = store.stats();
    assert!(stats.evictions > 20_000, "{stats:?}");
    // The newest entries are all there; evicted ones read as misses, never as other values.
    for i in 39_000..40_000u64 {
        let key = format!("k{i}");
        assert_eq!(
            store.get(key.as_bytes()).unwrap(),
            Some(value_for(key.as_bytes(), i, 50 + (i as usize % 900)))
        );
    }
    assert_eq!(store.get(b"k0").unwrap(), None);
}

#[test]
fn entries_read_since_written_survive_eviction_of_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::builder(dir.path())
        .max_bytes(2 << 20)
        .segment_size(128 << 10)
        .sync(SyncPolicy::Never)
        .open()
        .unwrap();
    let hot: Vec<String> = (0..50).map(|i| format!("hot{i}")).collect();
    for (i, key) in hot.iter().enumerate() {
        store
            .insert(key.as_bytes(), &value_for(key.as_bytes(), i as u64, 500))
            .unwrap();
    }
    // Stream ten times the bound of one-off entries past them, reading the hot set as we go.
    for i in 0..40_000u64 {
        let key = format!("cold{i}");
        store
            .insert(key.as_bytes(), &value_for(key.as_bytes(), i, 500))
            .unwrap();
        if i % 500 == 0 {
            for key in &hot {
                assert!(
                    store.get(key.as_bytes()).unwrap().is_some(),
                    "{key} evicted at {i}"
                );
            }
        }
    }
    assert!(store.stats().reinsertions >= 50, "{:?}", store.stats());
    assert_eq!(
        store.get(b"cold0").unwrap(),
        None,
        "one-off entries are evicted"
    );
}
