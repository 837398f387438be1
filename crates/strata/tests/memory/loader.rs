use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use strata::{Loader, MockClock};

const SEC: Duration = Duration::from_secs(1);

fn loader(clock: &MockClock) -> strata::LoaderBuilder<&'static str, u64> {
    Loader::builder()
        .max_capacity(100)
        .fresh_for(10 * SEC)
        .clock(clock.clone())
}

#[test]
fn fresh_values_are_not_recomputed() {
    let clock = MockClock::new();
    let l = loader(&clock).build().expect("valid config");
    assert_eq!(l.get("k", || 1), 1);
    clock.advance(9 * SEC);
    assert_eq!(l.get("k", || 2), 1);
    assert_eq!(l.computations(), 1);
    clock.advance(SEC);
    assert_eq!(
        l.get("k", || 3),
        3,
        "past freshness, no stale window: recomputed"
    );
    let stats = l.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (1, 2),
        "three reads, each counted once: a miss, a fresh hit, a miss past the value's life"
    );
}

/// A refresh, as the loader hands it to its executor.
type Job = Box<dyn FnOnce() + Send>;

/// A loader with a 60 s stale-while-revalidate window whose executor queues refreshes, so
/// that the test decides when they run; and the queue.
fn queued_refreshes(clock: &MockClock) -> (Loader<&'static str, u64>, Receiver<Job>) {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let tx = std::sync::Mutex::new(tx);
    let l = loader(clock)
        .stale_while_revalidate(60 * SEC)
        .executor(move |job| tx.lock().expect("lock").send(job).expect("queue"))
        .build()
        .expect("valid config");
    (l, rx)
}

#[test]
fn stale_while_revalidate_serves_the_old_value_and_refreshes_once() {
    let clock = MockClock::new();
    let (l, rx) = queued_refreshes(&clock);
    l.get("k", || 1);
    clock.advance(11 * SEC);
    let refreshes = Arc::new(AtomicU64::new(0));
    for _ in 0..100 {
        let r = refreshes.clone();
        let v = l.get("k", move || {
            r.fetch_add(1, Ordering::SeqCst);
            2
        });
        assert_eq!(v, 1, "stale value served while the refresh is pending");
    }
    let jobs: Vec<_> = rx.try_iter().collect();
    assert_eq!(jobs.len(), 1, "exactly one refresh was started");
    jobs.into_iter().for_each(|job| job());
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(l.get("k", || 3), 2, "the refreshed value is fresh again");
}

#[test]
fn stale_while_revalidate_under_concurrency() {
    let clock = MockClock::new();
    let l = loader(&clock)
        .stale_while_revalidate(60 * SEC)
        .executor(|job| {
            std::thread::spawn(job);
        })
        .build()
        .expect("valid config");
    l.get("k", || 1);
    clock.advance(11 * SEC);
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (l, barrier) = (l.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                l.get("k", || {
                    std::thread::sleep(Duration::from_millis(100));
                    2
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("reader"), 1);
    }
    // Wait for the background refresh to land.
    for _ in 0..100 {
        if l.computations() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(l.computations(), 2, "one initial load + one refresh");
}

#[test]
fn stale_if_error_serves_the_old_value_within_its_window() {
    let clock = MockClock::new();
    let l = loader(&clock)
        .stale_if_error(100 * SEC)
        .build()
        .expect("valid config");
    assert_eq!(l.try_get("k", || Ok::<u64, String>(1)), Ok(1));
    clock.advance(50 * SEC);
    assert_eq!(
        l.try_get("k", || Err::<u64, String>("down".into())),
        Ok(1),
        "stale instead of the error"
    );
    clock.advance(61 * SEC);
    let err = l.try_get("k", || Err::<u64, String>("still down".into()));
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("still down".to_string())
    );
}

#[test]
fn negative_results_are_cached_briefly() {
    let clock = MockClock::new();
    let l: Loader<u32, Option<String>> = Loader::builder()
        .max_capacity(100)
        .fresh_for(3600 * SEC)
        .negative_ttl(5 * SEC)
        .clock(clock.clone())
        .build()
        .expect("valid config");
    assert_eq!(l.get(1, || None), None);
    assert_eq!(
        l.get(1, || Some("found".into())),
        None,
        "'not found' is remembered"
    );
    clock.advance(5 * SEC);
    assert_eq!(
        l.get(1, || Some("found".into())),
        Some("found".into()),
        "…for its short TTL only"
    );
    clock.advance(1000 * SEC);
    assert_eq!(
        l.get(1, || None),
        Some("found".into()),
        "positive values keep the long TTL"
    );
}

#[test]
fn early_refresh_happens_before_expiry_when_computations_are_slow() {
    let clock = MockClock::new();
    let l = loader(&clock)
        .early_refresh(1.0)
        .seed(42)
        .build()
        .expect("valid config");
    let c = clock.clone();
    // The computation "takes" 5 s of clock time: XFetch starts refreshing well before expiry.
    l.get("k", move || {
        c.advance(5 * SEC);
        1
    });
    clock.advance(9 * SEC); // 1 s before expiry: P(refresh) = e^(-1/5) ≈ 0.82 per read
    let mut refreshed_at = None;
    for read in 0..20 {
        if l.get("k", || 2) == 1 && l.computations() == 2 {
            refreshed_at = Some(read);
            break;
        }
    }
    assert!(refreshed_at.is_some(), "no early refresh in 20 reads");
    assert_eq!(l.get("k", || 3), 2, "the early refresh stored its value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stale_while_revalidate_refreshes_in_the_background() {
    let clock = MockClock::new();
    let l = loader(&clock)
        .stale_while_revalidate(60 * SEC)
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()
        .expect("valid config");
    l.get_async("k", async { 1 }).await;
    clock.advance(11 * SEC);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move {
                l.get_async("k", async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    2
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(l.computations(), 2);
    assert_eq!(l.get_async("k", async { 3 }).await, 2);
}

/// A value invalidated while its background refresh is computing stays invalidated: the
/// refresh read the source before the change, so its value is not stored, and the next read
/// computes anew.
#[test]
fn an_invalidation_during_a_refresh_is_not_undone_by_it() {
    let clock = MockClock::new();
    let (l, rx) = queued_refreshes(&clock);
    l.get("k", || 1);
    clock.advance(11 * SEC);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    assert_eq!(
        l.get("k", move || {
            started_tx.send(()).expect("test thread");
            go_rx.recv().expect("test thread");
            2
        }),
        1,
        "stale, refreshing"
    );
    let job = rx.try_recv().expect("a refresh was queued");
    let refresh = std::thread::spawn(job);
    started_rx.recv().expect("the refresh computes");
    l.invalidate(&"k");
    go_tx.send(()).expect("the refresh waits");
    refresh.join().expect("refresh thread");
    assert_eq!(
        l.get("k", || 3),
        3,
        "computed anew, not the refresh's value"
    );
}
