//! Redis going away and coming back, with a redis-server of the test's own.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_redis::{RedisConfig, TieredCache};

struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, port }
    }

    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_see_no_error_while_redis_is_down_and_local_tiers_flush_on_reconnect() {
    if crate::standalone().is_none() {
        return; // no redis-server binary around either
    }
    let redis = OwnRedis::start(free_port());
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let config = RedisConfig::standalone(&url)
        .prefix(crate::prefix("outage"))
        .timeout(Duration::from_millis(200));
    let cache: TieredCache<String, u64> = TieredCache::builder()
        .redis(config)
        .memory(1000)
        .build()
        .await
        .unwrap();
    cache.insert(&"a".to_string(), 1).await.unwrap();
    assert_eq!(cache.get(&"a".to_string()).await.unwrap(), Some(1));

    let port = redis.kill();
    // Reads and writes go on from the memory tier; no caller sees an error.
    let start = Instant::now();
    assert_eq!(cache.get(&"a".to_string()).await.unwrap(), Some(1));
    cache.insert(&"b".to_string(), 2).await.unwrap();
    assert_eq!(cache.get(&"b".to_string()).await.unwrap(), Some(2));
    assert_eq!(cache.get(&"missing".to_string()).await.unwrap(), None);
    let computed = cache.get_with("c".to_string(), async { 3 }).await.unwrap();
    assert_eq!(computed, 3);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "calls must not hang: {:?}",
        start.elapsed()
    );
    assert!(cache.stats().redis.errors > 0, "{:?}", cache.stats());

    // Strict mode reports the outage instead.
    let strict = RedisConfig::standalone(&url)
        .prefix(crate::prefix("strict"))
        .timeout(Duration::from_millis(200))
        .strict(true);
    let strict: TieredCache<String, u64> =
        TieredCache::builder().redis(strict).build().await.unwrap();
    assert!(strict.get(&"a".to_string()).await.is_err());

    // Redis comes back (empty: no persistence). The subscriber reconnects and flushes the
    // local tiers, since invalidations sent meanwhile would have been lost.
    let _redis = OwnRedis::start(port);
    let start = Instant::now();
    while cache.stats().flushes_after_reconnect == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never reconnected: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        cache.get(&"a".to_string()).await.unwrap(),
        None,
        "local copy flushed"
    );
    cache.insert(&"a".to_string(), 10).await.unwrap();
    assert_eq!(cache.get(&"a".to_string()).await.unwrap(), Some(10));
    let stored = cache.redis().unwrap().get(b"\x01a").await.unwrap();
    assert!(stored.is_some(), "written through to Redis again");
}
