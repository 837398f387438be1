//! The eviction policy's parts: TinyLFU's frequency sketch and the window-size hill climber.
//! The policy itself (W-TinyLFU over CLOCK-ordered queues) lives in `memory/shard.rs`, next to
//! the entries it orders.

pub(crate) mod climber;
pub(crate) mod sketch;
