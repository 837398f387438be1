//! A load held in the air while the test writes its key. Shared by the memory and disk test
//! binaries, which include it with `#[path]`.

use std::sync::mpsc;

/// Runs `load` on a thread, handing it a computation that returns `computed` only once
/// `write` has run on this thread: the computation read its source before the write.
/// Returns what the loading caller got.
pub(crate) fn write_during_a_load<C, T>(
    cache: &C,
    load: impl FnOnce(&C, Box<dyn FnOnce() -> T + Send>) -> T + Send + 'static,
    computed: T,
    write: impl FnOnce(&C),
) -> T
where
    C: Clone + Send + 'static,
    T: Send + 'static,
{
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let loader = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let computation = Box::new(move || {
                started_tx.send(()).expect("test thread");
                go_rx.recv().expect("test thread");
                computed
            });
            load(&cache, computation)
        })
    };
    started_rx.recv().expect("loader started");
    write(cache);
    go_tx.send(()).expect("loader waits");
    loader.join().expect("loader thread")
}
