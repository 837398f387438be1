//! The API's behaviour, and what survives a clean reopen.

use std::time::Duration;

use strata::{DiskStore, Error, InsertOptions, SyncPolicy};

use crate::builder;

#[test]
fn values_from_one_byte_to_64_mib_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0usize, 1, 100, 4096, 200_000, 64 << 20];
    let value = |n: usize| (0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>();
    {
        let store = builder(dir.path()).open().unwrap();
        for n in sizes {
            store.insert(format!("v{n}").as_bytes(), &value(n)).unwrap();
        }
        for n in sizes {
            assert_eq!(
                store.get(format!("v{n}").as_bytes()).unwrap(),
                Some(value(n))
            );
        }
    }
    let store = builder(dir.path()).open().unwrap();
    assert_eq!(store.len(), sizes.len());
    assert_eq!(store.stats().recovered_entries, sizes.len() as u64);
    for n in sizes {
        assert_eq!(
            store.get(format!("v{n}").as_bytes()).unwrap(),
            Some(value(n)),
            "size {n}"
        );
    }
}

#[test]
fn overwrite_remove_tags_and_clear_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = builder(dir.path()).open().unwrap();
        store.insert(b"a", b"1").unwrap();
        store.insert(b"a", b"2").unwrap();
        store.insert(b"b", b"x").unwrap();
        assert!(store.remove(b"b").unwrap());
        assert!(!store.remove(b"b").unwrap());
        let tagged = InsertOptions::new().tag("user:1");
        store.insert_with(b"p1", b"profile", &tagged).unwrap();
        store
            .insert_with(b"p2", b"posts", &tagged.clone().tag("feed"))
            .unwrap();
        store
            .insert_with(b"p3", b"other", &InsertOptions::new().tag("feed"))
            .unwrap();
        assert_eq!(store.invalidate_tag("user:1").unwrap(), 2);
        assert_eq!(store.invalidate_tag("user:1").unwrap(), 0);
        assert_eq!(store.get(b"p3").unwrap(), Some(b"other".to_vec()));
    }
    {
        let store = builder(dir.path()).open().unwrap();
        assert_eq!(store.get(b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.get(b"b").unwrap(), None);
        assert_eq!(store.get(b"p1").unwrap(), None);
        assert_eq!(store.get(b"p2").unwrap(), None);
        // The tag index is rebuilt: "feed" still finds p3.
        assert_eq!(store.invalidate_tag("feed").unwrap(), 1);
        store.insert(b"c", b"3").unwrap();
        store.invalidate_all().unwrap();
        assert!(store.is_empty());
        store.insert(b"after", b"clear").unwrap();
    }
    let store = builder(dir.path()).open().unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(store.get(b"after").unwrap(), Some(b"clear".to_vec()));
    // invalidate_all deleted the old segment files.
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(files <= 3, "{files} files left after invalidate_all");
}

#[test]
fn expired_entries_are_never_returned_before_or_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = strata::MockClock::new();
    let short = InsertOptions::new().ttl(Duration::from_secs(10));
    {
        let store = builder(dir.path()).clock(clock.clone()).open().unwrap();
        store.insert_with(b"short", b"s", &short).unwrap();
        store.insert(b"forever", b"f").unwrap();
        clock.advance(Duration::from_secs(9));
        assert!(store.contains_key(b"short"));
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.get(b"short").unwrap(), None);
        assert!(!store.contains_key(b"short"));
    }
    {
        // Expiry times are wall-clock times: a 150 ms TTL is over by the time we reopen.
        let store = builder(dir.path()).open().unwrap();
        let ttl = InsertOptions::new().ttl(Duration::from_millis(150));
        store.insert_with(b"wall", b"w", &ttl).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let store = builder(dir.path()).open().unwrap();
    assert_eq!(store.get(b"wall").unwrap(), None);
    assert_eq!(store.get(b"forever").unwrap(), Some(b"f".to_vec()));
}

#[test]
fn a_second_opener_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = builder(dir.path()).open().unwrap();
    let second = builder(dir.path()).open();
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    drop(first);
    builder(dir.path()).open().unwrap();
}

#[test]
fn bad_configuration_and_bad_input_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let no_bound = DiskStore::builder(dir.path()).open();
    assert!(
        matches!(no_bound, Err(Error::InvalidConfig(_))),
        "{no_bound:?}"
    );
    let tiny = DiskStore::builder(dir.path()).max_bytes(10).open();
    assert!(matches!(tiny, Err(Error::InvalidConfig(_))));
    let segment = builder(dir.path()).segment_size(2 << 30).open();
    assert!(matches!(segment, Err(Error::InvalidConfig(_))));
    let interval = builder(dir.path())
        .sync(SyncPolicy::Interval(Duration::ZERO))
        .open();
    assert!(matches!(interval, Err(Error::InvalidDuration { .. })));

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let not_dir = builder(&file).open();
    assert!(matches!(not_dir, Err(Error::Io { .. })), "{not_dir:?}");

    let store = builder(&dir.path().join("store"))
        .max_value_size(1000)
        .open()
        .unwrap();
    let big = store.insert(b"k", &[0; 1001]);
    assert!(matches!(
        big,
        Err(Error::TooLarge {
            what: "value",
            len: 1001,
            max: 1000
        })
    ));
    let long_key = store.insert(&[b'k'; 70_000], b"v");
    assert!(matches!(
        long_key,
        Err(Error::KeyTooLarge { len: 70_000, .. })
    ));
    let long_tag = store.insert_with(b"k", b"v", &InsertOptions::new().tag("t".repeat(70_000)));
    assert!(matches!(long_tag, Err(Error::TooLarge { what: "tag", .. })));
    assert!(store.is_empty(), "failed inserts stored nothing");
}

