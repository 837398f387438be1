//! The Redis tier and the tiered cache against real servers: a standalone `redis-server`
//! (`STRATA_REDIS_URL`, default `redis://127.0.0.1:6379`) and a 3-master Redis Cluster
//! (`STRATA_REDIS_CLUSTER_URLS`, default ports 30001-30003); `scripts/redis-test-servers.sh
//! start` starts both. Without them the tests skip, except under CI (`CI` set), where they
//! fail.

mod coherence;
mod outage;
mod stampede;
mod tier;

use std::time::{SystemTime, UNIX_EPOCH};

use strata_redis::RedisConfig;

fn reachable(url: &str) -> bool {
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("");
    std::net::TcpStream::connect(addr).is_ok()
}

fn require(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is not running (scripts/redis-test-servers.sh start)"
        );
        eprintln!("skipped: {what} is not running");
    }
    ok
}

/// The standalone server's URL, or `None` (skip) outside CI.
pub fn standalone() -> Option<String> {
    let url = std::env::var("STRATA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    require("redis-server", reachable(&url)).then_some(url)
}

/// The cluster's node URLs, or `None` (skip) outside CI.
pub fn cluster() -> Option<Vec<String>> {
    let urls: Vec<String> = std::env::var("STRATA_REDIS_CLUSTER_URLS")
        .unwrap_or_else(|_| {
            "redis://127.0.0.1:30001,redis://127.0.0.1:30002,redis://127.0.0.1:30003".into()
        })
        .split(',')
        .map(str::to_string)
        .collect();
    require("the Redis Cluster", urls.iter().all(|u| reachable(u))).then_some(urls)
}

/// A prefix no other test (or run) uses.
pub fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t-{test}-{}-{nanos}", std::process::id())
}

/// A standalone config with a fresh prefix.
pub fn standalone_config(test: &str) -> Option<RedisConfig> {
    Some(
        RedisConfig::standalone(standalone()?)
            .prefix(prefix(test))
            .strict(true),
    )
}

/// A cluster config with a fresh prefix.
pub fn cluster_config(test: &str) -> Option<RedisConfig> {
    Some(
        RedisConfig::cluster(cluster()?)
            .prefix(prefix(test))
            .strict(true),
    )
}

/// A plain redis-rs connection, to look at what the tier wrote.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
