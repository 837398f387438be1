//! The eviction policy's parts: TinyLFU's frequency sketch, and the two ways the window is
//! sized: miniature simulations (unit-weight caches) and a hill climber (weighted caches).
//! The policy itself (W-TinyLFU over CLOCK-ordered queues) lives in `memory/shard.rs`, next to
//! the entries it orders.

pub(crate) mod climber;
pub(crate) mod minisim;
pub(crate) mod sketch;
