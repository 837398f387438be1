//! Damaged files: flipped bytes read as misses (counted), never as wrong values.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::DiskStore;

use crate::value_for;

const KEYS: u64 = 3000;

fn len_of(i: u64) -> usize {
    match i % 10 {
        0 => 20_000,
        1..=3 => 1,
        _ => 40 + (i as usize * 7) % 600,
    }
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn flipped_bytes_read_as_misses_never_as_wrong_values() {
    let mut total_damage_seen = 0;
    for round in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            DiskStore::builder(dir.path())
                .max_bytes(256 << 20)
                .segment_size(1 << 20)
                .open()
                .unwrap()
        };
        {
            let store = open();
            for i in 0..KEYS {
                let key = format!("k{i}");
                store
                    .insert(key.as_bytes(), &value_for(key.as_bytes(), i, len_of(i)))
                    .unwrap();
            }
        }
        let mut rng = StdRng::seed_from_u64(round);
        let files = segment_files(dir.path());
        let flips = [1, 10, 100, 1000][round as usize % 4];
        for _ in 0..flips {
            let file = &files[rng.random_range(0..files.len())];
            let mut bytes = std::fs::read(file).unwrap();
            // Some rounds aim at the first bytes: segment and record headers.
            let span = if round % 3 == 0 {
                256.min(bytes.len())
            } else {
                bytes.len()
            };
            let at = rng.random_range(0..span);
            bytes[at] ^= rng.random_range(1..=255u8);
            std::fs::write(file, bytes).unwrap();
        }

        let store = open();
        let mut misses = 0;
        for i in 0..KEYS {
            let key = format!("k{i}");
            match store.get(key.as_bytes()).unwrap() {
                Some(v) => assert_eq!(
                    v,
                    value_for(key.as_bytes(), i, len_of(i)),
                    "round {round} key {i}"
                ),
                None => misses += 1,
            }
        }
        let stats = store.stats();
        let damage_seen = stats.corrupt_reads + stats.recovery_skipped_bytes;
        assert!(
            misses > 0 || damage_seen == 0 || round % 3 == 0,
            "round {round}: {stats:?}"
        );
        total_damage_seen += damage_seen;
        // The damaged store keeps working.
        store.insert(b"new", b"value").unwrap();
        assert_eq!(store.get(b"new").unwrap(), Some(b"value".to_vec()));
    }
    assert!(total_damage_seen > 0, "the damage was never detected");
}
