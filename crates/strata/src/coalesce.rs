//! Request coalescing: concurrent loads of one missing key run one computation.
//!
//! The first caller to miss a key becomes its *leader* and registers a [`Flight`]; callers that
//! miss while the flight is in the air wait on it, blocking (sync) or asynchronously, and
//! receive the leader's value or error. A leader that panics or whose future is dropped marks
//! the flight abandoned (from its guard's `Drop`), so waiters never hang: one of them becomes
//! the next leader.
//!
//! A write of the key while its flight is in the air (an insert, a removal, an invalidation)
//! *outdates* the flight: the leader's value was computed from what the write replaced, so
//! the leader hands it to its callers but does not cache it. Without this, a removal made
//! because the source changed ("drop the cached query, the row was updated") is undone by a
//! load that read the row before the update.

use std::any::Any;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use event_listener::{Event, Listener};
use parking_lot::Mutex;

/// A shared, type-erased error from a failed load (waiters downcast it to their error type).
pub(crate) type SharedError = Arc<dyn Any + Send + Sync>;

/// How a flight ended.
#[derive(Clone)]
pub(crate) enum Outcome<V> {
    /// The leader computed this value (and cached it).
    Done(V),
    /// The leader's computation failed with this error (not cached).
    Failed(SharedError),
    /// The leader panicked or was cancelled: try again.
    Abandoned,
}

/// One in-progress load of one key.
pub(crate) struct Flight<V> {
    /// `None` while the leader is computing.
    outcome: Mutex<Option<Outcome<V>>>,
    landed: Event,
    /// The key was written since the flight took off (see the module docs).
    outdated: AtomicBool,
}

impl<V: Clone> Flight<V> {
    fn new() -> Self {
        Self {
            outcome: Mutex::new(None),
            landed: Event::new(),
            outdated: AtomicBool::new(false),
        }
    }

    /// Blocks until the flight lands.
    pub(crate) fn wait(&self) -> Outcome<V> {
        loop {
            let listener = self.landed.listen();
            if let Some(outcome) = self.outcome.lock().clone() {
                return outcome;
            }
            listener.wait();
        }
    }

    /// Waits asynchronously until the flight lands.
    pub(crate) async fn wait_async(&self) -> Outcome<V> {
        loop {
            let listener = self.landed.listen();
            if let Some(outcome) = self.outcome.lock().clone() {
                return outcome;
            }
            listener.await;
        }
    }
}

/// One shard of the flights in the air: key → its flight.
type FlightMap<K, V> = Mutex<HashMap<K, Arc<Flight<V>>>>;

/// The flights in the air, sharded like the cache.
pub(crate) struct Flights<K, V> {
    shards: Box<[FlightMap<K, V>]>,
    /// Flights in the air: a write looks for the key's flight only if there are some.
    in_air: AtomicUsize,
}

/// What a caller that missed should do.
pub(crate) enum Role<'a, K: Hash + Eq, V: Clone> {
    /// Compute the value, then land the flight.
    Leader(LeaderGuard<'a, K, V>),
    /// Wait for the leader.
    Waiter(Arc<Flight<V>>),
}

