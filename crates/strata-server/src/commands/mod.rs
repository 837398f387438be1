//! The command table and dispatch: authentication, `MULTI` queueing, arity, locking,
//! statistics. Each group of commands lives in its own module.

mod connection;
mod keys;
mod long_double;
mod server;
mod strata_ext;
mod strings;
mod transactions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use strata_resp::{Frame, Protocol};

use crate::keyspace::WriteError;
use crate::state::{ClientInfo, LocalStats, Shared};

/// A connection's state.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) protocol: Protocol,
    pub(crate) authenticated: bool,
    pub(crate) name: Option<String>,
    /// Commands queued since `MULTI` (table index, arguments).
    pub(crate) multi: Option<Vec<(usize, Vec<Bytes>)>>,
    /// A command queued since `MULTI` was rejected: `EXEC` aborts.
    pub(crate) multi_failed: bool,
    pub(crate) watched: Vec<Bytes>,
    /// Set when a watched key is written.
    pub(crate) dirty: Arc<AtomicBool>,
    /// Close after replying (`QUIT`).
    pub(crate) quit: bool,
    /// What `CLIENT LIST` shows of this client.
    pub(crate) info: Arc<ClientInfo>,
    /// Counts not yet added to the server's.
    pub(crate) stats: LocalStats,
    /// The key list of the `SCAN` iteration in progress, sorted by scan position.
    pub(crate) scan: Option<Vec<(u64, Bytes)>>,
}

impl Session {
    pub(crate) fn new(id: u64, authenticated: bool, info: Arc<ClientInfo>) -> Self {
        Self {
            info,
            stats: LocalStats::default(),
            scan: None,
            id,
            protocol: Protocol::Resp2,
            authenticated,
            name: None,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            dirty: Arc::new(AtomicBool::new(false)),
            quit: false,
        }
    }
}

/// What a command runs with.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) session: &'a mut Session,
}

/// How a command locks the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Shared: one key at a time (keys lock themselves for read-modify-write).
    Shared,
    /// Exclusive: several keys atomically, or a transaction.
    Exclusive,
    /// Exclusive with several keys, shared with one (`DEL k` need not stop the world).
    PerKeys,
    /// None: the command does not touch keys.
    None,
}

/// One command.
pub(crate) struct Command {
    /// Lower case.
    pub(crate) name: &'static str,
    /// Redis's convention: N exactly, or -N at least N (the name included).
    pub(crate) arity: i32,
    /// `COMMAND INFO` flags.
    pub(crate) flags: &'static [&'static str],
    /// First key, last key, step (`COMMAND INFO`).
    pub(crate) keys: (i32, i32, i32),
    pub(crate) lock: Lock,
    pub(crate) run: fn(&mut Ctx<'_>, &[&[u8]]) -> Frame,
}

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const RF: &[&str] = &["readonly", "fast"];
const R: &[&str] = &["readonly"];
const F: &[&str] = &["fast"];
const NOAUTH: &[&str] = &["noauth", "fast"];
const ADMIN: &[&str] = &["admin"];

macro_rules! command {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $lock:ident, $run:path) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            lock: Lock::$lock,
            run: $run,
        }
    };
}

