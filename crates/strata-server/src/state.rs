//! What all connections share: the keyspace, the settings that `CONFIG SET` can change,
//! the client list and the counters behind `INFO` and `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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

    pub(crate) fn record(&self, command: usize, took: Duration) {
        let us = took.as_micros() as u64;
        self.commands_processed.fetch_add(1, Ordering::Relaxed);
        if let Some(stat) = self.per_command.get(command) {
            stat.calls.fetch_add(1, Ordering::Relaxed);
            stat.usec.fetch_add(us, Ordering::Relaxed);
        }
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
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

/// One connected client, as `CLIENT LIST` shows it.
#[derive(Debug, Clone)]
pub(crate) struct ClientInfo {
    pub(crate) addr: SocketAddr,
    pub(crate) name: Option<String>,
    pub(crate) connected: Instant,
    pub(crate) last_command: String,
}

pub(crate) struct Shared {
    pub(crate) keyspace: Keyspace,
    pub(crate) config: Config,
    pub(crate) runtime: RwLock<Runtime>,
    pub(crate) stats: ServerStats,
    pub(crate) clients: Mutex<BTreeMap<u64, ClientInfo>>,
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
