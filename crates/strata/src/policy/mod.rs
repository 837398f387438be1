//! The eviction policy's parts: TinyLFU's frequency sketch, S3-FIFO's ghost, and the
//! miniature simulations that choose the policy's shape (window size, sketch aging, or
//! S3-FIFO). The policy itself (W-TinyLFU or S3-FIFO over CLOCK-ordered queues) lives in
//! `memory/shard/eviction.rs`, next to the entries it orders.

pub(crate) mod eviction;
pub(crate) mod ghost;
pub(crate) mod minisim;
pub(crate) mod sketch;
