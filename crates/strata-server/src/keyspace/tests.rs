use std::collections::HashMap;

use strata::Tag;

use super::*;

const MAXMEMORY: u64 = 48 << 10;

fn open(dir: &std::path::Path, max_disk: u64) -> Keyspace {
    open_with(dir, max_disk, None)
}

/// A keyspace that writes behind, with a pass at every `maintain`.
fn open_behind(dir: &std::path::Path, max_disk: u64) -> Keyspace {
    let behind = WriteBehind {
        every: Duration::ZERO,
        sync: true,
    };
    open_with(dir, max_disk, Some(behind))
}

fn open_with(dir: &std::path::Path, max_disk: u64, behind: Option<WriteBehind>) -> Keyspace {
    let disk = DiskStore::builder(dir)
        .max_bytes(max_disk)
        .segment_size((max_disk / 8).min(8 << 20))
        .sync(strata::SyncPolicy::Never)
        .open()
        .expect("open the disk tier");
    Keyspace::new(MAXMEMORY, Some(disk), behind).expect("keyspace")
}

fn disk_inserts(ks: &Keyspace) -> u64 {
    ks.disk().expect("disk").stats().inserts
}

/// xorshift, so the test needs no dependency for its randomness.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Threads write, read, delete and tag-invalidate their own keys while each other's
/// inserts keep a tiny memory tier evicting, so keys move between memory and disk all the
/// time. Every read sees the thread's last write with its expiry (or, if `lossy`,
/// nothing: the disk tier may have evicted it). Some writes expire in an hour, which
/// their moves must keep; some expired already, which none may bring back. Returns the
/// live keys' values.
fn churn(ks: &Keyspace, lossy: bool) -> HashMap<Bytes, Vec<u8>> {
    const THREADS: u64 = 4;
    const KEYS: u64 = 400;
    let worker = |t: u64| {
        // Value, tagged, expiry.
        let mut model: HashMap<Bytes, (Vec<u8>, bool, Option<u64>)> = HashMap::new();
        let mut rng = 0x9E37_79B9_7F4A_7C15 ^ (t + 1);
        for step in 0..20_000u64 {
            let key = Bytes::from(format!("t{t}:k{}", next(&mut rng) % KEYS));
            match next(&mut rng) % 100 {
                0..5 => {
                    // A read-modify-write, as APPEND does: the entry read back carries
                    // its record's place, its tags and its expiry.
                    let guard = ks.lock(&key);
                    let old = guard.get();
                    let seen = old.as_ref().map(|e| (e.value.to_vec(), e.expires_at()));
                    let known = model.remove(&key);
                    let want = known.as_ref().map(|(v, _, expiry)| (v.clone(), *expiry));
                    if !lossy || seen.is_some() {
                        assert_eq!(seen, want, "APPEND {key:?} read at step {step}");
                    }
                    // What is written is what was read, plus "+": in a lossy run the key
                    // may be gone, and it starts over untagged.
                    let tagged = seen.is_some() && known.is_some_and(|(_, tagged, _)| tagged);
                    let entry = match old {
                        Some(old) => {
                            let value = [&old.value[..], b"+"].concat();
                            old.with_value(&value)
                        }
                        None => Entry::new(b"+"),
                    };
                    let (value, expiry) = (entry.value.to_vec(), entry.expires_at());
                    guard.set(entry).expect("append");
                    drop(guard);
                    model.insert(key, (value, tagged, expiry));
                }
                5..50 => {
                    let value = format!("{t}-{step}").into_bytes();
                    let r = next(&mut rng);
                    let tagged = r.is_multiple_of(4);
                    let mut entry = Entry::new(&value);
                    if tagged {
                        entry = entry.with_tags(vec![Tag::from(format!("t{t}"))]);
                    }
                    let expiry = match (r >> 8) % 8 {
                        0 => Some(now_ms() + 3_600_000),
                        1 => Some(now_ms() - 1_000),
                        _ => None,
                    };
                    ks.lock(&key).set(entry.with_expiry(expiry)).expect("set");
                    if expiry.is_some_and(|at| at <= now_ms()) {
                        model.remove(&key);
                    } else {
                        model.insert(key, (value, tagged, expiry));
                    }
                }
                50..85 => {
                    let got = ks.peek(&key).map(|e| (e.value.to_vec(), e.expires_at()));
                    let want = model.get(&key).map(|(v, _, expiry)| (v.clone(), *expiry));
                    if !lossy || got.is_some() {
                        assert_eq!(got, want, "GET {key:?} at step {step}");
                    }
                }
                85..99 => {
                    let existed = ks.lock(&key).remove().expect("remove");
                    let want = model.remove(&key).is_some();
                    if !lossy || existed {
                        assert_eq!(existed, want, "DEL {key:?} at step {step}");
                    }
                }
                _ => {
                    ks.invalidate_tag(&format!("t{t}")).expect("invalidate");
                    model.retain(|_, (_, tagged, _)| !*tagged);
                }
            }
        }
        model
            .into_iter()
            .map(|(k, (v, _, _))| (k, v))
            .collect::<Vec<_>>()
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| scope.spawn(move || worker(t)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

#[test]
fn keys_moving_between_memory_and_disk_never_go_stale_or_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = open(dir.path(), 256 << 20);
    let model = churn(&ks, false);
    assert!(
        ks.memory().len() < model.len() && ks.disk().map_or(0, DiskStore::len) > 0,
        "the test must make memory spill to disk"
    );
    assert_eq!(ks.len(), model.len(), "each key is counted once");
    let mut keys = ks.keys();
    keys.sort();
    let mut want: Vec<Bytes> = model.keys().cloned().collect();
    want.sort();
    assert_eq!(keys, want);

    // A clean shutdown keeps every key.
    ks.flush().expect("shutdown flush");
    drop(ks);
    let ks = open(dir.path(), 256 << 20);
    assert_eq!(ks.len(), model.len(), "after a restart");
    for (key, value) in &model {
        assert_eq!(ks.peek(key).map(|e| e.value.to_vec()), Some(value.clone()));
    }
}

/// With a disk tier far too small, segments are evicted while their keys live in memory:
/// keys may be lost, but what comes back after a restart (without the shutdown flush, as
/// after a crash) is never an older value, nor a deleted key.
#[test]
fn a_small_disk_tier_loses_keys_but_never_brings_back_old_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = open(dir.path(), 256 << 10);
    let model = churn(&ks, true);
    ks.disk().expect("disk").flush().expect("sync");
    drop(ks);
    let ks = open(dir.path(), 256 << 10);
    assert!(ks.len() > 0, "some keys survive");
    for key in ks.keys() {
        let got = ks.peek(&key).map(|e| e.value.to_vec());
        assert_eq!(got.as_ref(), model.get(&key), "{key:?} after a restart");
    }
}

/// An entry evicted, written again and evicted again before its stripe drained has two
/// handoffs: only the last may reach the disk, or the log would end with the old value.
#[test]
fn only_a_keys_last_handoff_reaches_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = open(dir.path(), 256 << 20);
    let key = Bytes::from_static(b"k");
    ks.lock(&key).set(Entry::new(b"new")).expect("set");
    let new = ks.memory().remove(&b"k"[..]).expect("in memory");
    // The old value's record is gone (no `record`): handing it off would write it anew.
    ks.handoffs
        .push(&CompactBytes::new(b"k"), &Entry::new(b"old"));
    ks.handoffs.push(&CompactBytes::new(b"k"), &new);
    ks.drain_all();
    assert_eq!(
        ks.peek(&key).map(|e| e.value.to_vec()),
        Some(b"new".to_vec())
    );
    ks.disk().expect("disk").flush().expect("sync");
    drop(ks);
    let ks = open(dir.path(), 256 << 20);
    assert_eq!(
        ks.peek(&key).map(|e| e.value.to_vec()),
        Some(b"new".to_vec())
    );
}

