//! The connection to Redis: one server through a connection manager, or a Cluster through
//! a pool of cluster connections taken in turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Value};

/// The connection: one server, or a Cluster's pool.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<ClusterPool>),
}

/// Cluster connections taken in turn. One connection of the cluster client carries each
/// request through one task, and a burst of requests (10,000 tagged writes at once) waited
/// there past the timeout; several share the load (see `RedisConfig::cluster_connections`).
pub(super) struct ClusterPool {
    pub(super) connections: Vec<ClusterConnection>,
    pub(super) next: AtomicUsize,
}

impl ClusterPool {
    /// The next connection in turn.
    pub(super) fn pick(&self) -> ClusterConnection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }
}

impl Conn {
    pub(super) async fn cmd<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(pool) => cmd.query_async(&mut pool.pick()).await,
        }
    }

    /// Commands on one key (one slot): a pipeline.
    pub(super) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        match self {
            Conn::Single(c) => pipe.query_async(&mut c.clone()).await,
            Conn::Cluster(pool) => pipe.query_async(&mut pool.pick()).await,
        }
    }

    /// `ordered`, commands on one slot that must run in their order, and `rest`, commands
    /// on keys anywhere: one pipeline on one server; in a Cluster, the ordered part as a
    /// pipeline alongside the rest (see [`many`](Self::many)).
    pub(super) async fn write(&self, ordered: Vec<Cmd>, rest: Vec<Cmd>) -> RedisResult<()> {
        if ordered.is_empty() && rest.is_empty() {
            return Ok(());
        }
        match self {
            Conn::Single(_) => self
                .many(ordered.into_iter().chain(rest).collect())
                .await
                .map(drop),
            Conn::Cluster(_) if ordered.is_empty() => self.many(rest).await.map(drop),
            Conn::Cluster(_) => {
                let mut pipe = redis::pipe();
                for cmd in ordered {
                    pipe.add_command(cmd).ignore();
                }
                futures_util::future::try_join(self.pipe::<()>(&pipe), self.many(rest))
                    .await
                    .map(drop)
            }
        }
    }

    /// Runs a script (by its SHA1, loading it where the server lacks it).
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match self {
            Conn::Single(c) => invocation.invoke_async(&mut c.clone()).await,
            Conn::Cluster(pool) => invocation.invoke_async(&mut pool.pick()).await,
        }
    }

    /// Commands on keys that may live in different slots: a pipeline on one server; in a
    /// Cluster, concurrent single commands (a Cluster pipeline must stay in one slot), which
    /// the cluster connection routes and multiplexes.
    pub(super) async fn many(&self, cmds: Vec<Cmd>) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                pipe.query_async(&mut c.clone()).await
            }
            Conn::Cluster(pool) => {
                let results = futures_util::future::join_all(cmds.iter().map(|cmd| {
                    let mut c = pool.pick();
                    async move { cmd.query_async::<Value>(&mut c).await }
                }))
                .await;
                results.into_iter().collect()
            }
        }
    }
}
