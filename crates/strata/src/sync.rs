//! The atomics of the statistics counters, swapped for loom's models under `--cfg strata_loom`
//! so that loom can check their single-writer protocol (see `stats.rs`).

#[cfg(strata_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(strata_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
