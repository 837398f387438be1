//! Model-based tests of the disk tier over a fault-injecting disk: random operations, injected
//! write and sync failures, and crashes, checked against what the crash guarantee promises.
//!
//! The model keeps, per key, the states an in-process read may return (`live`) and the states
//! the key may come back as after a crash (`after_crash`). A successful durable operation
//! narrows `after_crash` to its result; a non-durable one adds its result; a failure adds both
//! outcomes and makes every key "unclean" (a failed write may drop recently buffered records).
//!
//! Time is a `MockClock` that the steps advance: a state whose TTL ran out reads as absent,
//! before a crash and after.

use std::time::Duration;

use proptest::prelude::*;

use crate::MockClock;
use crate::disk::builder::{DiskBuilder, SyncPolicy};
use crate::disk::faulty::{Faults, FaultyDisk};
use crate::disk::store::DiskStore;
use crate::options::InsertOptions;

const KEYS: u8 = 12;
const TAGS: u8 = 3;
/// The store reads time as the wall time at which it was opened plus the clock: each reopen
/// adds the real time since the first open, so the store may see a deadline as passed up to
/// this many seconds before the model does.
const REOPEN_SLACK: u64 = 2;

#[derive(Debug, Clone)]
enum Step {
    Insert {
        key: u8,
        len: usize,
        tag: Option<u8>,
        /// Seconds.
        ttl: Option<u8>,
    },
    /// Seconds.
    Advance(u8),
    Remove(u8),
    InvalidateTag(u8),
    InvalidateAll,
    Flush,
    Crash,
    Get(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let len = prop_oneof![
        4 => Just(1usize), 8 => 2usize..200, 3 => 200usize..6000, 1 => Just(60_000usize)
    ];
    prop_oneof![
        10 => (0..KEYS, len, proptest::option::of(0..TAGS), proptest::option::of(1..30_u8))
            .prop_map(|(key, len, tag, ttl)| Step::Insert { key, len, tag, ttl }),
        2 => (1..10_u8).prop_map(Step::Advance),
        3 => (0..KEYS).prop_map(Step::Remove),
        1 => (0..TAGS).prop_map(Step::InvalidateTag),
        1 => Just(Step::InvalidateAll),
        1 => Just(Step::Flush),
        2 => Just(Step::Crash),
        6 => (0..KEYS).prop_map(Step::Get),
    ]
}

/// A key's state: absent, or a value, the tag it was written with and its deadline (seconds
/// on the model's clock).
type State = Option<(Vec<u8>, Option<u8>, Option<u64>)>;

#[derive(Debug, Clone)]
struct KeyModel {
    live: Vec<State>,
    after_crash: Vec<State>,
    /// The key's last operation succeeded and no operation failed since.
    clean: bool,
}

impl KeyModel {
    fn new() -> Self {
        Self {
            live: vec![None],
            after_crash: vec![None],
            clean: true,
        }
    }

    fn succeeded(&mut self, state: State, durable: bool) {
        self.live = vec![state.clone()];
        if durable {
            self.after_crash = vec![state];
        } else {
            self.after_crash.push(state);
        }
        self.clean = true;
    }

    fn failed(&mut self, state: State) {
        self.live.push(state.clone());
        self.after_crash.push(state);
    }

    /// The state among `states` that a read of `value` at `now` matches: its value while its
    /// deadline is ahead, nothing once it has passed, either near it (`REOPEN_SLACK`).
    fn allows(states: &[State], value: &Option<Vec<u8>>, now: u64) -> Option<State> {
        states
            .iter()
            .find(|s| match s {
                None => value.is_none(),
                Some((v, _, deadline)) => {
                    let reads_absent = deadline.is_some_and(|d| d <= now + REOPEN_SLACK);
                    let reads_value = deadline.is_none_or(|d| d > now);
                    (reads_value && value.as_ref() == Some(v)) || (reads_absent && value.is_none())
                }
            })
            .cloned()
    }
}

fn untag(states: &[State], tag: u8) -> Vec<State> {
    states
        .iter()
        .map(|s| match s {
            Some((_, Some(t), _)) if *t == tag => None,
            other => other.clone(),
        })
        .collect()
}

struct Run {
    disk: FaultyDisk,
    builder: DiskBuilder,
    store: DiskStore,
    keys: Vec<KeyModel>,
    durable_puts: bool,
    durable_invalidation: bool,
    /// A store small enough to evict: any read may also find nothing.
    evicting: bool,
    /// Evictions by the store incarnations before the current one.
    evictions: u64,
    clock: MockClock,
    /// The clock's reading, in seconds.
    now: u64,
}

impl Run {
    fn new(
        disk: FaultyDisk,
        builder: DiskBuilder,
        durable_puts: bool,
        durable_invalidation: bool,
        evicting: bool,
    ) -> Self {
        let clock = MockClock::new();
        let builder = builder.clock(clock.clone());
        let store = Self::open(&disk, &builder);
        Self {
            disk,
            builder,
            store,
            keys: vec![KeyModel::new(); KEYS as usize],
            durable_puts,
            durable_invalidation,
            evicting,
            evictions: 0,
            clock,
            now: 0,
        }
    }

