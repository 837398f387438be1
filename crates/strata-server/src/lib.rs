//! `strata serve`: a Redis-protocol cache server on Strata's memory and disk tiers.
//!
//! Any Redis client can talk to it (RESP2 and RESP3, pipelining, `MULTI`/`EXEC`). Keys live in
//! the memory tier (bounded by `maxmemory`, W-TinyLFU) in front of the disk tier (bounded by
//! `max-disk`, crash-safe), so the cache can exceed RAM and survives restarts. See
//! `docs/server.md` for how it works; the README lists the commands.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use strata_server::{Config, ServeArgs};
//! let config = Config::resolve(&ServeArgs { port: Some(0), no_disk: true, ..ServeArgs::default() })?;
//! let server = strata_server::start(config).await?;
//! println!("listening on {}", server.local_addr()?);
//! server.run(strata_server::signals()).await;
//! # Ok(()) }
//! ```

mod client;
mod commands;
mod compact;
mod config;
mod glob;
mod keyspace;
mod metrics;
mod server;
mod state;

pub use config::{Cli, Command, Config, ConfigError, Fsync, ServeArgs, parse_size};
pub use server::{Server, StartError, signals, start};
