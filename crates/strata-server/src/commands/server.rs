//! Server commands: INFO, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use strata_resp::Frame;

use super::{COMMANDS, Ctx, err, syntax_error, write_failed};
use crate::config::{Fsync, parse_size};
use crate::glob;
use crate::state::{Shared, resident_bytes};

/// The Redis version Strata reports to clients (the commands and replies it follows).
pub(crate) const REDIS_VERSION: &str = "7.2.0";

pub(crate) fn dbsize(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    Frame::Integer(ctx.shared.keyspace.len() as i64)
}

pub(crate) fn flush(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    if let Some(mode) = args.get(1)
        && (!(mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC"))
            || args.len() > 2)
    {
        return syntax_error();
    }
    match ctx.shared.keyspace.clear() {
        Ok(()) => Frame::ok(),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn time(_ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Frame::Array(vec![
        Frame::bulk(now.as_secs().to_string()),
        Frame::bulk(now.subsec_micros().to_string()),
    ])
}

/// `INFO [section …]`: server, clients, memory, stats, keyspace, commandstats, strata.
pub(crate) fn info(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let show = |section: &str| {
        wanted.is_empty()
            || wanted.iter().any(|w| {
                w == section
                    || w == "all"
                    || w == "everything"
                    || (w == "default" && section != "commandstats")
            })
    };
    let s = ctx.shared;
    let mut out = String::new();
    if show("server") {
        section_server(s, &mut out);
    }
    if show("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\r\n",
            s.stats.connected_clients.load(Ordering::Relaxed),
            s.runtime.read().maxclients
        );
    }
    if show("memory") {
        let rss = resident_bytes();
        let memory = s.keyspace.memory();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\n\
             used_memory_dataset:{}\r\nmaxmemory:{}\r\nmaxmemory_policy:allkeys-lfu\r\n\
             disk_bytes:{}\r\nmax_disk:{}\r\n\r\n",
            rss as f64 / f64::from(1 << 20),
            memory.weighted_size(),
            s.keyspace.memory().capacity(),
            s.keyspace.disk().map_or(0, |d| d.disk_bytes()),
            s.keyspace.disk().map_or(0, |d| d.max_bytes()),
        );
    }
    if show("stats") {
        let ks = &s.keyspace.stats;
        let memory = s.keyspace.memory().stats();
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
             keyspace_hits:{}\r\nkeyspace_misses:{}\r\ndisk_errors:{}\r\n\r\n",
            s.stats.connections_received.load(Ordering::Relaxed),
            s.stats.commands_processed.load(Ordering::Relaxed),
            s.stats.rejected_connections.load(Ordering::Relaxed),
            memory.evicted_expired,
            // A key evicted from memory lives on in the disk tier: only disk evictions lose keys.
            s.keyspace
                .disk()
                .map_or(memory.evicted_size, |d| d.stats().evictions),
            ks.hits.get(),
            ks.misses.get(),
            ks.disk_errors.load(Ordering::Relaxed),
        );
    }
    if show("commandstats") {
        out.push_str("# Commandstats\r\n");
        for (c, stat) in COMMANDS.iter().zip(&s.stats.per_command) {
            let calls = stat.calls.load(Ordering::Relaxed);
            if calls > 0 {
                let usec = stat.usec.load(Ordering::Relaxed);
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={calls},usec={usec},usec_per_call={:.2}\r\n",
                    c.name,
                    usec as f64 / calls as f64
                );
            }
        }
        out.push_str("\r\n");
    }
    if show("keyspace") {
        out.push_str("# Keyspace\r\n");
        let keys = s.keyspace.len();
        if keys > 0 {
            let _ = write!(out, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
        }
        out.push_str("\r\n");
    }
    if show("strata") {
        section_strata(s, &mut out);
    }
    Frame::Verbatim {
        format: *b"txt",
        text: Bytes::from(out),
    }
}

fn section_server(s: &Shared, out: &mut String) {
    let uptime = s.started.elapsed().as_secs();
    let _ = write!(
        out,
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nstrata_version:{}\r\nredis_mode:standalone\r\n\
         os:{} {}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{}\r\nexecutable:strata\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::process::id(),
        s.port.load(Ordering::Relaxed),
        uptime / 86_400,
    );
}

