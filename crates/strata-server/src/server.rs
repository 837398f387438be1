//! Starting, running and stopping the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata::{DiskStore, SyncPolicy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, Fsync};
use crate::keyspace::{Keyspace, WriteBehind};
use crate::state::Shared;
use crate::{client, metrics};

/// How often the keyspace's upkeep runs (Redis's default `hz` is 10).
const MAINTENANCE_EVERY: Duration = Duration::from_millis(100);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory cannot be used (locked by another server, unreadable, a newer
    /// format, …).
    #[error("cannot open the disk tier in {dir}: {source}")]
    Disk {
        /// The directory.
        dir: String,
        /// Why.
        source: strata::Error,
    },
    /// The memory tier's settings are invalid.
    #[error("invalid memory tier settings: {0}")]
    Memory(strata::Error),
    /// An address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A started server: tiers open, listeners bound, not yet accepting.
pub struct Server {
    shared: Arc<Shared>,
    listener: TcpListener,
    metrics: Option<TcpListener>,
}

impl Server {
    /// The address clients connect to (with the port chosen if `--port 0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `stop` resolves; then stops accepting, lets the clients finish
    /// the commands they sent (up to 10 s), and syncs the disk tier.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        run(self.shared, self.listener, self.metrics, stop).await;
    }
}

/// Opens the tiers and binds the listeners.
///
/// # Errors
/// A [`StartError`] if the disk tier cannot be opened or an address cannot be bound.
pub async fn start(config: Config) -> Result<Server, StartError> {
    let disk = match &config.data_dir {
        Some(dir) => {
            let sync = match config.fsync {
                Fsync::Always => SyncPolicy::Always,
                Fsync::Everysec => SyncPolicy::Interval(Duration::from_secs(1)),
                Fsync::No => SyncPolicy::Never,
            };
            let store = DiskStore::builder(dir)
                .max_bytes(config.max_disk)
                .max_value_size(config.max_value_size.min(config.max_disk / 4))
                .sync(sync)
                // Like Redis's appendfsync: removals are as durable as writes.
                .durable_invalidation(config.fsync == Fsync::Always)
                .open()
                .map_err(|source| StartError::Disk {
                    dir: dir.display().to_string(),
                    source,
                })?;
            Some(store)
        }
        None => None,
    };
    // Written behind once a second, the interval `everysec` may lose anyway (and `no` more);
    // `always` writes through.
    let write_behind = (config.fsync != Fsync::Always).then_some(WriteBehind {
        every: Duration::from_secs(1),
        sync: config.fsync == Fsync::Everysec,
    });
    let keyspace =
        Keyspace::new(config.maxmemory, disk, write_behind).map_err(StartError::Memory)?;
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let metrics = match config.metrics_bind {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?,
        ),
        None => None,
    };
    let shared = Arc::new(Shared::new(keyspace, config));
    let port = listener.local_addr().map_or(0, |a| a.port());
    shared.port.store(u64::from(port), Ordering::Relaxed);
    Ok(Server {
        shared,
        listener,
        metrics,
    })
}

/// Accepts clients until `stop` resolves, then finishes the commands in flight (up to 10 s),
/// and syncs the disk tier.
async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    stop: impl std::future::Future<Output = ()>,
) {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Some(listener) = metrics_listener {
        tokio::spawn(metrics::serve(
            shared.clone(),
            listener,
            shutdown_rx.clone(),
        ));
    }
    tokio::spawn(maintain(shared.clone(), shutdown_rx.clone()));
    let mut clients = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut stream, addr) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                shared.stats.connections_received.fetch_add(1, Ordering::Relaxed);
                let connected = shared.stats.connected_clients.fetch_add(1, Ordering::AcqRel);
                if connected >= shared.runtime.read().maxclients {
                    shared.stats.connected_clients.fetch_sub(1, Ordering::AcqRel);
                    shared.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
                    continue;
                }
                let (shared, rx) = (shared.clone(), shutdown_rx.clone());
                clients.spawn(async move {
                    client::serve(shared.clone(), stream, addr, rx).await;
                    shared.stats.connected_clients.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            () = &mut stop => break,
        }
    }
    tracing::info!("shutting down: no new connections; finishing commands in flight");
    drop(listener);
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some clients did not finish within 10 s");
        clients.abort_all();
    }
    match shared.keyspace.flush() {
        Ok(()) => tracing::info!("disk tier synced; bye"),
        Err(e) => tracing::error!(error = %e, "could not sync the disk tier"),
    }
}

/// Runs [`Keyspace::maintain`] every
/// [`MAINTENANCE_EVERY`] until shutdown, off the clients' threads.
async fn maintain(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let shared = shared.clone();
                let _ = tokio::task::spawn_blocking(move || shared.keyspace.maintain()).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, only a kill stops the server: wait forever.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