/// Every command Strata implements.
pub(crate) static COMMANDS: &[Command] = &[
    // connection
    command!("ping", -1, F, (0, 0, 0), None, connection::ping),
    command!("echo", 2, F, (0, 0, 0), None, connection::echo),
    command!("hello", -1, NOAUTH, (0, 0, 0), None, connection::hello),
    command!("auth", -2, NOAUTH, (0, 0, 0), None, connection::auth),
    command!("select", 2, F, (0, 0, 0), None, connection::select),
    command!("client", -2, &[], (0, 0, 0), None, connection::client),
    command!("quit", -1, NOAUTH, (0, 0, 0), None, connection::quit),
    command!("reset", 1, &["noauth"], (0, 0, 0), None, connection::reset),
    command!("command", -1, &[], (0, 0, 0), None, connection::command),
    // server
    command!("info", -1, &[], (0, 0, 0), None, server::info),
    command!("config", -2, ADMIN, (0, 0, 0), None, server::config),
    command!("dbsize", 1, RF, (0, 0, 0), Shared, server::dbsize),
    command!("flushdb", -1, W, (0, 0, 0), Exclusive, server::flush),
    command!("flushall", -1, W, (0, 0, 0), Exclusive, server::flush),
    command!("time", 1, F, (0, 0, 0), None, server::time),
    // strings
    command!("get", 2, RF, (1, 1, 1), Shared, strings::get),
    command!("set", -3, W, (1, 1, 1), Shared, strings::set),
    command!("setex", 4, W, (1, 1, 1), Shared, strings::setex),
    command!("psetex", 4, W, (1, 1, 1), Shared, strings::psetex),
    command!("setnx", 3, WF, (1, 1, 1), Shared, strings::setnx),
    command!("getset", 3, WF, (1, 1, 1), Shared, strings::getset),
    command!("getdel", 2, WF, (1, 1, 1), Shared, strings::getdel),
    command!("getex", -2, WF, (1, 1, 1), Shared, strings::getex),
    command!("mget", -2, RF, (1, -1, 1), Shared, strings::mget),
    command!("mset", -3, W, (1, -1, 2), Exclusive, strings::mset),
    command!("msetnx", -3, W, (1, -1, 2), Exclusive, strings::msetnx),
    command!("append", 3, W, (1, 1, 1), Shared, strings::append),
    command!("strlen", 2, RF, (1, 1, 1), Shared, strings::strlen),
    command!("getrange", 4, R, (1, 1, 1), Shared, strings::getrange),
    command!("setrange", 4, W, (1, 1, 1), Shared, strings::setrange),
    command!("incr", 2, WF, (1, 1, 1), Shared, strings::incr),
    command!("decr", 2, WF, (1, 1, 1), Shared, strings::decr),
    command!("incrby", 3, WF, (1, 1, 1), Shared, strings::incrby),
    command!("decrby", 3, WF, (1, 1, 1), Shared, strings::decrby),
    command!(
        "incrbyfloat",
        3,
        WF,
        (1, 1, 1),
        Shared,
        strings::incrbyfloat
    ),
    // keys
    command!("del", -2, W, (1, -1, 1), PerKeys, keys::del),
    command!("unlink", -2, WF, (1, -1, 1), PerKeys, keys::del),
    command!("exists", -2, RF, (1, -1, 1), Shared, keys::exists),
    command!("expire", -3, WF, (1, 1, 1), Shared, keys::expire),
    command!("pexpire", -3, WF, (1, 1, 1), Shared, keys::pexpire),
    command!("expireat", -3, WF, (1, 1, 1), Shared, keys::expireat),
    command!("pexpireat", -3, WF, (1, 1, 1), Shared, keys::pexpireat),
    command!("ttl", 2, RF, (1, 1, 1), Shared, keys::ttl),
    command!("pttl", 2, RF, (1, 1, 1), Shared, keys::pttl),
    command!("expiretime", 2, RF, (1, 1, 1), Shared, keys::expiretime),
    command!("pexpiretime", 2, RF, (1, 1, 1), Shared, keys::pexpiretime),
    command!("persist", 2, WF, (1, 1, 1), Shared, keys::persist),
    command!("type", 2, RF, (1, 1, 1), Shared, keys::type_),
    command!("keys", 2, R, (0, 0, 0), Shared, keys::keys),
    command!("scan", -2, R, (0, 0, 0), Shared, keys::scan),
    command!("randomkey", 1, R, (0, 0, 0), Shared, keys::randomkey),
    command!("rename", 3, W, (1, 2, 1), Exclusive, keys::rename),
    command!("renamenx", 3, WF, (1, 2, 1), Exclusive, keys::renamenx),
    // transactions
    command!("multi", 1, F, (0, 0, 0), None, transactions::multi),
    command!(
        "exec",
        1,
        &["noscript"],
        (0, 0, 0),
        Exclusive,
        transactions::exec
    ),
    command!("discard", 1, F, (0, 0, 0), None, transactions::discard),
    command!("watch", -2, F, (1, -1, 1), None, transactions::watch),
    command!("unwatch", 1, F, (0, 0, 0), None, transactions::unwatch),
    // Strata's own
    command!("strata.tag", -3, W, (1, 1, 1), Shared, strata_ext::tag),
    command!(
        "strata.invalidate",
        2,
        W,
        (0, 0, 0),
        Exclusive,
        strata_ext::invalidate
    ),
];

static BY_NAME: LazyLock<HashMap<&'static str, usize>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name, i))
        .collect()
});

/// The table index of a command name (any case).
pub(crate) fn lookup(name: &[u8]) -> Option<usize> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (l, c) in lower.iter_mut().zip(name) {
        *l = c.to_ascii_lowercase();
    }
    BY_NAME.get(std::str::from_utf8(lower).ok()?).copied()
}

/// Commands that run at once inside `MULTI` instead of being queued.
const MULTI_CONTROL: &[&str] = &["exec", "discard", "multi", "watch", "quit", "reset"];
/// Commands an unauthenticated client may run.
const NO_AUTH: &[&str] = &["auth", "hello", "quit", "reset"];

/// Forgets a session's watches (on disconnect).
pub(crate) fn transactions_unwatch(ctx: &mut Ctx<'_>) {
    transactions::unwatch_all(ctx);
}

pub(crate) fn err(text: impl Into<String>) -> Frame {
    Frame::error(text)
}

pub(crate) fn syntax_error() -> Frame {
    err("ERR syntax error")
}

pub(crate) fn not_an_integer() -> Frame {
    err("ERR value is not an integer or out of range")
}

pub(crate) fn write_failed(e: &WriteError) -> Frame {
    match e {
        WriteError::OutOfMemory => err(format!("OOM {e}")),
        WriteError::Disk(_) => err(format!("ERR {e}")),
    }
}

