//! Key commands: existence, expiry, enumeration, renaming.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use bytes::Bytes;
use strata_resp::Frame;

use super::{Ctx, err, int, syntax_error, write_failed};
use crate::glob;
use crate::keyspace::now_ms;

pub(crate) fn del(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let mut removed = 0;
    for key in &args[1..] {
        match ctx.shared.keyspace.lock(key).remove() {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => return write_failed(&e),
        }
    }
    Frame::Integer(removed)
}

pub(crate) fn exists(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let keyspace = &ctx.shared.keyspace;
    Frame::Integer(
        args[1..]
            .iter()
            .filter(|k| keyspace.peek(k).is_some())
            .count() as i64,
    )
}

/// `EXPIRE`-family: `unit_ms` converts the argument to ms; `absolute` for the `…AT` forms.
fn set_expiry(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    command: &str,
    unit_ms: i64,
    absolute: bool,
) -> Frame {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return err("ERR GT and LT options at the same time are not compatible");
    }
    // The options first, then the number, as Redis checks them.
    let n = match int(args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let invalid = || err(format!("ERR invalid expire time in '{command}' command"));
    let Some(ms) = n.checked_mul(unit_ms) else {
        return invalid();
    };
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(now_ms() as i64)
    };
    let Some(at) = at else { return invalid() };
    let key = ctx.shared.keyspace.lock(args[1]);
    let Some(entry) = key.get() else {
        return Frame::Integer(0);
    };
    let current = entry.expires_at();
    let allowed = (!nx || current.is_none())
        && (!xx || current.is_some())
        // No expiry counts as an infinite one.
        && (!gt || current.is_some_and(|c| at > c as i64))
        && (!lt || current.is_none_or(|c| at < c as i64));
    if !allowed {
        return Frame::Integer(0);
    }
    let result = if at <= now_ms() as i64 {
        key.remove().map(|_| ())
    } else {
        key.set(entry.with_expiry(Some(at as u64)))
    };
    match result {
        Ok(()) => Frame::Integer(1),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn expire(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    set_expiry(ctx, args, "expire", 1000, false)
}

pub(crate) fn pexpire(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    set_expiry(ctx, args, "pexpire", 1, false)
}

pub(crate) fn expireat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    set_expiry(ctx, args, "expireat", 1000, true)
}

pub(crate) fn pexpireat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    set_expiry(ctx, args, "pexpireat", 1, true)
}

/// -2 missing, -1 no expiry, else `f(expires_at)`.
fn expiry_query(ctx: &mut Ctx<'_>, key: &[u8], f: impl Fn(u64) -> i64) -> Frame {
    match ctx.shared.keyspace.peek(key) {
        None => Frame::Integer(-2),
        Some(entry) => Frame::Integer(entry.expires_at().map_or(-1, f)),
    }
}

pub(crate) fn ttl(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    expiry_query(ctx, args[1], |at| {
        ((at.saturating_sub(now_ms()) + 500) / 1000) as i64
    })
}

pub(crate) fn pttl(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    expiry_query(ctx, args[1], |at| at.saturating_sub(now_ms()) as i64)
}

pub(crate) fn expiretime(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    expiry_query(ctx, args[1], |at| (at / 1000) as i64)
}

pub(crate) fn pexpiretime(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    expiry_query(ctx, args[1], |at| at as i64)
}

pub(crate) fn persist(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let key = ctx.shared.keyspace.lock(args[1]);
    match key.get() {
        Some(entry) if entry.expires_at().is_some() => match key.set(entry.with_expiry(None)) {
            Ok(()) => Frame::Integer(1),
            Err(e) => write_failed(&e),
        },
        _ => Frame::Integer(0),
    }
}

pub(crate) fn type_(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    Frame::simple(if ctx.shared.keyspace.peek(args[1]).is_some() {
        "string"
    } else {
        "none"
    })
}

pub(crate) fn keys(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let pattern = &args[1];
    Frame::Array(
        ctx.shared
            .keyspace
            .keys()
            .into_iter()
            .filter(|k| glob::matches(pattern, k))
            .map(Frame::Bulk)
            .collect(),
    )
}

