//! `strata serve` settings: defaults, an optional config file, then command-line flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

/// Strata: a Redis-protocol cache server on Strata's memory and disk tiers.
///
/// Any Redis client can use it. Keys live in a memory tier bounded by --maxmemory (W-TinyLFU
/// eviction) in front of a crash-safe disk tier bounded by --max-disk, so the cache can be
/// larger than RAM and survives restarts.
#[derive(Debug, Parser)]
#[command(name = "strata", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `strata`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the cache server.
    Serve(ServeArgs),
}

/// Flags of `strata serve`; each overrides the config file's setting of the same name.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// Config file: one `name value` per line (the flag names below, without `--`); `#`
    /// starts a comment.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on. Anything but a loopback address needs --requirepass (protected
    /// mode). [default: 127.0.0.1]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// TCP port (0 picks a free one; the chosen port is logged). [default: 6379]
    #[arg(long)]
    pub port: Option<u16>,
    /// Directory of the disk tier. [default: ./strata-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run without a disk tier: memory only, nothing survives a restart.
    #[arg(long)]
    pub no_disk: bool,
    /// Memory tier bound, e.g. 512mb, 2gb. [default: 1gb]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub maxmemory: Option<u64>,
    /// Disk tier bound. [default: 8gb]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_disk: Option<u64>,
    /// When the disk tier syncs: always, everysec or no. [default: everysec]
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<Fsync>,
    /// Password clients must AUTH with. Prefer the STRATA_REQUIREPASS environment variable
    /// or the config file: a flag is visible to other users in `ps`.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "STRATA_REQUIREPASS",
        hide_env_values = true
    )]
    pub requirepass: Option<String>,
    /// Most simultaneous clients. [default: 10000]
    #[arg(long, value_name = "N")]
    pub maxclients: Option<usize>,
    /// Largest value (and bulk string) a client may send. [default: 512mb]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_value_size: Option<u64>,
    /// Serve Prometheus metrics over HTTP at this address (GET /metrics). [default: off]
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_bind: Option<SocketAddr>,
    /// Threads serving clients. One thread is Redis's model and leaves the other cores to
    /// the clients on the same machine. [default: the number of CPUs]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// The disk tier's sync policy, named like Redis's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    /// Sync every write before replying.
    Always,
    /// Sync once a second (a crash loses at most the last second of writes).
    Everysec,
    /// Never sync; the OS writes data back when it likes.
    No,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listening address.
    pub bind: IpAddr,
    /// Listening port (0: any free one).
    pub port: u16,
    /// The disk tier's directory; `None` for memory only.
    pub data_dir: Option<PathBuf>,
    /// The memory tier's bound in bytes.
    pub maxmemory: u64,
    /// The disk tier's bound in bytes.
    pub max_disk: u64,
    /// The disk tier's sync policy.
    pub fsync: Fsync,
    /// The password clients must send with AUTH, if any.
    pub requirepass: Option<String>,
    /// Most simultaneous clients.
    pub maxclients: usize,
    /// Largest bulk string a client may send.
    pub max_value_size: u64,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_bind: Option<SocketAddr>,
    /// Threads serving clients.
    pub threads: usize,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the config file is wrong.
    #[error("{path}:{line}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A non-loopback address without a password (protected mode).
    #[error(
        "refusing to listen on {0} without --requirepass: anyone who can reach it could read \
         and change the cache (protected mode). Bind 127.0.0.1, or set a password."
    )]
    Protected(IpAddr),
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `args.config` (if any), then the flags in `args`.
    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let mut merged = ServeArgs::default();
        if let Some(path) = &args.config {
            merged = read_file(path)?;
        }
        let a = args.clone();
        let c = Self {
            bind: a
                .bind
                .or(merged.bind)
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: a.port.or(merged.port).unwrap_or(6379),
            data_dir: if a.no_disk || merged.no_disk {
                None
            } else {
                Some(
                    a.data_dir
                        .or(merged.data_dir)
                        .unwrap_or_else(|| PathBuf::from("strata-data")),
                )
            },
            maxmemory: a.maxmemory.or(merged.maxmemory).unwrap_or(1 << 30),
            max_disk: a.max_disk.or(merged.max_disk).unwrap_or(8 << 30),
            fsync: a.fsync.or(merged.fsync).unwrap_or(Fsync::Everysec),
            requirepass: a
                .requirepass
                .or(merged.requirepass)
                .filter(|p| !p.is_empty()),
            maxclients: a.maxclients.or(merged.maxclients).unwrap_or(10_000),
            max_value_size: a
                .max_value_size
                .or(merged.max_value_size)
                .unwrap_or(512 << 20),
            metrics_bind: a.metrics_bind.or(merged.metrics_bind),
            threads: a.threads.or(merged.threads).unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
        };
        if !c.bind.is_loopback() && c.requirepass.is_none() {
            return Err(ConfigError::Protected(c.bind));
        }
        if c.maxmemory < 1 << 20 {
            return Err(ConfigError::Invalid(format!(
                "maxmemory must be at least 1mb, got {}",
                c.maxmemory
            )));
        }
        if c.maxclients == 0 {
            return Err(ConfigError::Invalid("maxclients must be at least 1".into()));
        }
        if !(1..=1024).contains(&c.threads) {
            return Err(ConfigError::Invalid(format!(
                "threads must be between 1 and 1024, got {}",
                c.threads
            )));
        }
        if c.max_value_size == 0 || c.max_value_size > 4 << 30 {
            return Err(ConfigError::Invalid(format!(
                "max-value-size must be between 1 and 4gb, got {}",
                c.max_value_size
            )));
        }
        Ok(c)
    }
}

