//! String commands.

use bytes::{Bytes, BytesMut};
use strata_resp::Frame;

use super::long_double::{Float, LongDouble};
use super::{Ctx, err, int, not_an_integer, syntax_error, write_failed};
use crate::keyspace::{Entry, KeyGuard, WriteError, now_ms};

/// Largest string `SETRANGE` and `APPEND` may build: the same limit as a bulk string a
/// client may send (`--max-value-size`, Redis's `proto-max-bulk-len`).
fn max_string(ctx: &Ctx<'_>) -> usize {
    usize::try_from(ctx.shared.runtime.read().max_value_size).unwrap_or(usize::MAX)
}

fn value_or_null(entry: Option<Entry>) -> Frame {
    entry.map_or(Frame::Null, |e| Frame::Bulk(e.value_bytes()))
}

pub(crate) fn get(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    value_or_null(ctx.shared.keyspace.lookup(args[1]))
}

/// A new expiry from `EX`/`PX`/`EXAT`/`PXAT` arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expiry {
    Keep,
    At(u64),
    Persist,
    Unchanged,
}

/// True for the options that take an expiry time.
fn is_expiry_option(option: &[u8]) -> bool {
    [&b"EX"[..], b"PX", b"EXAT", b"PXAT"]
        .iter()
        .any(|o| option.eq_ignore_ascii_case(o))
}

/// Parses an expiry option's number for `command`; Redis rejects ≤ 0 and overflow. Like
/// Redis, callers check every option's name first and the number last: a syntax error wins.
fn expiry(command: &str, option: &[u8], arg: &[u8]) -> Result<Expiry, Frame> {
    let n = int(arg)?;
    let invalid = || err(format!("ERR invalid expire time in '{command}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let n = n as u64;
    let at = match option.to_ascii_uppercase().as_slice() {
        b"EX" => n.checked_mul(1000).and_then(|ms| ms.checked_add(now_ms())),
        b"PX" => n.checked_add(now_ms()),
        b"EXAT" => n.checked_mul(1000),
        b"PXAT" => Some(n),
        _ => return Err(syntax_error()),
    };
    at.filter(|&at| at < i64::MAX as u64)
        .map(Expiry::At)
        .ok_or_else(invalid)
}

pub(crate) fn set(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let (mut nx, mut xx, mut get, mut exp) = (false, false, false, Expiry::Unchanged);
    // Where the expiry option is (its number follows it).
    let mut time: Option<usize> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get = true,
            // As in Redis, an option may come again (the last one counts), but KEEPTTL and
            // the four expiry options exclude one another.
            b"KEEPTTL" if time.is_none() => exp = Expiry::Keep,
            option
                if is_expiry_option(option)
                    && i + 1 < args.len()
                    && time.is_none_or(|option| args[option].eq_ignore_ascii_case(&opt))
                    && exp != Expiry::Keep =>
            {
                time = Some(i);
                i += 1;
            }
            _ => return syntax_error(),
        }
        i += 1;
    }
    if let Some(option) = time {
        exp = match expiry("set", args[option], args[option + 1]) {
            Ok(e) => e,
            Err(e) => return e,
        };
    }
    let key = ctx.shared.keyspace.lock(args[1]);
    // A plain SET needs no read of the old value.
    let needs_old = nx || xx || get || exp == Expiry::Keep;
    let old = if needs_old { key.get() } else { None };
    if get {
        count_lookup(ctx, old.is_some());
    }
    let reply_old = || {
        if get {
            value_or_null(old.clone())
        } else {
            Frame::Null
        }
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return reply_old();
    }
    let expires_at = match exp {
        Expiry::Keep => old.as_ref().and_then(Entry::expires_at),
        Expiry::At(at) => Some(at),
        Expiry::Persist | Expiry::Unchanged => None,
    };
    let entry = Entry::new(args[2]).with_expiry(expires_at);
    match key.set(entry) {
        Ok(()) if get => reply_old(),
        Ok(()) => Frame::ok(),
        Err(e) => write_failed(&e),
    }
}

fn count_lookup(ctx: &Ctx<'_>, hit: bool) {
    let stats = &ctx.shared.keyspace.stats;
    let counter = if hit { &stats.hits } else { &stats.misses };
    counter.add(1);
}

