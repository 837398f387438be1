//! The in-memory tier through its public API.

mod expiry;
#[path = "../support/load_race.rs"]
mod load_race;
mod loader;
mod loading;
mod policy;
mod stress;
mod tags_and_listener;

use std::sync::{Arc, Mutex};

use strata::RemovalCause;

/// What a recording listener heard.
pub(crate) type Log<K, V> = Arc<Mutex<Vec<(K, V, RemovalCause)>>>;

/// A listener that records what it hears.
pub(crate) fn recorder<K: Send + 'static, V: Send + 'static>() -> (
    Log<K, V>,
    impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    (log, move |k, v, c| {
        sink.lock().expect("listener lock").push((k, v, c))
    })
}