    fn open(disk: &FaultyDisk, builder: &DiskBuilder) -> DiskStore {
        // Opening writes a segment header, which may itself fail: retry like a supervisor.
        for _ in 0..50 {
            if let Ok(store) = builder.clone().open_on(disk.storage()) {
                return store;
            }
        }
        panic!("the store did not open in 50 attempts");
    }

    fn key(k: u8) -> Vec<u8> {
        format!("key-{k}").into_bytes()
    }

    fn fail_all(&mut self) {
        for m in &mut self.keys {
            m.clean = false;
            m.live.push(None);
        }
    }

    fn check_read(&self, k: u8, states: &[State], when: &str) -> Result<State, TestCaseError> {
        let got = self
            .store
            .get(&Self::key(k))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        if got.is_none() && self.evicting {
            return Ok(None);
        }
        KeyModel::allows(states, &got, self.now).ok_or_else(|| {
            TestCaseError::fail(format!(
                "{when}: key {k} read {:?}, allowed {:?}",
                got.as_ref()
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(12)]).into_owned()),
                states
                    .iter()
                    .map(|s| s.as_ref().map(|(v, t, d)| (
                        String::from_utf8_lossy(&v[..v.len().min(12)]).into_owned(),
                        *t,
                        *d
                    )))
                    .collect::<Vec<_>>()
            ))
        })
    }

    fn step(&mut self, i: usize, step: &Step) -> Result<(), TestCaseError> {
        match *step {
            Step::Insert { key, len, tag, ttl } => {
                let stamp = format!("{key}:{i}:");
                let len = if self.evicting {
                    (len * 4).min(30_000)
                } else {
                    len
                };
                let value: Vec<u8> = stamp.bytes().cycle().take(len.max(stamp.len())).collect();
                let mut options = InsertOptions::new();
                if let Some(ttl) = ttl {
                    options = options.ttl(Duration::from_secs(ttl.into()));
                }
                if let Some(t) = tag {
                    options = options.tag(format!("tag-{t}"));
                }
                let deadline = ttl.map(|ttl| self.now + u64::from(ttl));
                let state = Some((value.clone(), tag, deadline));
                match self.store.insert_with(&Self::key(key), &value, &options) {
                    Ok(()) => self.keys[key as usize].succeeded(state, self.durable_puts),
                    Err(_) => {
                        self.fail_all();
                        self.keys[key as usize].failed(state);
                    }
                }
            }
            Step::Remove(key) => match self.store.remove(&Self::key(key)) {
                Ok(_) => self.keys[key as usize].succeeded(None, self.durable_invalidation),
                Err(_) => {
                    self.fail_all();
                    self.keys[key as usize].failed(None);
                }
            },
            Step::InvalidateTag(t) => {
                let ok = self.store.invalidate_tag(&format!("tag-{t}")).is_ok();
                if !ok {
                    self.fail_all();
                }
                for m in &mut self.keys {
                    let live = untag(&m.live, t);
                    let after = untag(&m.after_crash, t);
                    if ok {
                        m.live = live;
                        if self.durable_invalidation {
                            m.after_crash = after;
                        } else {
                            m.after_crash.extend(after);
                        }
                    } else {
                        m.live.extend(live);
                        m.after_crash.extend(after);
                    }
                }
            }
            Step::InvalidateAll => match self.store.invalidate_all() {
                Ok(()) => {
                    for m in &mut self.keys {
                        m.succeeded(None, self.durable_invalidation);
                        m.clean = m.clean && self.durable_invalidation;
                    }
                }
                Err(_) => {
                    self.fail_all();
                    for m in &mut self.keys {
                        m.failed(None);
                    }
                }
            },
            Step::Flush => match self.store.flush() {
                Ok(()) => {
                    for m in &mut self.keys {
                        if m.clean {
                            m.after_crash = m.live.clone();
                        } else {
                            m.after_crash.extend(m.live.iter().cloned());
                        }
                    }
                }
                Err(_) => self.fail_all(),
            },
            Step::Advance(secs) => {
                self.clock.advance(Duration::from_secs(secs.into()));
                self.now += u64::from(secs);
            }
            Step::Get(key) => {
                self.check_read(
                    key,
                    &self.keys[key as usize].live.clone(),
                    &format!("step {i}"),
                )?;
            }
            Step::Crash => {
                self.evictions += self.store.stats().evictions;
                let survivor = self.disk.crash();
                self.disk = survivor;
                self.store = Self::open(&self.disk, &self.builder);
                for k in 0..KEYS {
                    let allowed = self.keys[k as usize].after_crash.clone();
                    let state =
                        self.check_read(k, &allowed, &format!("after crash at step {i}"))?;
                    self.keys[k as usize] = KeyModel {
                        live: vec![state.clone()],
                        after_crash: vec![state],
                        clean: true,
                    };
                }
            }
        }
        Ok(())
    }
}