fn set_with_expiry(ctx: &mut Ctx<'_>, args: &[&[u8]], option: &[u8], command: &str) -> Frame {
    let at = match expiry(command, option, args[2]) {
        Ok(Expiry::At(at)) => at,
        Ok(_) => return syntax_error(),
        Err(e) => return e,
    };
    let entry = Entry::new(args[3]).with_expiry(Some(at));
    match ctx.shared.keyspace.lock(args[1]).set(entry) {
        Ok(()) => Frame::ok(),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn setex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    set_with_expiry(ctx, args, b"EX", "setex")
}

pub(crate) fn psetex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    set_with_expiry(ctx, args, b"PX", "psetex")
}

pub(crate) fn setnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let key = ctx.shared.keyspace.lock(args[1]);
    if key.get().is_some() {
        return Frame::Integer(0);
    }
    match key.set(Entry::new(args[2])) {
        Ok(()) => Frame::Integer(1),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn getset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let key = ctx.shared.keyspace.lock(args[1]);
    let old = key.get();
    count_lookup(ctx, old.is_some());
    match key.set(Entry::new(args[2])) {
        Ok(()) => value_or_null(old),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn getdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let key = ctx.shared.keyspace.lock(args[1]);
    let old = key.get();
    count_lookup(ctx, old.is_some());
    if old.is_some()
        && let Err(e) = key.remove()
    {
        return write_failed(&e);
    }
    value_or_null(old)
}

pub(crate) fn getex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let timed = args.len() == 4 && is_expiry_option(args[2]);
    let mut exp = match args.len() {
        2 => Expiry::Unchanged,
        3 if args[2].eq_ignore_ascii_case(b"PERSIST") => Expiry::Persist,
        4 if timed => Expiry::Unchanged,
        _ => return syntax_error(),
    };
    let key = ctx.shared.keyspace.lock(args[1]);
    let Some(entry) = key.get() else {
        count_lookup(ctx, false);
        return Frame::Null;
    };
    count_lookup(ctx, true);
    // Redis reads the key before it checks the time: a missing key is nil, whatever the time.
    if timed {
        exp = match expiry("getex", args[2], args[3]) {
            Ok(e) => e,
            Err(e) => return e,
        };
    }
    let expires_at = match exp {
        Expiry::Unchanged | Expiry::Keep => return Frame::Bulk(entry.value_bytes()),
        // Nothing to remove: not a write (a WATCH on the key stays untouched, as in Redis).
        Expiry::Persist if entry.expires_at().is_none() => {
            return Frame::Bulk(entry.value_bytes());
        }
        Expiry::Persist => None,
        Expiry::At(at) => Some(at),
    };
    let value = entry.value_bytes();
    match key.set(entry.with_expiry(expires_at)) {
        Ok(()) => Frame::Bulk(value),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn mget(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    Frame::Array(
        args[1..]
            .iter()
            .map(|k| value_or_null(ctx.shared.keyspace.lookup(k)))
            .collect(),
    )
}

pub(crate) fn mset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    if args.len().is_multiple_of(2) {
        return err("ERR wrong number of arguments for 'mset' command");
    }
    if let Err(e) = fit_all(ctx, args) {
        return write_failed(&e);
    }
    for pair in args[1..].chunks(2) {
        if let Err(e) = ctx.shared.keyspace.lock(pair[0]).set(Entry::new(pair[1])) {
            return write_failed(&e);
        }
    }
    Frame::ok()
}

pub(crate) fn msetnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    if args.len().is_multiple_of(2) {
        return err("ERR wrong number of arguments for 'msetnx' command");
    }
    if let Err(e) = fit_all(ctx, args) {
        return write_failed(&e);
    }
    let keyspace = &ctx.shared.keyspace;
    if args[1..]
        .chunks(2)
        .any(|pair| keyspace.peek(pair[0]).is_some())
    {
        return Frame::Integer(0);
    }
    for pair in args[1..].chunks(2) {
        if let Err(e) = keyspace.lock(pair[0]).set(Entry::new(pair[1])) {
            return write_failed(&e);
        }
    }
    Frame::Integer(1)
}

/// Checks every (key, value) pair of an MSET before any is written: one value too large
/// refuses the whole command, as Redis does.
fn fit_all(ctx: &Ctx<'_>, args: &[&[u8]]) -> Result<(), WriteError> {
    args[1..]
        .chunks(2)
        .try_for_each(|pair| ctx.shared.keyspace.fits(pair[0], pair[1].len()))
}

/// Replaces the value of a locked key, keeping its expiry and tags.
fn replace_value(key: &KeyGuard<'_>, old: Option<Entry>, value: Bytes) -> Result<(), Frame> {
    let entry = match old {
        Some(old) => old.with_value(&value),
        None => Entry::new(&value),
    };
    key.set(entry).map_err(|e| write_failed(&e))
}

