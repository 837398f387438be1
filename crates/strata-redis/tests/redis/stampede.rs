//! Cross-process stampede protection: 4 processes × 250 concurrent callers, 1 computation;
//! and what a failed computation leaves (an error for its waiters, nothing stored).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use strata_redis::{Error, RedisConfig, RedisTier, TieredCache};

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

fn db_down() -> std::io::Error {
    std::io::Error::other("db down")
}

/// A computation that fails sends its error to every caller that waited for it in this
/// process, runs once for them all, and stores nothing: the next call computes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_computation_reaches_every_waiter_and_is_not_stored() {
    let Some(config) = crate::standalone_config("tryload") else {
        return;
    };
    let cache: Arc<TieredCache<String, String>> = Arc::new(
        TieredCache::builder()
            .redis(config.clone())
            .memory(100)
            .build()
            .await
            .unwrap(),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .try_get_with("row".to_string(), async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Err::<String, _>(db_down())
                    })
                    .await
            })
        })
        .collect();
    for caller in callers {
        match caller.await.unwrap() {
            Err(Error::Load(e)) => assert_eq!(e.to_string(), "db down"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation for all");
    let truth: TieredCache<String, String> =
        TieredCache::builder().redis(config).build().await.unwrap();
    assert_eq!(truth.get(&"row".to_string()).await.unwrap(), None);
    let value = cache
        .try_get_with("row".to_string(), async {
            Ok::<_, std::io::Error>("up".to_string())
        })
        .await
        .unwrap();
    assert_eq!(value, "up");
    assert_eq!(
        truth.get(&"row".to_string()).await.unwrap().as_deref(),
        Some("up")
    );
}

/// A process waiting for another's lease computes for itself once the holder's computation
/// fails, without waiting out `lease_wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_another_process_computes_after_the_holder_fails() {
    let Some(config) = crate::standalone_config("tryfail") else {
        return;
    };
    let config = config.lease_wait(Duration::from_secs(30));
    let holder: TieredCache<String, String> = TieredCache::builder()
        .redis(config.clone())
        .build()
        .await
        .unwrap();
    let waiter: TieredCache<String, String> =
        TieredCache::builder().redis(config).build().await.unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<()>();
    let holding = {
        let failed = failed.clone();
        tokio::spawn(async move {
            holder
                .try_get_with("row".to_string(), async move {
                    started_tx.send(()).unwrap();
                    fail_rx.await.unwrap();
                    failed.store(true, Ordering::SeqCst);
                    Err::<String, _>(db_down())
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let waiting = {
        let failed = failed.clone();
        tokio::spawn(async move {
            waiter
                .try_get_with("row".to_string(), async move {
                    assert!(
                        failed.load(Ordering::SeqCst),
                        "computed while the lease was held"
                    );
                    Ok::<_, std::io::Error>("computed by the waiter".to_string())
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    fail_tx.send(()).unwrap();
    assert!(matches!(holding.await.unwrap(), Err(Error::Load(_))));
    assert_eq!(waiting.await.unwrap().unwrap(), "computed by the waiter");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
