//! The eviction policy's parts: TinyLFU's frequency sketch, S3-FIFO's ghost, and the two ways
//! the policy's shape is chosen: miniature simulations (unit-weight caches: window size, or
//! S3-FIFO) and a hill climber (weighted caches: window size). The policy itself (W-TinyLFU or
//! S3-FIFO over CLOCK-ordered queues) lives in `memory/shard.rs`, next to the entries it
//! orders.

pub(crate) mod climber;
pub(crate) mod eviction;
pub(crate) mod ghost;
pub(crate) mod minisim;
pub(crate) mod sketch;
