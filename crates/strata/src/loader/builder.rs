//! `LoaderBuilder`: how a [`Loader`] is configured.

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Executor, Inner, IsNegative, Loader, Spawner, Stamped};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::memory::{Cache, nanos};

/// Configures a [`Loader`]: its capacity and freshness windows.
///
/// ```
/// use std::time::Duration;
/// use strata::Loader;
///
/// let prices: Loader<String, f64> = Loader::builder()
///     .max_capacity(1_000)
///     .fresh_for(Duration::from_secs(10))
///     .stale_while_revalidate(Duration::from_secs(50)) // serve old prices while refreshing
///     .stale_if_error(Duration::from_secs(3600))       // and for an hour if the feed is down
///     .early_refresh(1.0)                              // XFetch with β = 1
///     .executor(|job| { std::thread::spawn(job); })    // refresh off the caller's thread
///     .build()?;
/// assert_eq!(prices.get("AAPL".to_string(), || 187.5), 187.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct LoaderBuilder<K, V> {
    max_capacity: Option<u64>,
    fresh: Option<Duration>,
    stale: Duration,
    stale_if_error: Duration,
    negative: Option<(Duration, IsNegative<V>)>,
    beta: f64,
    seed: u64,
    executor: Option<Executor>,
    spawner: Option<Spawner>,
    clock: Option<Arc<dyn Clock>>,
    _keys: std::marker::PhantomData<fn(K)>,
}

impl<K, V> Default for LoaderBuilder<K, V> {
    fn default() -> Self {
        Self {
            max_capacity: None,
            fresh: None,
            stale: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            negative: None,
            beta: 0.0,
            seed: 0x2545_F491_4F6C_DD1D,
            executor: None,
            spawner: None,
            clock: None,
            _keys: std::marker::PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for LoaderBuilder<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoaderBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("fresh", &self.fresh)
            .field("stale", &self.stale)
            .field("stale_if_error", &self.stale_if_error)
            .field("beta", &self.beta)
            .finish_non_exhaustive()
    }
}

impl<K, V> LoaderBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most this many values.
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = Some(max_capacity);
        self
    }

    /// How long a computed value is fresh (served without any refresh).
    pub fn fresh_for(mut self, fresh: Duration) -> Self {
        self.fresh = Some(fresh);
        self
    }

    /// After freshness ends, how long the old value is still served at hit latency while one
    /// caller refreshes it.
    pub fn stale_while_revalidate(mut self, stale: Duration) -> Self {
        self.stale = stale;
        self
    }

    /// After freshness ends, how long the old value is served instead of an error when
    /// computing a new one fails.
    pub fn stale_if_error(mut self, stale_if_error: Duration) -> Self {
        self.stale_if_error = stale_if_error;
        self
    }

    /// Probabilistic early refresh (XFetch) with weight `beta` (1.0 is the paper's default;
    /// larger refreshes earlier; 0 turns it off).
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.beta = beta.max(0.0);
        self
    }

    /// Seeds XFetch's random draws (for reproducible tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed | 1;
        self
    }

    /// Where synchronous background refreshes run; without one, the refreshing caller computes
    /// inline (it waits; everyone else is served the stale value meanwhile).
    pub fn executor(
        mut self,
        executor: impl Fn(Box<dyn FnOnce() + Send>) + Send + Sync + 'static,
    ) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Where async background refreshes run (e.g. `|task| { tokio::spawn(task); }`); without
    /// one, the refreshing caller awaits the refresh inline.
    pub fn spawner(
        mut self,
        spawner: impl Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync + 'static,
    ) -> Self {
        self.spawner = Some(Arc::new(spawner));
        self
    }

    /// The time source; [`SystemClock`] by default.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the loader.
    ///
    /// # Errors
    /// [`Error::MissingCapacity`] without `max_capacity`; [`Error::InvalidDuration`] without a
    /// non-zero `fresh_for`.
    pub fn build(self) -> Result<Loader<K, V>> {
        let fresh = self.fresh.unwrap_or(Duration::ZERO);
        let fresh = nanos("fresh_for", fresh)?;
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::default()));
        let cache = Cache::<K, Stamped<V>>::builder()
            .max_capacity(self.max_capacity.ok_or(Error::MissingCapacity)?)
            .clock_shared(clock.clone())
            .expire_after(|_, stamped: &Stamped<V>| Some(stamped.keep_for))
            .build()?;
        Ok(Loader {
            inner: Arc::new(Inner {
                cache,
                clock,
                fresh,
                stale: saturating_nanos(self.stale),
                stale_if_error: saturating_nanos(self.stale_if_error),
                negative: self
                    .negative
                    .map(|(ttl, is_negative)| (saturating_nanos(ttl), is_negative)),
                beta: self.beta,
                random: AtomicU64::new(self.seed),
                refreshing: Mutex::new(HashSet::new()),
                executor: self.executor,
                spawner: self.spawner,
                computations: AtomicU64::new(0),
            }),
        })
    }
}

impl<K, T> LoaderBuilder<K, Option<T>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Negative caching: a computed `None` ("not found") is kept for `ttl` only, and never
    /// served stale.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative = Some((ttl, Option::is_none));
        self
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4)
}