fn section_strata(s: &Shared, out: &mut String) {
    let m = s.keyspace.memory().stats();
    let _ = write!(
        out,
        "# Strata\r\nmemory_tier_entries:{}\r\nmemory_tier_bytes:{}\r\nmemory_tier_hits:{}\r\n\
         memory_tier_misses:{}\r\nmemory_tier_hit_ratio:{:.4}\r\nmemory_tier_evictions:{}\r\n",
        s.keyspace.memory().len(),
        s.keyspace.memory().weighted_size(),
        m.hits,
        m.misses,
        m.hit_ratio(),
        m.evicted_size,
    );
    if let Some(disk) = s.keyspace.disk() {
        let d = disk.stats();
        let _ = write!(
            out,
            "disk_tier_entries:{}\r\ndisk_tier_bytes:{}\r\ndisk_tier_hits:{}\r\ndisk_tier_misses:{}\r\n\
             disk_tier_hit_ratio:{:.4}\r\ndisk_tier_evictions:{}\r\ndisk_tier_corrupt_reads:{}\r\n\
             disk_tier_write_errors:{}\r\ndisk_tier_recovered_entries:{}\r\n",
            d.entries,
            d.disk_bytes,
            d.hits,
            d.misses,
            d.hit_ratio(),
            d.evictions,
            d.corrupt_reads,
            d.write_errors,
            d.recovered_entries,
        );
    }
    out.push_str("\r\n");
}

/// The settings `CONFIG GET` shows, with their current values. The password is never
/// shown (Redis shows it; Strata does not leak secrets).
fn settings(s: &Shared) -> Vec<(&'static str, String)> {
    let rt = s.runtime.read();
    let c = &s.config;
    vec![
        ("bind", c.bind.to_string()),
        ("port", s.port.load(Ordering::Relaxed).to_string()),
        (
            "dir",
            c.data_dir
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string()),
        ),
        (
            "data-dir",
            c.data_dir
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string()),
        ),
        ("maxmemory", s.keyspace.memory().capacity().to_string()),
        ("max-disk", c.max_disk.to_string()),
        ("maxmemory-policy", "allkeys-lfu".to_string()),
        (
            "appendfsync",
            match c.fsync {
                Fsync::Always => "always",
                Fsync::Everysec => "everysec",
                Fsync::No => "no",
            }
            .to_string(),
        ),
        (
            "requirepass",
            if rt.requirepass.is_some() {
                "(set)".into()
            } else {
                String::new()
            },
        ),
        ("maxclients", rt.maxclients.to_string()),
        ("max-value-size", rt.max_value_size.to_string()),
        ("proto-max-bulk-len", rt.max_value_size.to_string()),
        (
            "metrics-bind",
            c.metrics_bind.map_or(String::new(), |a| a.to_string()),
        ),
        ("save", String::new()),
        (
            "appendonly",
            if c.data_dir.is_some() { "yes" } else { "no" }.to_string(),
        ),
        ("databases", "1".to_string()),
        ("timeout", "0".to_string()),
    ]
}

pub(crate) fn config(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" if args.len() >= 3 => {
            let all = settings(ctx.shared);
            let mut pairs = Vec::new();
            for (name, value) in &all {
                if args[2..]
                    .iter()
                    .any(|p| glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
                {
                    pairs.push((Frame::bulk(*name), Frame::bulk(value.clone())));
                }
            }
            Frame::Map(pairs)
        }
        b"SET" if args.len() >= 4 && args.len().is_multiple_of(2) => {
            for pair in args[2..].chunks(2) {
                if let Err(e) = config_set(ctx.shared, pair[0], pair[1]) {
                    return e;
                }
            }
            Frame::ok()
        }
        b"RESETSTAT" if args.len() == 2 => {
            ctx.shared.stats.reset();
            Frame::ok()
        }
        b"GET" | b"SET" | b"RESETSTAT" => err(format!(
            "ERR wrong number of arguments for 'config|{}' command",
            String::from_utf8_lossy(args[1]).to_ascii_lowercase()
        )),
        _ => err(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(args[1])
        )),
    }
}

fn config_set(s: &Shared, name: &[u8], value: &[u8]) -> Result<(), Frame> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let text = String::from_utf8_lossy(value).into_owned();
    let failed = |why: &str| {
        err(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    let mut rt = s.runtime.write();
    match name.as_str() {
        "requirepass" => rt.requirepass = (!text.is_empty()).then_some(text),
        "maxclients" => match text.parse::<usize>() {
            Ok(n) if n >= 1 => rt.maxclients = n,
            _ => return Err(failed("argument must be a positive integer")),
        },
        "max-value-size" | "proto-max-bulk-len" => match parse_size(&text) {
            Ok(n) if (1..=4 << 30).contains(&n) => rt.max_value_size = n,
            _ => return Err(failed("argument must be a memory value between 1 and 4gb")),
        },
        "maxmemory" => match parse_size(&text) {
            // A smaller bound evicts (to the disk tier, when there is one) before replying.
            Ok(n) if n >= 1 << 20 => {
                drop(rt);
                s.keyspace.set_maxmemory(n);
            }
            _ => return Err(failed("argument must be a memory value of at least 1mb")),
        },
        "bind" | "port" | "dir" | "data-dir" | "max-disk" | "appendfsync" | "metrics-bind" => {
            return Err(failed("can't set immutable config"));
        }
        _ => {
            return Err(err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )));
        }
    }
    Ok(())
}