pub(crate) fn append(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let key = ctx.shared.keyspace.lock(args[1]);
    let old = key.get();
    let current = old.as_ref().map_or(&[][..], |e| &e.value[..]);
    if current.len() + args[2].len() > max_string(ctx) {
        return err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let mut value = BytesMut::with_capacity(current.len() + args[2].len());
    value.extend_from_slice(current);
    value.extend_from_slice(args[2]);
    let len = value.len();
    match replace_value(&key, old, value.freeze()) {
        Ok(()) => Frame::Integer(len as i64),
        Err(e) => e,
    }
}

pub(crate) fn strlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    Frame::Integer(
        ctx.shared
            .keyspace
            .peek(args[1])
            .map_or(0, |e| e.value.len() as i64),
    )
}

pub(crate) fn getrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let (start, end) = match (int(args[2]), int(args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return not_an_integer(),
    };
    let Some(entry) = ctx.shared.keyspace.lookup(args[1]) else {
        return Frame::bulk(Bytes::new());
    };
    let len = entry.value.len() as i64;
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return Frame::bulk(Bytes::new());
    }
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (fix(start), fix(end).min(len - 1));
    if start > end || start >= len {
        return Frame::bulk(Bytes::new());
    }
    Frame::bulk(Bytes::copy_from_slice(
        &entry.value[start as usize..=end as usize],
    ))
}

pub(crate) fn setrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let offset = match int(args[2]) {
        Ok(o) if o >= 0 => o as usize,
        Ok(_) => return err("ERR offset is out of range"),
        Err(e) => return e,
    };
    let patch = &args[3];
    if offset.saturating_add(patch.len()) > max_string(ctx) {
        return err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let key = ctx.shared.keyspace.lock(args[1]);
    let old = key.get();
    let current = old.as_ref().map_or(&[][..], |e| &e.value[..]);
    if patch.is_empty() {
        return Frame::Integer(current.len() as i64);
    }
    let mut value = BytesMut::from(current);
    if value.len() < offset + patch.len() {
        value.resize(offset + patch.len(), 0);
    }
    value[offset..offset + patch.len()].copy_from_slice(patch);
    let len = value.len();
    match replace_value(&key, old, value.freeze()) {
        Ok(()) => Frame::Integer(len as i64),
        Err(e) => e,
    }
}

fn add(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> Frame {
    let key = ctx.shared.keyspace.lock(key);
    let old = key.get();
    let current = match &old {
        None => 0,
        Some(e) => match int(&e.value) {
            Ok(n) if e.value.len() <= 20 => n,
            _ => return not_an_integer(),
        },
    };
    let Some(new) = current.checked_add(by) else {
        return err("ERR increment or decrement would overflow");
    };
    match replace_value(&key, old, Bytes::from(new.to_string())) {
        Ok(()) => Frame::Integer(new),
        Err(e) => e,
    }
}

pub(crate) fn incr(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    add(ctx, args[1], 1)
}

pub(crate) fn decr(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    add(ctx, args[1], -1)
}

pub(crate) fn incrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    match int(args[2]) {
        Ok(by) => add(ctx, args[1], by),
        Err(e) => e,
    }
}

pub(crate) fn decrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    match int(args[2]) {
        Ok(by) if by != i64::MIN => add(ctx, args[1], -by),
        Ok(_) => err("ERR decrement would overflow"),
        Err(e) => e,
    }
}

pub(crate) fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let not_a_float = || err("ERR value is not a valid float");
    let Some(by) = LongDouble::parse(args[2]) else {
        return not_a_float();
    };
    let key = ctx.shared.keyspace.lock(args[1]);
    let old = key.get();
    let current = match &old {
        None => Float::Finite(LongDouble::ZERO),
        Some(e) => match LongDouble::parse(&e.value) {
            Some(f) => f,
            None => return not_a_float(),
        },
    };
    // Redis adds in `long double` and prints with `%.17Lf` (see `long_double.rs`).
    let sum = match (current, by) {
        (Float::Finite(a), Float::Finite(b)) => a.add(&b),
        _ => None,
    };
    let Some(sum) = sum else {
        return err("ERR increment would produce NaN or Infinity");
    };
    let text = Bytes::from(sum.to_redis_string());
    match replace_value(&key, old, text.clone()) {
        Ok(()) => Frame::Bulk(text),
        Err(e) => e,
    }
}
