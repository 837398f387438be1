//! How far above its capacity does moka's entry count go during a trace replay, and what is
//! its hit ratio when pending maintenance is run after every insert?
use std::path::Path;
fn main() {
    let path = std::env::args().nth(1).expect("trace path");
    let cap: u64 = std::env::args()
        .nth(2)
        .expect("capacity")
        .parse()
        .expect("number");
    let keys = strata_bench::read_trace(Path::new(&path)).expect("trace");
    for strict in [false, true] {
        let cache = moka::sync::Cache::<u64, u64>::new(cap);
        let (mut hits, mut max_count) = (0u64, 0u64);
        for (i, &k) in keys.iter().enumerate() {
            if cache.get(&k).is_some() {
                hits += 1
            } else {
                cache.insert(k, k);
                if strict {
                    cache.run_pending_tasks();
                }
            }
            if i % 97 == 0 {
                max_count = max_count.max(cache.iter().count() as u64);
            }
        }
        println!(
            "strict={strict} hit_ratio={:.2} max_live_entries_seen={max_count} capacity={cap}",
            hits as f64 * 100.0 / keys.len() as f64
        );
    }
}
