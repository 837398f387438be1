use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use strata::Cache;

/// Runs `f` on `n` threads released together; returns their results.
fn together<T: Send + 'static>(n: usize, f: impl Fn() -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("caller thread"))
        .collect()
}

#[test]
fn concurrent_misses_run_one_computation() {
    let cache: Cache<&str, u64> = Cache::new(100);
    let computations = Arc::new(AtomicUsize::new(0));
    let (c, n) = (cache.clone(), computations.clone());
    let values = together(32, move || {
        c.get_with("cold", || {
            n.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100)); // a slow load all callers overlap
            42
        })
    });
    assert!(values.iter().all(|v| *v == 42));
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get("cold"), Some(42));
}

#[test]
fn an_error_is_shared_by_all_waiters_and_not_cached() {
    let cache: Cache<&str, u64> = Cache::new(100);
    let computations = Arc::new(AtomicUsize::new(0));
    let (c, n) = (cache.clone(), computations.clone());
    let results = together(16, move || {
        c.try_get_with("key", || {
            n.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            Err::<u64, String>("backend down".to_string())
        })
    });
    let errors: Vec<_> = results
        .into_iter()
        .map(|r| r.expect_err("every caller sees the error"))
        .collect();
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    assert!(
        errors
            .iter()
            .all(|e| Arc::ptr_eq(e, &errors[0]) && **e == "backend down")
    );
    assert_eq!(cache.get("key"), None, "errors are not cached");
    let retried = cache.try_get_with("key", || Ok::<u64, String>(7));
    assert_eq!(retried, Ok(7));
}

#[test]
fn a_panicking_leader_releases_its_waiters() {
    let cache: Cache<&str, u64> = Cache::new(100);
    let computations = Arc::new(AtomicUsize::new(0));
    let (c, n) = (cache.clone(), computations.clone());
    let results = together(8, move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.get_with("key", || {
                let attempt = n.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                if attempt == 0 {
                    panic!("the first computation fails hard");
                }
                9
            })
        }))
    });
    let panicked = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(panicked, 1, "only the leader that panicked sees the panic");
    assert!(results.iter().flatten().all(|v| *v == 9));
    assert_eq!(
        computations.load(Ordering::SeqCst),
        2,
        "one waiter took over"
    );
}

/// Spawns `tasks` callers of `get_with_async(1, …)` whose computation counts itself, takes
/// `delay` and yields `value`.
fn spawn_loads(
    cache: &Cache<u32, u64>,
    computations: &Arc<AtomicUsize>,
    tasks: usize,
    delay: Duration,
    value: u64,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..tasks)
        .map(|_| {
            let (cache, n) = (cache.clone(), computations.clone());
            tokio::spawn(async move {
                cache
                    .get_with_async(1, async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        value
                    })
                    .await
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_coalesce() {
    let cache: Cache<u32, u64> = Cache::new(100);
    let computations = Arc::new(AtomicUsize::new(0));
    let tasks = spawn_loads(&cache, &computations, 200, Duration::from_millis(100), 5);
    for task in tasks {
        assert_eq!(task.await.expect("task"), 5);
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_async_leader_hands_over() {
    let cache: Cache<u32, u64> = Cache::new(100);
    let computations = Arc::new(AtomicUsize::new(0));
    // The leader starts a slow load and is cancelled by its timeout.
    let leader = {
        let (cache, n) = (cache.clone(), computations.clone());
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(50),
                cache.get_with_async(1, async {
                    n.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    0
                }),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiters = spawn_loads(&cache, &computations, 20, Duration::from_millis(20), 8);
    assert!(
        leader.await.expect("leader task").is_err(),
        "the leader timed out"
    );
    for waiter in waiters {
        assert_eq!(waiter.await.expect("waiter task"), 8);
    }
    assert_eq!(
        computations.load(Ordering::SeqCst),
        2,
        "cancelled leader + one successor"
    );
}

/// Runs `get_with(1, …)` on a thread whose computation waits, in the air, until `write`
/// has run on this one; returns what the caller got and what the cache holds after.
fn write_during_a_load(
    cache: &Cache<u32, &'static str>,
    write: impl FnOnce(&Cache<u32, &'static str>),
) -> (&'static str, Option<&'static str>) {
    let load = |cache: &Cache<u32, &'static str>, computation: Box<dyn FnOnce() -> _ + Send>| {
        cache.get_with(1, computation)
    };
    let got =
        crate::load_race::write_during_a_load(cache, load, "computed from the old row", write);
    (got, cache.get(&1))
}

/// A write of the key while its value is being computed wins: the computation read the
/// source before the write ("drop the cached query, the row changed"), so its caller gets
/// its value but the cache does not keep it. A removal, an insert and emptying the cache
/// alike. Without a write, the computed value is cached.
#[test]
fn a_write_during_a_load_is_not_undone_by_it() {
    let cache: Cache<u32, &str> = Cache::new(100);
    let (got, held) = write_during_a_load(&cache, |c| {
        c.remove(&1);
    });
    assert_eq!((got, held), ("computed from the old row", None));
    let (got, held) = write_during_a_load(&cache, |c| c.insert(1, "the new row"));
    assert_eq!(
        (got, held),
        ("computed from the old row", Some("the new row"))
    );
    cache.remove(&1);
    let (_, held) = write_during_a_load(&cache, |c| c.invalidate_all());
    assert_eq!(held, None);
    // A write of another key changes nothing.
    let (_, held) = write_during_a_load(&cache, |c| c.insert(2, "another row"));
    assert_eq!(held, Some("computed from the old row"));
}
