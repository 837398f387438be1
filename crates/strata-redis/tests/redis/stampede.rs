//! Cross-process stampede protection: 4 processes × 250 concurrent callers, 1 computation.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use strata_redis::{RedisConfig, RedisTier, TieredCache};

const PROCESSES: usize = 4;
const CALLERS: usize = 250;

/// One process of the stampede: 250 concurrent `get_with` calls at the agreed instant.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by a_stampede_across_processes_computes_once"]
async fn stampede_child() {
    let (Ok(url), Ok(prefix), Ok(at)) = (
        std::env::var("STAMPEDE_URL"),
        std::env::var("STAMPEDE_PREFIX"),
        std::env::var("STAMPEDE_AT"),
    ) else {
        return;
    };
    let config = RedisConfig::standalone(&url).prefix(&prefix);
    let cache: TieredCache<String, String> = TieredCache::builder()
        .redis(config)
        .memory(100)
        .build()
        .await
        .unwrap();
    let counter = format!("{prefix}:computations");
    let at: u64 = at.parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await;
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (cache, url, counter) = (cache.clone(), url.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_with("report".to_string(), async move {
                    let mut raw = crate::raw(&url).await;
                    let _: i64 = raw.incr(&counter, 1).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "expensive report".to_string()
                })
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "expensive report");
    }
    println!("callers={CALLERS}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stampede_across_processes_computes_once() {
    let Some(url) = crate::standalone() else {
        return;
    };
    let prefix = crate::prefix("stampede");
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1500;
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "stampede::stampede_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("STAMPEDE_URL", &url)
                .env("STAMPEDE_PREFIX", &prefix)
                .env("STAMPEDE_AT", at.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("callers=250"),
            "a process failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut raw = crate::raw(&url).await;
    let computations: i64 = raw.get(format!("{prefix}:computations")).await.unwrap();
    eprintln!(
        "{PROCESSES} processes × {CALLERS} callers: {computations} computation(s) in {:?}",
        start.elapsed()
    );
    assert_eq!(computations, 1);
}

/// A lease whose holder died (never released) expires, and a waiter then computes.
#[tokio::test]
async fn a_dead_holders_lease_expires() {
    let Some(config) = crate::standalone_config("lease") else {
        return;
    };
    let config = config.lease_ttl(Duration::from_millis(400));
    let tier = RedisTier::connect(config.clone()).await.unwrap();
    let key = postcard_key("k");
    let lease = tier.try_lease(&key).await.unwrap().expect("first lease");
    assert!(tier.try_lease(&key).await.unwrap().is_none(), "held");
    std::mem::forget(lease); // the holder "dies"
    let cache: TieredCache<String, u32> =
        TieredCache::builder().redis(config).build().await.unwrap();
    let start = Instant::now();
    let value = cache.get_with("k".to_string(), async { 7 }).await.unwrap();
    assert_eq!(value, 7);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "computed before the lease expired: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "waited too long: {waited:?}"
    );
}

fn postcard_key(s: &str) -> Vec<u8> {
    let mut out = vec![s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}