/// Writing behind: a key set many times between two passes is written once, by the pass;
/// an entry with an expiry or tags is written at once; what a pass wrote is found after
/// a crash (no shutdown flush).
#[test]
fn writing_behind_writes_a_key_once_per_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = open_behind(dir.path(), 256 << 20);
    for i in 0..100 {
        let value = format!("v{i}");
        ks.lock(b"k")
            .set(Entry::new(value.as_bytes()))
            .expect("set");
    }
    assert_eq!(disk_inserts(&ks), 0, "nothing written before the pass");
    assert_eq!(
        ks.peek(b"k").map(|e| e.value.to_vec()),
        Some(b"v99".to_vec())
    );
    let before = ks.memory().stats();
    ks.maintain();
    assert_eq!(disk_inserts(&ks), 1, "one record for 100 SETs");
    assert_eq!(
        ks.memory().stats(),
        before,
        "the pass is neither an access nor a write of the memory tier"
    );
    ks.maintain();
    assert_eq!(disk_inserts(&ks), 1, "nothing left to write");

    let tagged = Entry::new(b"t").with_tags(vec![Tag::from("tag")]);
    ks.lock(b"tagged").set(tagged).expect("set");
    let expiring = Entry::new(b"e").with_expiry(Some(now_ms() + 600_000));
    ks.lock(b"expiring").set(expiring).expect("set");
    assert_eq!(disk_inserts(&ks), 3, "written through");

    // A read-modify-write (APPEND, INCR) sets an entry read back from memory, which
    // carries the place of the record it was read with: that record holds the old value.
    let guard = ks.lock(b"k");
    let read = guard.get().expect("k");
    guard.set(read.with_value(b"last")).expect("set");
    drop(guard);
    ks.maintain();
    drop(ks); // a crash: no shutdown flush
    let ks = open(dir.path(), 256 << 20);
    for (key, value) in [
        (&b"k"[..], &b"last"[..]),
        (b"tagged", b"t"),
        (b"expiring", b"e"),
    ] {
        assert_eq!(ks.peek(key).map(|e| e.value.to_vec()), Some(value.to_vec()));
    }
}

/// The churn of the test above with writing behind and passes running alongside: reads
/// stay exact, and after a last pass and a crash (no shutdown flush) every key comes back
/// with its last value. So every entry memory holds unwritten was on a stripe's list (or
/// was written by its handoff), and no pass wrote an outdated value.
#[test]
fn writing_behind_loses_nothing_a_pass_has_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = open_behind(dir.path(), 256 << 20);
    /// Stops the passes when the churn ends, also by a failed assertion (else the scope
    /// would wait for them forever).
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let done = AtomicBool::new(false);
    let model = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                ks.maintain();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let _done = Done(&done);
        churn(&ks, false)
    });
    assert_eq!(ks.len(), model.len(), "each key is counted once");
    ks.maintain();
    drop(ks);
    let ks = open(dir.path(), 256 << 20);
    assert_eq!(ks.len(), model.len(), "after a crash");
    for (key, value) in &model {
        assert_eq!(ks.peek(key).map(|e| e.value.to_vec()), Some(value.clone()));
    }
}

#[test]
fn an_entry_takes_40_bytes() {
    assert_eq!(std::mem::size_of::<Entry>(), 40);
}
