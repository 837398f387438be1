//! kill -9: a child process writes, overwrites, removes and invalidates continuously; the
//! parent kills it at a random moment, reopens the store and checks the crash guarantee.
//!
//! The child logs each operation before starting it (`B`) and after it returns (`A`), with
//! `write(2)`s that survive the kill. Records reach the files in operation order, so what a
//! crash leaves is the state after some prefix of the operations; the prefix must include
//! every operation acknowledged as durable (under `Always` every write; under the default
//! interval policy every removal and invalidation, which sync before they return).
//!
//! `STRATA_CRASH_CYCLES` (default 50) sets the number of kills.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::{DiskStore, InsertOptions, SyncPolicy};

const KEYS: u32 = 64;
const TAGS: u32 = 4;

fn open(dir: &Path, sync: SyncPolicy) -> DiskStore {
    DiskStore::builder(dir)
        .max_bytes(1 << 30)
        .segment_size(1 << 20)
        .sync(sync)
        .open()
        .expect("open")
}

fn policy(name: &str) -> SyncPolicy {
    match name {
        "always" => SyncPolicy::Always,
        _ => SyncPolicy::Interval(Duration::from_millis(20)),
    }
}

/// What one operation does, as logged by the child.
#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u32,
        value: Vec<u8>,
        tag: Option<u32>,
    },
    Remove {
        key: u32,
    },
    InvalidateTag {
        tag: u32,
    },
}

fn value(cycle: u64, seq: u64, key: u32, tag: Option<u32>, len: usize) -> Vec<u8> {
    let stamp = format!("{cycle}:{seq}:{key}:{}:", tag.map_or(-1, i64::from));
    stamp.bytes().cycle().take(len.max(stamp.len())).collect()
}

/// The tag a value was written with (see [`value`]).
fn tag_of(value: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(&value[..value.len().min(64)]).into_owned();
    text.split(':').nth(3)?.parse().ok()
}

/// The child: runs until killed. Not a test on its own (ignored); the parent runs it.
#[test]
#[ignore = "run by kill_9_at_random_moments_never_breaks_the_crash_guarantee"]
fn crash_child() {
    let Ok(dir) = std::env::var("STRATA_CRASH_DIR") else {
        return;
    };
    let log_path = std::env::var("STRATA_CRASH_LOG").expect("log path");
    let cycle: u64 = std::env::var("STRATA_CRASH_CYCLE")
        .expect("cycle")
        .parse()
        .expect("cycle");
    let sync = policy(&std::env::var("STRATA_CRASH_SYNC").expect("sync"));
    let store = open(Path::new(&dir), sync);
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path)
        .expect("log");
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let mut rng = StdRng::seed_from_u64(cycle);
    for seq in 0.. {
        let key = rng.random_range(0..KEYS);
        let roll = rng.random_range(0..100);
        let line = if roll < 70 {
            let tag = (roll % 2 == 0).then_some(key % TAGS);
            let len = if roll == 0 {
                300_000
            } else {
                rng.random_range(1..3000)
            };
            let v = value(cycle, seq, key, tag, len);
            writeln!(log, "B {seq} put {key} {len} {}", tag.map_or(-1, i64::from)).expect("log");
            let mut opts = InsertOptions::new();
            if let Some(t) = tag {
                opts = opts.tag(format!("t{t}"));
            }
            store
                .insert_with(format!("k{key}").as_bytes(), &v, &opts)
                .expect("insert");
            format!("A {seq}")
        } else if roll < 95 {
            writeln!(log, "B {seq} remove {key}").expect("log");
            let removed = store.remove(format!("k{key}").as_bytes()).expect("remove");
            // Removing an absent key writes (and syncs) nothing: not a durability point.
            format!("A {seq} {}", if removed { "removed" } else { "absent" })
        } else {
            let tag = key % TAGS;
            writeln!(log, "B {seq} tag {tag}").expect("log");
            store
                .invalidate_tag(&format!("t{tag}"))
                .expect("invalidate");
            format!("A {seq}")
        };
        writeln!(log, "{line}").expect("log");
    }
}

