//! What all connections share: the keyspace, the settings that `CONFIG SET` can change,
//! the client list and the counters behind `INFO` and `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::commands::COMMANDS;
use crate::config::Config;
use crate::keyspace::Keyspace;

/// Settings `CONFIG SET` may change while the server runs.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    pub(crate) requirepass: Option<String>,
    pub(crate) maxclients: usize,
    pub(crate) max_value_size: u64,
}

/// Upper bounds (µs) of the command latency histogram's buckets; the last is +Inf.
pub(crate) const LATENCY_BUCKETS_US: [u64; 9] =
    [10, 50, 100, 250, 500, 1000, 5000, 25_000, 100_000];

/// Calls and time of one command.
#[derive(Debug, Default)]
pub(crate) struct CommandStat {
    pub(crate) calls: AtomicU64,
    pub(crate) usec: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct ServerStats {
    pub(crate) connections_received: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) connected_clients: AtomicUsize,
    pub(crate) commands_processed: AtomicU64,
    pub(crate) per_command: Vec<CommandStat>,
    /// Counts per bucket of [`LATENCY_BUCKETS_US`], plus +Inf.
    pub(crate) latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    pub(crate) latency_sum_us: AtomicU64,
}

impl ServerStats {
    fn new() -> Self {
        Self {
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            connected_clients: AtomicUsize::new(0),
            commands_processed: AtomicU64::new(0),
            per_command: COMMANDS.iter().map(|_| CommandStat::default()).collect(),
            latency_buckets: Default::default(),
            latency_sum_us: AtomicU64::new(0),
        }
    }

    /// Adds a connection's batch of counts (connections flush after each batch of commands,
    /// so the shared counters are touched once per batch, not once per command).
    pub(crate) fn absorb(&self, local: &mut LocalStats) {
        if local.commands == 0 {
            return;
        }
        self.commands_processed
            .fetch_add(local.commands, Ordering::Relaxed);
        for &command in &local.touched {
            let (calls, usec) = std::mem::take(&mut local.per_command[command]);
            let stat = &self.per_command[command];
            stat.calls.fetch_add(calls, Ordering::Relaxed);
            stat.usec.fetch_add(usec, Ordering::Relaxed);
        }
        for (shared, local) in self.latency_buckets.iter().zip(&mut local.buckets) {
            if *local > 0 {
                shared.fetch_add(std::mem::take(local), Ordering::Relaxed);
            }
        }
        self.latency_sum_us
            .fetch_add(std::mem::take(&mut local.sum_us), Ordering::Relaxed);
        local.touched.clear();
        local.commands = 0;
    }

    pub(crate) fn reset(&self) {
        for stat in &self.per_command {
            stat.calls.store(0, Ordering::Relaxed);
            stat.usec.store(0, Ordering::Relaxed);
        }
        self.commands_processed.store(0, Ordering::Relaxed);
        self.connections_received.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
    }
}

/// A connection's counts since its last [`ServerStats::absorb`].
#[derive(Debug)]
pub(crate) struct LocalStats {
    commands: u64,
    /// (calls, µs) per command.
    per_command: Vec<(u64, u64)>,
    touched: Vec<usize>,
    buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: u64,
    /// Commands of the batch being run.
    batch: Vec<usize>,
}

impl Default for LocalStats {
    fn default() -> Self {
        Self {
            commands: 0,
            per_command: vec![(0, 0); COMMANDS.len()],
            touched: Vec::new(),
            buckets: [0; LATENCY_BUCKETS_US.len() + 1],
            sum_us: 0,
            batch: Vec::new(),
        }
    }
}

impl LocalStats {
    /// Counts a command of the current batch; [`finish_batch`](Self::finish_batch) charges
    /// it its share of the batch's time. (One clock reading per batch, not two per command:
    /// reading the clock was 8% of a pipelined SET.)
    pub(crate) fn count(&mut self, command: usize) {
        self.batch.push(command);
    }

    /// Charges each command of the batch the batch's mean time.
    pub(crate) fn finish_batch(&mut self, took: Duration) {
        let Ok(n) = u32::try_from(self.batch.len()) else {
            return;
        };
        if n == 0 {
            return;
        }
        let each = took / n;
        let batch = std::mem::take(&mut self.batch);
        for &command in &batch {
            self.record(command, each);
        }
        self.batch = batch;
        self.batch.clear();
    }

    fn record(&mut self, command: usize, took: Duration) {
        let us = took.as_micros() as u64;
        self.commands += 1;
        let slot = &mut self.per_command[command];
        if slot.0 == 0 {
            self.touched.push(command);
        }
        slot.0 += 1;
        slot.1 += us;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[bucket] += 1;
        self.sum_us += us;
    }
}

/// One connected client, as `CLIENT LIST` shows it.
#[derive(Debug)]
pub(crate) struct ClientInfo {
    pub(crate) addr: SocketAddr,
    pub(crate) name: Mutex<Option<String>>,
    pub(crate) connected: Instant,
    /// The table index of its last command (`usize::MAX` before the first).
    pub(crate) last_command: AtomicUsize,
}

/// This thread's stripe, for striped locks and counters.
pub(crate) fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    STRIPE.with(|s| *s)
}

/// A counter striped by thread: increments touch this thread's cache line only.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter([crossbeam_utils::CachePadded<AtomicU64>; 16]);

impl StripedCounter {
    pub(crate) fn add(&self, n: u64) {
        self.0[stripe() % 16].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

pub(crate) struct Shared {
    pub(crate) keyspace: Keyspace,
    pub(crate) config: Config,
    pub(crate) runtime: RwLock<Runtime>,
    pub(crate) stats: ServerStats,
    pub(crate) clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    pub(crate) next_client_id: AtomicU64,
    pub(crate) started: Instant,
    /// The port actually listened on (`--port 0` picks one).
    pub(crate) port: AtomicU64,
}

impl Shared {
    pub(crate) fn new(keyspace: Keyspace, config: Config) -> Self {
        Self {
            keyspace,
            runtime: RwLock::new(Runtime {
                requirepass: config.requirepass.clone(),
                maxclients: config.maxclients,
                max_value_size: config.max_value_size,
            }),
            config,
            stats: ServerStats::new(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            port: AtomicU64::new(0),
        }
    }
}

/// The process's resident memory in bytes (Linux `/proc/self/statm`), or 0 elsewhere.
pub(crate) fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