/// The order `SCAN` walks keys in: a fixed hash, shifted so that it is never 0 (the cursor
/// that means "start" and "done").
fn scan_position(key: &[u8]) -> u64 {
    (BuildHasherDefault::<DefaultHasher>::default().hash_one(key) >> 1) + 1
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`. The cursor is a position in a fixed
/// hash order of keys, so a key present for the whole scan is returned exactly once, even if
/// other keys come and go (a key removed meanwhile may still be returned, as Redis allows).
/// Starting an iteration costs O(keys log keys); its later calls O(log keys + COUNT).
pub(crate) fn scan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let cursor = match std::str::from_utf8(args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(c) => c,
        None => return err("ERR invalid cursor"),
    };
    let (mut pattern, mut count, mut type_filter) = (None, 10usize, None);
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return syntax_error();
        };
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(*value),
            b"COUNT" => match int(value) {
                Ok(n) if n >= 1 => count = n as usize,
                Ok(_) => return syntax_error(),
                Err(e) => return e,
            },
            b"TYPE" => type_filter = Some(value.to_ascii_lowercase()),
            _ => return syntax_error(),
        }
        i += 2;
    }
    // The sorted key list is built when an iteration starts (cursor 0, or a cursor this
    // connection did not hand out) and kept for the rest of it: each later call is a binary
    // search, not a walk over every key.
    let snapshot = match ctx.session.scan.take() {
        Some(snapshot) if cursor != 0 => snapshot,
        _ => {
            let mut keys: Vec<(u64, Bytes)> = ctx
                .shared
                .keyspace
                .keys()
                .into_iter()
                .map(|k| (scan_position(&k), k))
                .collect();
            keys.sort_unstable();
            keys
        }
    };
    let start = snapshot.partition_point(|(pos, _)| *pos < cursor);
    let mut batch = Vec::new();
    let mut next = 0;
    for (n, (pos, key)) in snapshot.iter().enumerate().skip(start) {
        // Never split keys that share a position between two calls.
        if n - start >= count && *pos != snapshot[n - 1].0 {
            next = *pos;
            break;
        }
        batch.push(key.clone());
    }
    if next != 0 {
        ctx.session.scan = Some(snapshot);
    }
    let only_strings = type_filter.as_deref().is_none_or(|t| t == b"string");
    let batch = batch
        .into_iter()
        .filter(|k| only_strings && pattern.as_ref().is_none_or(|p| glob::matches(p, k)))
        .map(Frame::Bulk)
        .collect();
    Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(batch)])
}

pub(crate) fn randomkey(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    let keys = ctx.shared.keyspace.keys();
    if keys.is_empty() {
        return Frame::Null;
    }
    let pick =
        std::collections::hash_map::RandomState::new().hash_one(keys.len()) as usize % keys.len();
    Frame::Bulk(keys[pick].clone())
}

fn rename_inner(ctx: &mut Ctx<'_>, args: &[&[u8]], only_if_new: bool) -> Frame {
    let keyspace = &ctx.shared.keyspace;
    let Some(entry) = keyspace.peek(args[1]) else {
        return err("ERR no such key");
    };
    if args[1] == args[2] {
        return if only_if_new {
            Frame::Integer(0)
        } else {
            Frame::ok()
        };
    }
    if only_if_new && keyspace.peek(args[2]).is_some() {
        return Frame::Integer(0);
    }
    // One key's lock at a time: both keys may hash to the same stripe, whose lock is not
    // reentrant. (The command holds the keyspace exclusively: nobody sees the step between.)
    let set = keyspace.lock(args[2]).set(entry);
    let moved = set.and_then(|()| keyspace.lock(args[1]).remove().map(|_| ()));
    match moved {
        Ok(()) if only_if_new => Frame::Integer(1),
        Ok(()) => Frame::ok(),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn rename(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    rename_inner(ctx, args, false)
}

pub(crate) fn renamenx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    rename_inner(ctx, args, true)
}