impl<K: Hash + Eq, V> Flights<K, V> {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            in_air: AtomicUsize::new(0),
        }
    }

    fn shard(&self, hash: u64) -> &FlightMap<K, V> {
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    /// A write of `key` (`hash`): its flight, if one is in the air, must not keep its value.
    /// Called before the write lands. The memory tier calls it under the key's shard lock,
    /// where the leader checks before it inserts; `DiskCache` has no such lock, and its
    /// leader checks after its own insert and takes it back if outdated. Either way, the
    /// leader's value never stays over the write. One load when no flight is in the air.
    #[inline]
    pub(crate) fn outdate<Q>(&self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.in_air.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(flight) = self.shard(hash).lock().get(key) {
            flight.outdated.store(true, Ordering::SeqCst);
        }
    }

    /// A write that may concern any key (a tag's invalidation, emptying the cache): every
    /// flight in the air is outdated.
    pub(crate) fn outdate_all(&self) {
        if self.in_air.load(Ordering::SeqCst) == 0 {
            return;
        }
        for shard in self.shards.iter() {
            for flight in shard.lock().values() {
                flight.outdated.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// Joins the flight for `key`, or starts one and leads it.
    pub(crate) fn join(&self, hash: u64, key: &K) -> Role<'_, K, V> {
        let mut map = self.shard(hash).lock();
        if let Some(flight) = map.get(key) {
            return Role::Waiter(flight.clone());
        }
        let flight = Arc::new(Flight::new());
        map.insert(key.clone(), flight.clone());
        // Counted before the leader computes anything: a write that finds no flight in the
        // air happened before this one took off.
        self.in_air.fetch_add(1, Ordering::SeqCst);
        Role::Leader(LeaderGuard {
            flights: self,
            hash,
            key: Some(key.clone()),
            flight,
        })
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// Leads the flight for `key`, after waiting out (blocking) any flight already in the
    /// air. `Err` carries the result of a flight waited on: its value, or its error if it has
    /// the caller's error type.
    pub(crate) fn lead<E: Send + Sync + 'static>(
        &self,
        hash: u64,
        key: &K,
    ) -> Result<LeaderGuard<'_, K, V>, Result<V, Arc<E>>> {
        loop {
            match self.join(hash, key) {
                Role::Leader(flight) => return Ok(flight),
                Role::Waiter(flight) => {
                    if let Some(result) = landed(flight.wait()) {
                        return Err(result);
                    }
                }
            }
        }
    }

    /// [`lead`](Self::lead), awaiting instead of blocking.
    pub(crate) async fn lead_async<E: Send + Sync + 'static>(
        &self,
        hash: u64,
        key: &K,
    ) -> Result<LeaderGuard<'_, K, V>, Result<V, Arc<E>>> {
        loop {
            match self.join(hash, key) {
                Role::Leader(flight) => return Ok(flight),
                Role::Waiter(flight) => {
                    if let Some(result) = landed(flight.wait_async().await) {
                        return Err(result);
                    }
                }
            }
        }
    }
}

/// Held by the leader; lands the flight exactly once, as abandoned if dropped unlanded.
pub(crate) struct LeaderGuard<'a, K: Hash + Eq, V: Clone> {
    flights: &'a Flights<K, V>,
    hash: u64,
    /// Taken when the flight lands.
    key: Option<K>,
    flight: Arc<Flight<V>>,
}

impl<K: Hash + Eq, V: Clone> LeaderGuard<'_, K, V> {
    /// True if the key was written since the flight took off: its value must not be cached.
    pub(crate) fn outdated(&self) -> bool {
        self.flight.outdated.load(Ordering::SeqCst)
    }

    /// Lands the flight: waiters receive `outcome`, later callers start a new flight.
    pub(crate) fn land(mut self, outcome: Outcome<V>) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome<V>) {
        let Some(key) = self.key.take() else { return };
        *self.flight.outcome.lock() = Some(outcome);
        {
            let mut map = self.flights.shard(self.hash).lock();
            if map.get(&key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                map.remove(&key);
                self.flights.in_air.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.flight.landed.notify(usize::MAX);
    }
}

impl<K: Hash + Eq, V: Clone> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        // Still unlanded only if the leader panicked or its future was dropped.
        self.finish(Outcome::Abandoned);
    }
}

/// What a waiter makes of a landed flight: the value or (if it has the waiter's type) the
/// error; `None` means "lead a new flight" (abandoned, or another call site's error type).
fn landed<V, E: Send + Sync + 'static>(outcome: Outcome<V>) -> Option<Result<V, Arc<E>>> {
    match outcome {
        Outcome::Done(value) => Some(Ok(value)),
        Outcome::Failed(error) => error.downcast::<E>().ok().map(Err),
        Outcome::Abandoned => None,
    }
}
