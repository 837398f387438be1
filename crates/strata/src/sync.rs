//! The atomics of the lock-free statistics counters, swapped for loom's models under
//! `--cfg strata_loom` so that loom can check them (see `stats.rs`).

#[cfg(strata_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(strata_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
