//! The typed layer: serde keys and values, and coalesced get-or-compute.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata::{DiskCache, DiskStore};

use crate::builder;
use crate::load_race::write_during_a_load;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    scores: Vec<f32>,
}

#[test]
fn typed_values_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile {
        id: 7,
        name: "ada".into(),
        scores: vec![1.5, 2.0],
    };
    {
        let cache: DiskCache<(u64, String), Profile> =
            DiskCache::new(builder(dir.path()).open().unwrap());
        cache.insert(&(7, "ada".into()), &profile).unwrap();
    }
    let cache: DiskCache<(u64, String), Profile> =
        DiskCache::new(builder(dir.path()).open().unwrap());
    assert_eq!(cache.get(&(7, "ada".into())).unwrap(), Some(profile));
    assert_eq!(cache.get(&(8, "bob".into())).unwrap(), None);
}

#[test]
fn a_value_of_another_type_reads_as_a_counted_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = builder(dir.path()).open().unwrap();
    DiskCache::<u32, String>::new(store.clone())
        .insert(&1, &"text".to_string())
        .unwrap();
    let other: DiskCache<u32, Profile> = DiskCache::new(store);
    assert_eq!(other.get(&1).unwrap(), None);
    assert_eq!(other.stats().decode_errors, 1);
}

#[test]
fn concurrent_get_with_computes_once_and_stores_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let cache: DiskCache<String, u64> = DiskCache::new(builder(dir.path()).open().unwrap());
    let computations = AtomicUsize::new(0);
    let barrier = Barrier::new(16);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                barrier.wait();
                let v = cache.get_with("answer".to_string(), || {
                    computations.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    42
                });
                assert_eq!(v, 42);
            });
        }
    });
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&"answer".to_string()).unwrap(), Some(42));
}

#[test]
fn errors_are_shared_with_waiters_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cache: DiskCache<u32, u32> = DiskCache::new(builder(dir.path()).open().unwrap());
    let first: Result<u32, Arc<String>> = cache.try_get_with(1, || Err("backend down".to_string()));
    assert_eq!(first.unwrap_err().as_str(), "backend down");
    assert_eq!(cache.get(&1).unwrap(), None);
    assert_eq!(cache.try_get_with(1, || Ok::<u32, String>(5)).unwrap(), 5);
}

#[tokio::test]
async fn async_get_with_coalesces_too() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(DiskCache::<u32, String>::new(
        builder(dir.path()).open().unwrap(),
    ));
    let computations = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (cache, computations) = (cache.clone(), computations.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_with_async(9, async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    "nine".to_string()
                })
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "nine");
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
}

#[test]
fn the_store_is_shared_between_clones() {
    let dir = tempfile::tempdir().unwrap();
    let store: DiskStore = builder(dir.path()).open().unwrap();
    let clone = store.clone();
    clone.insert(b"k", b"v").unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(b"v".to_vec()));
}

/// A write of the key while `get_with` computes it wins: the computed value, read from the
/// source before the write, goes to the caller but is not kept. (Unlike the memory tier, an
/// insert during the load may leave nothing, never the computed value: the leader stores,
/// then finds its flight outdated and removes what it stored, or what came after.)
#[test]
fn a_write_during_a_load_is_not_undone_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache: Arc<DiskCache<u32, String>> =
        Arc::new(DiskCache::new(builder(dir.path()).open().unwrap()));
    let during = |write: &dyn Fn(&DiskCache<u32, String>)| {
        let load = |cache: &Arc<DiskCache<u32, String>>,
                    computation: Box<dyn FnOnce() -> String + Send>| {
            cache.get_with(1, computation)
        };
        let old = "computed from the old row".to_string();
        let got = write_during_a_load(&cache, load, old, |cache| write(cache));
        assert_eq!(got, "computed from the old row");
        cache.get(&1).unwrap()
    };
    assert_eq!(
        during(&|c| {
            c.remove(&1).unwrap();
        }),
        None
    );
    let new_row = "the new row".to_string();
    let after_insert = during(&|c| c.insert(&1, &new_row).unwrap());
    assert!(after_insert.is_none() || after_insert == Some(new_row.clone()));
    cache.remove(&1).unwrap();
    assert_eq!(
        during(&|c| c.insert(&2, &new_row).unwrap()).as_deref(),
        Some("computed from the old row")
    );
}