/// Parses `512`, `64kb`, `512mb`, `2gb` (and `k`, `m`, `g` for powers of 1000), as Redis does.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return Err(format!("unknown size unit in {text:?} (use b, kb, mb, gb)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("invalid size {text:?}"))
}

fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut args = ServeArgs::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = value.trim().trim_matches('"');
        let fail = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let bad = |what: &str| fail(format!("invalid {name} {value:?}: expected {what}"));
        match name {
            "bind" => args.bind = Some(value.parse().map_err(|_| bad("an IP address"))?),
            "port" => args.port = Some(value.parse().map_err(|_| bad("a port number"))?),
            "data-dir" => args.data_dir = Some(PathBuf::from(value)),
            "no-disk" => args.no_disk = matches!(value, "yes" | "true" | ""),
            "maxmemory" => args.maxmemory = Some(parse_size(value).map_err(fail)?),
            "max-disk" => args.max_disk = Some(parse_size(value).map_err(fail)?),
            "fsync" => {
                args.fsync = Some(
                    <Fsync as clap::ValueEnum>::from_str(value, true)
                        .map_err(|_| bad("always, everysec or no"))?,
                );
            }
            "requirepass" => args.requirepass = Some(value.to_string()),
            "maxclients" => args.maxclients = Some(value.parse().map_err(|_| bad("a number"))?),
            "threads" => args.threads = Some(value.parse().map_err(|_| bad("a number"))?),
            "max-value-size" => args.max_value_size = Some(parse_size(value).map_err(fail)?),
            "metrics-bind" => {
                args.metrics_bind = Some(value.parse().map_err(|_| bad("ADDR:PORT"))?)
            }
            other => return Err(fail(format!("unknown setting {other:?}"))),
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_redis() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64kb"), Ok(65536));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("2m"), Ok(2_000_000));
        assert!(parse_size("12xb").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999gb").is_err());
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.conf");
        std::fs::write(
            &file,
            "# comment\nport 7000\nmaxmemory 64mb\nfsync always\nthreads 3\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            port: Some(7001),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(
            (c.port, c.maxmemory, c.fsync, c.threads),
            (7001, 64 << 20, Fsync::Always, 3)
        );
        let none = ServeArgs {
            threads: Some(0),
            ..ServeArgs::default()
        };
        assert!(
            Config::resolve(&none)
                .unwrap_err()
                .to_string()
                .contains("threads")
        );
        assert!(c.bind.is_loopback());
        assert_eq!(c.data_dir, Some(PathBuf::from("strata-data")));

        std::fs::write(&file, "port 7000\nportt 1\n").unwrap();
        let err = Config::resolve(&args).unwrap_err().to_string();
        assert!(
            err.contains("strata.conf:2") && err.contains("portt"),
            "{err}"
        );
    }

    #[test]
    fn a_public_address_needs_a_password() {
        let open = ServeArgs {
            bind: Some("0.0.0.0".parse().unwrap()),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Config::resolve(&open),
            Err(ConfigError::Protected(_))
        ));
        let guarded = ServeArgs {
            requirepass: Some("s3cret".into()),
            ..open
        };
        assert!(Config::resolve(&guarded).is_ok());
    }
}
