//! The `#[strata::cached]` attribute through its generated functions.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata::{Cache, cached};

static SQUARES: AtomicUsize = AtomicUsize::new(0);

#[cached(capacity = 100, ttl = "1h")]
fn square(n: u64) -> u64 {
    SQUARES.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[test]
fn memoizes_by_arguments_with_helpers() {
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(square(4), 16);
    assert_eq!(SQUARES.load(Ordering::SeqCst), 2);
    let info = square_cache_info();
    assert_eq!(
        (info.hits, info.misses, info.size, info.capacity),
        (1, 2, 2, 100)
    );
    square_invalidate(3);
    assert_eq!(square(3), 9);
    assert_eq!(SQUARES.load(Ordering::SeqCst), 3);
    assert_eq!(square_refresh(4), 16);
    assert_eq!(SQUARES.load(Ordering::SeqCst), 4);
    square_cache_clear();
    assert_eq!(square_cache_info().size, 0);
}

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// The key ignores the request id: only the user matters.
#[cached(key = user.clone(), key_type = String)]
fn greeting(user: String, request_id: u64) -> String {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    let _ = request_id;
    format!("hello {user}")
}

#[test]
fn a_key_expression_picks_what_identifies_the_result() {
    assert_eq!(greeting("ada".into(), 1), "hello ada");
    assert_eq!(greeting("ada".into(), 2), "hello ada");
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 1);
}

static PARSES: AtomicUsize = AtomicUsize::new(0);

#[cached(result = true)]
fn parse(text: String) -> Result<i64, String> {
    PARSES.fetch_add(1, Ordering::SeqCst);
    text.parse::<i64>().map_err(|e| e.to_string())
}

#[test]
fn results_cache_only_ok() {
    assert_eq!(parse("42".into()), Ok(42));
    assert_eq!(parse("42".into()), Ok(42));
    assert!(parse("x".into()).is_err());
    assert!(parse("x".into()).is_err());
    assert_eq!(
        PARSES.load(Ordering::SeqCst),
        3,
        "errors are recomputed, Ok is cached"
    );
}

static FINDS: AtomicUsize = AtomicUsize::new(0);

#[cached(option = true)]
fn find(id: u32) -> Option<String> {
    FINDS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("item {id}"))
}

#[test]
fn options_cache_only_some() {
    assert_eq!(find(2), Some("item 2".into()));
    assert_eq!(find(2), Some("item 2".into()));
    assert_eq!(find(3), None);
    assert_eq!(find(3), None);
    assert_eq!(FINDS.load(Ordering::SeqCst), 3);
}

static SHARED: LazyLock<Cache<(u32,), u32>> = LazyLock::new(|| Cache::new(10));

#[cached(cache = SHARED)]
fn double(n: u32) -> u32 {
    n * 2
}

#[test]
fn a_shared_cache_is_used_and_visible() {
    assert_eq!(double(21), 42);
    assert_eq!(SHARED.get(&(21,)), Some(42));
}

static FETCHES: AtomicUsize = AtomicUsize::new(0);

#[cached(capacity = 10)]
async fn fetch(id: u32) -> String {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    format!("page {id}")
}

static CHECKS: AtomicUsize = AtomicUsize::new(0);

#[cached(result = true)]
async fn check(id: u32) -> Result<u32, String> {
    CHECKS.fetch_add(1, Ordering::SeqCst);
    if id == 0 { Err("zero".into()) } else { Ok(id) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_functions_are_memoized_and_coalesced() {
    let calls: Vec<_> = (0..50).map(|_| tokio::spawn(fetch(7))).collect();
    for call in calls {
        assert_eq!(call.await.expect("task"), "page 7");
    }
    assert_eq!(
        FETCHES.load(Ordering::SeqCst),
        1,
        "50 concurrent calls, one computation"
    );
    assert_eq!(fetch_refresh(7).await, "page 7");
    assert_eq!(FETCHES.load(Ordering::SeqCst), 2);
    assert_eq!(check(0).await, Err("zero".to_string()));
    assert_eq!(check(0).await, Err("zero".to_string()));
    assert_eq!(check(1).await, Ok(1));
    assert_eq!(check(1).await, Ok(1));
    assert_eq!(CHECKS.load(Ordering::SeqCst), 3);
}

static SLOW: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn slow(n: u32) -> u32 {
    SLOW.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    n
}

#[test]
fn concurrent_sync_calls_run_the_body_once() {
    let threads: Vec<_> = (0..16).map(|_| std::thread::spawn(|| slow(5))).collect();
    for t in threads {
        assert_eq!(t.join().expect("caller"), 5);
    }
    assert_eq!(SLOW.load(Ordering::SeqCst), 1);
}

#[test]
fn the_closure_api_memoizes_and_coalesces() {
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let memo = std::sync::Arc::new(strata::Memoized::new(100, move |n: &u64| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        n + 1
    }));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let memo = memo.clone();
            std::thread::spawn(move || memo.call(1))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("caller"), 2);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(memo.refresh(1), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    memo.invalidate(&1);
    assert_eq!(memo.info().size, 0);
    memo.call(1);
    memo.clear();
    assert!(memo.cache().is_empty());
}