/// Parses the child's log: the operations begun, in order, and which were acknowledged
/// (with whether they wrote anything).
fn read_log(path: &Path, cycle: u64) -> (Vec<Op>, Vec<Ack>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ops = Vec::new();
    let mut acked = Vec::new();
    for line in text.lines() {
        // The last line may be cut by the kill: it parses as nothing and is skipped (its
        // operation had not started: the child starts an operation after logging it).
        let parts: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
        let op = match parts.get(..3) {
            Some(["B", _, "put"]) => (|| {
                let (seq, key, len) = (num(1)?, u32::try_from(num(3)?).ok()?, num(4)?);
                let tag = parts
                    .get(5)?
                    .parse::<i64>()
                    .ok()
                    .map(|t| u32::try_from(t).ok());
                let tag = tag?;
                Some(Op::Put {
                    key,
                    value: value(cycle, seq, key, tag, len as usize),
                    tag,
                })
            })(),
            Some(["B", _, "remove"]) => num(3).map(|k| Op::Remove { key: k as u32 }),
            Some(["B", _, "tag"]) => num(3).map(|t| Op::InvalidateTag { tag: t as u32 }),
            _ => None,
        };
        if let Some(op) = op {
            ops.push(op);
            acked.push(Ack::Pending);
            continue;
        }
        if let (Some(&"A"), Some(ack)) = (
            parts.first(),
            num(1).and_then(|seq| acked.get_mut(seq as usize)),
        ) {
            *ack = if parts.get(2) == Some(&"absent") {
                Ack::NoOp
            } else {
                Ack::Wrote
            };
        }
    }
    (ops, acked)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// Begun, not acknowledged (the kill came first).
    Pending,
    /// Acknowledged; wrote a record.
    Wrote,
    /// Acknowledged; wrote nothing (a removal of an absent key).
    NoOp,
}

type State = HashMap<u32, (Vec<u8>, Option<u32>)>;

fn apply(state: &mut State, op: &Op) {
    match op {
        Op::Put { key, value, tag } => {
            state.insert(*key, (value.clone(), *tag));
        }
        Op::Remove { key } => {
            state.remove(key);
        }
        Op::InvalidateTag { tag } => state.retain(|_, (_, t)| *t != Some(*tag)),
    }
}

#[test]
fn kill_9_at_random_moments_never_breaks_the_crash_guarantee() {
    let cycles: u64 = std::env::var("STRATA_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut state: State = HashMap::new();
    let mut ops_total = 0;
    for cycle in 0..cycles {
        let sync = if cycle % 2 == 0 { "always" } else { "interval" };
        let log = dir.path().join(format!("log{cycle}"));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("STRATA_CRASH_DIR", &data)
            .env("STRATA_CRASH_LOG", &log)
            .env("STRATA_CRASH_CYCLE", cycle.to_string())
            .env("STRATA_CRASH_SYNC", sync)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has opened the store (recovery included), then let it run.
        let mut ready = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while !ready.contains("ready") {
            ready.clear();
            assert!(
                out.read_line(&mut ready).unwrap() > 0,
                "cycle {cycle}: the child died before it was ready"
            );
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(1..60)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let (ops, acked) = read_log(&log, cycle);
        ops_total += ops.len();
        // Every acknowledged durable operation made it: the prefix starts after the last one.
        let durable = |i: usize| {
            acked[i] == Ack::Wrote && (sync == "always" || !matches!(ops[i], Op::Put { .. }))
        };
        let min_prefix = (0..ops.len())
            .rev()
            .find(|&i| durable(i))
            .map_or(0, |i| i + 1);

        let store = open(&data, SyncPolicy::Always);
        let mut recovered = HashMap::new();
        for key in 0..KEYS {
            if let Some(v) = store.get(format!("k{key}").as_bytes()).unwrap() {
                recovered.insert(key, v);
            }
        }
        let mut candidate = state.clone();
        for op in &ops[..min_prefix] {
            apply(&mut candidate, op);
        }
        let matches = |s: &State| {
            s.len() == recovered.len() && s.iter().all(|(k, (v, _))| recovered.get(k) == Some(v))
        };
        let mut found = matches(&candidate).then_some(min_prefix);
        for (i, op) in ops.iter().enumerate().skip(min_prefix) {
            if found.is_some() {
                break;
            }
            apply(&mut candidate, op);
            if matches(&candidate) {
                found = Some(i + 1);
            }
        }
        let Some(_prefix) = found else {
            panic!(
                "cycle {cycle} ({sync}): the recovered state is not the state after any prefix of \
                 the {} operations with all {min_prefix} durable ones; recovered keys {:?}",
                ops.len(),
                recovered.keys().collect::<Vec<_>>()
            );
        };
        state = recovered
            .into_iter()
            .map(|(k, v)| {
                let tag = tag_of(&v);
                (k, (v, tag))
            })
            .collect();
        // Now and then, start over from an empty store, so the data stays small.
        if cycle % 10 == 9 {
            store.invalidate_all().unwrap();
            state.clear();
        }
    }
    assert!(
        ops_total > cycles as usize,
        "the children did almost nothing: {ops_total} operations"
    );
}
