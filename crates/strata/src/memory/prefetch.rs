//! A hint to the CPU to start loading a cache line that will be needed soon.
//!
//! A write's policy work is a chain of cache misses: the sketch block of the new key, the
//! queue heads that are examined, their sketch blocks and their neighbours. Most of those
//! addresses are known an operation ahead (a read that misses precedes the insert; the next
//! heads are known when a write ends), so prefetching them lets the misses overlap other work
//! instead of stalling it (measured in docs/benchmarks.md, "Throughput").
//!
//! This is the crate's one `unsafe` block: `_mm_prefetch` is marked unsafe only because it
//! is an SSE intrinsic, and SSE is part of every x86-64 CPU. A prefetch never faults and
//! never changes memory, whatever the address.

/// Starts loading the cache line holding `value` (a no-op off x86-64).
#[inline]
#[cfg_attr(
    target_arch = "x86_64",
    expect(unsafe_code, reason = "an SSE intrinsic; see the module docs")
)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is in the x86-64 baseline; a prefetch has no effect on memory.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