fn run(
    seed: u64,
    faults: Faults,
    (sync, durable_invalidation): (SyncPolicy, bool),
    evicting: bool,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let disk = FaultyDisk::new(seed, faults);
    let builder = DiskStore::builder("unused")
        .max_bytes(if evicting { 64 << 10 } else { 256 << 20 })
        .max_value_size(64 << 10)
        .segment_size(if evicting { 4 << 10 } else { 16 << 10 })
        .sync(sync)
        .durable_invalidation(durable_invalidation);
    let always = sync == SyncPolicy::Always;
    let mut run = Run::new(
        disk,
        builder,
        always,
        durable_invalidation || always,
        evicting,
    );
    for (i, step) in steps.iter().enumerate() {
        run.step(i, step)?;
    }
    // End with a crash: whatever the run did, what comes back is allowed.
    run.step(steps.len(), &Step::Crash)?;
    if !evicting {
        prop_assert_eq!(run.evictions, 0, "the model assumes no eviction");
    }
    // The bound's slack: the active segment, which may hold one record larger than a segment.
    prop_assert!(run.store.disk_bytes() <= run.store.max_bytes() + (16 << 10) + (64 << 10));
    Ok(())
}

fn policy() -> impl Strategy<Value = (SyncPolicy, bool)> {
    prop_oneof![
        Just((SyncPolicy::Always, true)),
        Just((SyncPolicy::Never, true)),
        Just((SyncPolicy::Never, false)),
    ]
}

fn faults() -> impl Strategy<Value = Faults> {
    prop_oneof![
        Just(Faults::default()),
        Just(Faults {
            write: 0.05,
            sync: 0.0
        }),
        Just(Faults {
            write: 0.0,
            sync: 0.1
        }),
        Just(Faults {
            write: 0.05,
            sync: 0.05
        }),
    ]
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=20000 for a long run.
    #[test]
    fn crash_guarantee_holds_under_faults(
        seed in any::<u64>(),
        faults in faults(),
        policy in policy(),
        evicting in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        run(seed, faults, policy, evicting, &steps)?;
    }
}

/// Without faults and with every write synced, a crash loses nothing at all.
#[test]
fn with_always_sync_and_no_faults_a_crash_loses_nothing() {
    let steps: Vec<Step> = (0..200u32)
        .map(|i| match i % 7 {
            0 => Step::Remove((i % 12) as u8),
            3 => Step::Crash,
            _ => Step::Insert {
                key: (i % 12) as u8,
                len: (i as usize * 37) % 3000,
                tag: Some((i % 3) as u8),
                ttl: (i % 2 == 0).then_some(200),
            },
        })
        .collect();
    let disk = FaultyDisk::new(7, Faults::default());
    let builder = DiskStore::builder("unused")
        .max_bytes(256 << 20)
        .segment_size(8 << 10)
        .sync(SyncPolicy::Always);
    let mut run = Run::new(disk, builder, true, true, false);
    for (i, step) in steps.iter().enumerate() {
        run.step(i, step).unwrap();
        for m in &run.keys {
            assert_eq!(m.after_crash.len(), 1, "no ambiguity without faults");
        }
    }
    assert_eq!(run.disk.injected(), 0);
}
