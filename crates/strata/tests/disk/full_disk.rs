//! A real full file system: a 4 MiB tmpfs mounted for the test (needs root, as in CI; where
//! mounting is not allowed the test says so and passes, unless `CI` is set).

use std::path::{Path, PathBuf};
use std::process::Command;

use strata::{DiskStore, Error, SyncPolicy};

use crate::value_for;

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Self(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_typed_error_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(dir.path(), "4m") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run as root)"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let data = dir.path().join("store");
    let open = || {
        // A bound larger than the device: the device fills first.
        DiskStore::builder(&data)
            .max_bytes(64 << 20)
            .segment_size(512 << 10)
            .sync(SyncPolicy::Always)
            .open()
            .unwrap()
    };
    let store = open();
    let mut acknowledged = 0u64;
    let full = loop {
        let key = format!("k{acknowledged}");
        match store.insert(
            key.as_bytes(),
            &value_for(key.as_bytes(), acknowledged, 2000),
        ) {
            Ok(()) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 10_000, "the 4 MiB device never filled up");
    };
    assert!(matches!(full, Error::DiskFull { .. }), "{full:?}");
    assert!(store.stats().write_errors > 0);
    // Everything acknowledged is readable, and the store still serves reads.
    for i in 0..acknowledged {
        let key = format!("k{i}");
        assert_eq!(
            store.get(key.as_bytes()).unwrap(),
            Some(value_for(key.as_bytes(), i, 2000)),
            "k{i}"
        );
    }
    // Freeing space makes writes work again.
    store.invalidate_all().unwrap();
    store.insert(b"after", b"space freed").unwrap();
    drop(store);
    let store = open();
    assert_eq!(store.get(b"after").unwrap(), Some(b"space freed".to_vec()));
    assert_eq!(store.get(b"k0").unwrap(), None);
}

#[test]
fn acknowledged_writes_survive_a_reopen_after_the_disk_filled() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(dir.path(), "2m") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run as root)"
        );
        return;
    };
    let data = dir.path().join("store");
    let open = || {
        DiskStore::builder(&data)
            .max_bytes(64 << 20)
            .segment_size(256 << 10)
            .sync(SyncPolicy::Always)
            .open()
    };
    let store = open().unwrap();
    let mut acknowledged = 0u64;
    while store
        .insert(format!("k{acknowledged}").as_bytes(), &[7; 3000])
        .is_ok()
    {
        acknowledged += 1;
    }
    drop(store);
    // Reopening a full device may itself fail to create a segment: a clear error, not a panic.
    match open() {
        Ok(store) => {
            for i in 0..acknowledged {
                assert_eq!(
                    store.get(format!("k{i}").as_bytes()).unwrap(),
                    Some(vec![7; 3000])
                );
            }
        }
        Err(e) => assert!(matches!(e, Error::DiskFull { .. }), "{e:?}"),
    }
}
