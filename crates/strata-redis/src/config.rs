//! How to reach Redis, and how the tiers behave around it.

use std::time::Duration;

/// Where Redis is and how to use it.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub(crate) urls: Vec<String>,
    pub(crate) cluster: bool,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) strict: bool,
    pub(crate) lease_ttl: Duration,
    pub(crate) lease_wait: Duration,
    pub(crate) max_local_ttl: Duration,
    pub(crate) error_log_interval: Duration,
    pub(crate) tracking: bool,
    pub(crate) cluster_connections: usize,
}

impl RedisConfig {
    fn new(urls: Vec<String>, cluster: bool) -> Self {
        Self {
            urls,
            cluster,
            prefix: "strata".into(),
            timeout: Duration::from_millis(500),
            strict: false,
            lease_ttl: Duration::from_secs(10),
            lease_wait: Duration::from_secs(15),
            max_local_ttl: Duration::from_secs(300),
            error_log_interval: Duration::from_secs(10),
            tracking: true,
            cluster_connections: 4,
        }
    }

    /// A standalone server (or a Valkey, or anything that speaks RESP), e.g.
    /// `redis://127.0.0.1:6379/0`.
    pub fn standalone(url: impl Into<String>) -> Self {
        Self::new(vec![url.into()], false)
    }

    /// A Redis Cluster, given some of its nodes.
    pub fn cluster<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self::new(urls.into_iter().map(Into::into).collect(), true)
    }

    /// The prefix of every key Strata writes (default `strata`): keys are
    /// `{prefix}:k:{key}`, tag sets `{prefix}:t:{tag}`, leases `{prefix}:l:…{key}`, and the
    /// invalidation channel `{prefix}:invalidations`. `invalidate_all` removes only these.
    /// A prefix with a hash tag (`{app}`) puts all of them in one Cluster slot; one that opens
    /// a hash tag without closing it is refused when connecting.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a Redis command or connection attempt may take before it counts as failed
    /// (default 500 ms). Bounds how long a caller waits when Redis is down.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Strict mode: Redis errors are returned to callers instead of being absorbed by the
    /// local tiers (default off).
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// How long a computing process holds the lease on a missing key (default 10 s). A lease
    /// whose holder died expires after this.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How long a process waits for another's computation before computing itself
    /// (default 15 s).
    #[must_use]
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }

    /// The longest a value stays in a local tier (default 5 min): the backstop should an
    /// invalidation message be lost.
    #[must_use]
    pub fn max_local_ttl(mut self, ttl: Duration) -> Self {
        self.max_local_ttl = ttl;
        self
    }

    /// Whether a standalone server's RESP3 client tracking (`CLIENT TRACKING ON BCAST`)
    /// carries invalidations (default on). It also reports writes made by other programs and
    /// keys Redis expires or evicts. It needs a server with RESP3 (Redis 6+, Valkey); without
    /// it, and always for a Cluster, invalidations travel on a pub/sub channel.
    #[must_use]
    pub fn tracking(mut self, on: bool) -> Self {
        self.tracking = on;
        self
    }

    /// How many connections a Cluster client opens, each to every node, taking them in turn
    /// (default 4; at least 1). One carries each request through a single task: a burst of
    /// 10,000 tagged writes at once waited there past the timeout, where 4 took it in ~0.3 s
    /// (`docs/benchmarks.md`). A standalone server takes one connection, which keeps up.
    #[must_use]
    pub fn cluster_connections(mut self, connections: usize) -> Self {
        self.cluster_connections = connections.max(1);
        self
    }

    /// At most one log line about Redis errors per this interval (default 10 s).
    #[must_use]
    pub fn error_log_interval(mut self, interval: Duration) -> Self {
        self.error_log_interval = interval;
        self
    }
}
