//! Cache stampede protection, measured: 1000 concurrent callers on a cold key whose computation
//! takes 100 ms, then 1000 on an expired key served stale while one caller refreshes it.
//! Run with `cargo run --release -p strata --example stampede`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata::Loader;

const CALLERS: usize = 1000;

/// The "expensive query": 100 ms, counted.
async fn compute(computations: Arc<AtomicU64>) -> String {
    computations.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("report #{}", computations.load(Ordering::SeqCst))
}

/// Starts `CALLERS` tasks together; returns the longest any of them waited.
async fn stampede(
    loader: &Loader<&'static str, String>,
    computations: &Arc<AtomicU64>,
) -> Duration {
    let start = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (loader, computations, start) =
                (loader.clone(), computations.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let began = Instant::now();
                let value = loader.get_async("report", compute(computations)).await;
                assert!(value.starts_with("report #"));
                began.elapsed()
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.expect("caller task"));
    }
    slowest
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let loader = Loader::builder()
        .max_capacity(100)
        .fresh_for(Duration::from_millis(300))
        .stale_while_revalidate(Duration::from_secs(60))
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()?;

    let cold = Arc::new(AtomicU64::new(0));
    let cold_wait = stampede(&loader, &cold).await;
    println!(
        "cold phase: slowest caller waited {} ms (the computation takes 100 ms)",
        cold_wait.as_millis()
    );

    tokio::time::sleep(Duration::from_millis(400)).await; // past freshness, inside the stale window
    let stale = Arc::new(AtomicU64::new(0));
    let stale_wait = stampede(&loader, &stale).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the background refresh land
    println!(
        "stale phase: value after refresh: {}",
        loader.get_async("report", compute(stale.clone())).await
    );

    println!(
        "cold: callers={CALLERS} computations={}",
        cold.load(Ordering::SeqCst)
    );
    println!(
        "stale: callers={CALLERS} computations={} max_wait_ms={}",
        stale.load(Ordering::SeqCst),
        stale_wait.as_millis()
    );
    Ok(())
}