#[test]
fn a_newer_format_is_refused_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    builder(dir.path())
        .open()
        .unwrap()
        .insert(b"k", b"v")
        .unwrap();
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&segment, &bytes).unwrap();
    let reopened = builder(dir.path()).open();
    assert!(
        matches!(
            reopened,
            Err(Error::IncompatibleFormat {
                found: 99,
                supported: 1,
                ..
            })
        ),
        "{reopened:?}"
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "the file is left alone"
    );
}

#[test]
fn statistics_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let store = builder(dir.path()).sync(SyncPolicy::Never).open().unwrap();
    store.insert(b"a", b"1").unwrap();
    store.get(b"a").unwrap();
    store.get(b"nope").unwrap();
    store.remove(b"a").unwrap();
    let stats = store.stats();
    assert_eq!(
        (stats.inserts, stats.hits, stats.misses, stats.removals),
        (1, 1, 1, 1)
    );
    assert_eq!(stats.hit_ratio(), 0.5);
    assert_eq!(stats.disk_bytes, store.disk_bytes());
    assert!(stats.disk_bytes > 0);
}

#[test]
fn dropping_the_last_handle_closes_the_store_at_once() {
    // With a 1 ms sync interval the background syncer is often mid-sync when the last handle
    // goes: the drop must still have closed the store (and unlocked the directory) when it
    // returns.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50u32 {
        let store = builder(dir.path())
            .sync(SyncPolicy::Interval(Duration::from_millis(1)))
            .open()
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        let clone = store.clone();
        store.insert(&i.to_le_bytes(), b"v").unwrap();
        std::thread::sleep(Duration::from_micros(u64::from(i) * 37 % 1500));
        drop(store);
        drop(clone);
    }
    let store = builder(dir.path()).open().unwrap();
    assert_eq!(store.len(), 50);
}

/// The API for a memory tier in front of the store: a key it holds is written but not
/// indexed, comes back after a restart, is indexed again when handed back, and is removed
/// for good by `remove_owned`.
#[test]
fn owned_entries_are_logged_unindexed_then_adopted_or_removed() {
    let dir = tempfile::tempdir().unwrap();
    let tagged = InsertOptions::new().tag("t");
    {
        let store = builder(dir.path()).open().unwrap();
        let at = store.insert_owned(b"held", b"v1", &tagged).unwrap();
        assert_eq!(store.get(b"held").unwrap(), None, "not indexed while held");
        assert_eq!(store.len(), 0);
        store.adopt(b"held", b"v1", &tagged, Some(at)).unwrap();
        assert_eq!(store.get(b"held").unwrap(), Some(b"v1".to_vec()));
        let before = store.disk_bytes();
        store.adopt(b"held", b"v1", &tagged, Some(at)).unwrap();
        assert_eq!(
            store.disk_bytes(),
            before,
            "adopting a live record writes nothing"
        );

        let (value, at) = store.take(b"held").unwrap().unwrap();
        assert_eq!(value, b"v1");
        assert_eq!(store.get(b"held").unwrap(), None, "taken out of the index");
        store.adopt(b"held", &value, &tagged, at).unwrap();
        assert_eq!(
            store.invalidate_tag("t").unwrap(),
            1,
            "adopted with its tags"
        );

        store
            .insert_owned(b"kept", b"k", &InsertOptions::new())
            .unwrap();
        store
            .insert_owned(b"gone", b"g", &InsertOptions::new())
            .unwrap();
        assert!(!store.remove_owned(b"gone").unwrap(), "it was not indexed");
        // Without a record to point at, adopt writes the entry anew.
        store
            .adopt(b"fresh", b"f", &InsertOptions::new(), None)
            .unwrap();
        assert_eq!(store.get(b"fresh").unwrap(), Some(b"f".to_vec()));
    }
    let store = builder(dir.path()).open().unwrap();
    assert_eq!(
        store.get(b"kept").unwrap(),
        Some(b"k".to_vec()),
        "logged, so recovered"
    );
    assert_eq!(
        store.get(b"gone").unwrap(),
        None,
        "the tombstone was written"
    );
    assert_eq!(
        store.get(b"held").unwrap(),
        None,
        "the tag invalidation was logged"
    );
    assert_eq!(store.get(b"fresh").unwrap(), Some(b"f".to_vec()));
}

/// A handed-back entry whose record's segment was evicted meanwhile is written anew.
#[test]
fn adopting_an_evicted_record_writes_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::builder(dir.path())
        .max_bytes(64 << 10)
        .segment_size(16 << 10)
        .open()
        .unwrap();
    let at = store
        .insert_owned(b"old", b"value", &InsertOptions::new())
        .unwrap();
    for i in 0..200 {
        store
            .insert(format!("filler{i}").as_bytes(), &[0; 1000])
            .unwrap();
    }
    store
        .adopt(b"old", b"value", &InsertOptions::new(), Some(at))
        .unwrap();
    assert_eq!(store.get(b"old").unwrap(), Some(b"value".to_vec()));
}