/// Parses an integer argument as Redis's `string2ll` does: an optional `-`, then digits with
/// no leading zero ("0" alone excepted). `+5`, `01`, `-0` and ` 1` are not integers to Redis
/// (Rust's `i64::from_str` takes the first three).
pub(crate) fn int(arg: &[u8]) -> Result<i64, Frame> {
    let digits = arg.strip_prefix(b"-").unwrap_or(arg);
    let canonical = arg == b"0"
        || (digits.first().is_some_and(|d| (b'1'..=b'9').contains(d))
            && digits.iter().all(u8::is_ascii_digit));
    if !canonical {
        return Err(not_an_integer());
    }
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(not_an_integer)
}

/// Runs `f` on `n` arguments read by `arg`, gathered on the stack when there are at most 16
/// (a pipelined command should not allocate).
pub(crate) fn with_args<'a, R>(
    n: usize,
    arg: impl Fn(usize) -> &'a [u8],
    f: impl FnOnce(&[&'a [u8]]) -> R,
) -> R {
    const ON_STACK: usize = 16;
    if n <= ON_STACK {
        let mut args: [&[u8]; ON_STACK] = [&[]; ON_STACK];
        for (i, slot) in args[..n].iter_mut().enumerate() {
            *slot = arg(i);
        }
        f(&args[..n])
    } else {
        f(&(0..n).map(arg).collect::<Vec<_>>())
    }
}

/// Runs one command for a client.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let index = lookup(args[0]);
    let name = index.map(|i| COMMANDS[i].name);
    if !ctx.session.authenticated && !name.is_some_and(|n| NO_AUTH.contains(&n)) {
        return err("NOAUTH Authentication required.");
    }
    let Some(index) = index else {
        if ctx.session.multi.is_some() {
            ctx.session.multi_failed = true;
        }
        return unknown_command(args);
    };
    let command = &COMMANDS[index];
    if !arity_ok(command.arity, args.len()) {
        if ctx.session.multi.is_some() {
            ctx.session.multi_failed = true;
        }
        return err(format!(
            "ERR wrong number of arguments for '{}' command",
            command.name
        ));
    }
    if let Some(queue) = &mut ctx.session.multi
        && !MULTI_CONTROL.contains(&command.name)
    {
        queue.push((
            index,
            args.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
        ));
        return Frame::simple("QUEUED");
    }
    ctx.session
        .info
        .last_command
        .store(index, Ordering::Relaxed);
    let reply = {
        let keyspace = &ctx.shared.keyspace;
        let _guard = match command.lock {
            Lock::Shared => Guard::Shared(keyspace.shared()),
            Lock::Exclusive => Guard::Exclusive(keyspace.exclusive()),
            Lock::PerKeys if args.len() > 2 => Guard::Exclusive(keyspace.exclusive()),
            Lock::PerKeys => Guard::Shared(keyspace.shared()),
            Lock::None => Guard::None,
        };
        (command.run)(ctx, args)
    };
    ctx.session.stats.count(index);
    reply
}

/// Runs a queued command inside `EXEC` (the keyspace is already locked exclusively).
pub(crate) fn run_queued(ctx: &mut Ctx<'_>, index: usize, args: &[&[u8]]) -> Frame {
    let reply = (COMMANDS[index].run)(ctx, args);
    ctx.session.stats.count(index);
    reply
}

/// The keyspace lock a command holds while it runs.
enum Guard<'a> {
    Shared(#[expect(dead_code, reason = "held for its Drop")] crate::keyspace::SharedGuard<'a>),
    Exclusive(
        #[expect(dead_code, reason = "held for its Drop")] crate::keyspace::ExclusiveGuard<'a>,
    ),
    None,
}

fn arity_ok(arity: i32, given: usize) -> bool {
    let given = given as i64;
    let arity = i64::from(arity);
    if arity >= 0 {
        given == arity
    } else {
        given >= -arity
    }
}

/// Redis 7's wording: `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
fn unknown_command(args: &[&[u8]]) -> Frame {
    let shown = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        s.chars().take(128).collect::<String>()
    };
    let rest: String = args[1..]
        .iter()
        .map(|a| format!("'{}' ", shown(a)))
        .collect();
    err(format!(
        "ERR unknown command '{}', with args beginning with: {rest}",
        shown(args[0])
    ))
}

#[cfg(test)]
mod tests {
    use super::int;

    #[test]
    fn integers_parse_as_redis_parses_them() {
        for (text, value) in [
            ("0", 0),
            ("-1", -1),
            ("10", 10),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(int(text.as_bytes()).ok(), Some(value), "{text}");
        }
        for text in [
            "",
            "-",
            "+5",
            "01",
            "-0",
            " 1",
            "1 ",
            "1e3",
            "9223372036854775808",
        ] {
            assert!(int(text.as_bytes()).is_err(), "{text:?} is not an integer");
        }
    }
}
