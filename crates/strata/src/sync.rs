//! Atomics and thread-locals, swapped for loom's models under `--cfg strata_loom`.

#[cfg(strata_loom)]
pub(crate) use loom::{
    sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
    thread_local,
};
#[cfg(not(strata_loom))]
pub(crate) use std::{
    sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
    thread_local,
};
