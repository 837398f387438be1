//! `EvictionPolicy`: the policy a cache runs, adaptive by default or pinned to one shape.

use crate::policy::minisim::{INITIAL, S3FIFO, Shape, w_tinylfu};

/// Which eviction policy a [`Cache`](crate::Cache) runs; see
/// [`CacheBuilder::eviction_policy`](crate::CacheBuilder::eviction_policy).
///
/// By default the cache adapts: it runs miniature simulations of several shapes of its policy
/// (W-TinyLFU with windows from 0 to 100% of capacity, one with staggered sketch aging, and
/// S3-FIFO) on a sample of its keys and uses whichever scores best, whether the cache is
/// bounded by entry count or by weight. A pinned policy never changes: its behaviour is
/// predictable, and it saves the simulations' cost (a few percent of throughput; more for
/// caches under a few thousand entries).
///
/// ```
/// use strata::{Cache, EvictionPolicy};
///
/// let cache: Cache<u64, u64> = Cache::builder()
///     .max_capacity(1_000)
///     .eviction_policy(EvictionPolicy::tiny_lfu())
///     .build()?;
/// cache.insert(1, 1);
/// assert_eq!(cache.get(&1), Some(1));
/// # Ok::<(), strata::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvictionPolicy {
    /// `None`: adaptive.
    pub(crate) fixed: Option<Shape>,
}

impl Default for EvictionPolicy {
    fn default() -> Self {
        Self::adaptive()
    }
}

impl EvictionPolicy {
    /// The default: the shape adapts to the workload while the cache runs.
    pub const fn adaptive() -> Self {
        Self { fixed: None }
    }

    /// W-TinyLFU with Caffeine's 1% admission window, not adapted.
    pub const fn tiny_lfu() -> Self {
        Self {
            fixed: Some(INITIAL),
        }
    }

    /// W-TinyLFU with `window` (a fraction of capacity, `0.0..=1.0`) as its admission window,
    /// not adapted, main region split 20/80 (probation/protected) as in Caffeine. `0.0` is
    /// TinyLFU with no window, which suits loops and scans; larger windows favour recency,
    /// and `1.0` admits by recency alone.
    /// A value outside `0.0..=1.0` makes [`build`](crate::CacheBuilder::build) fail with
    /// [`Error::InvalidWindow`](crate::Error::InvalidWindow).
    pub const fn tiny_lfu_with_window(window: f64) -> Self {
        Self {
            fixed: Some(w_tinylfu(window, INITIAL.protected)),
        }
    }

    /// S3-FIFO (Yang et al., SOSP 2023): a small FIFO queue of 10% of capacity,
    /// a main FIFO with reinsertion, and a ghost of keys the small queue let go. Suits
    /// recency-heavy workloads (web and block traces); no frequency sketch.
    pub const fn s3_fifo() -> Self {
        Self {
            fixed: Some(S3FIFO),
        }
    }

    /// The window of a pinned W-TinyLFU, if it is not a fraction of capacity.
    pub(crate) fn invalid_window(&self) -> Option<f64> {
        self.fixed
            .map(|shape| shape.window)
            .filter(|window| !(0.0..=1.0).contains(window))
    }
}
