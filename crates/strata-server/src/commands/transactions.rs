//! `MULTI` / `EXEC` / `DISCARD` / `WATCH` / `UNWATCH`.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use strata_resp::Frame;

use super::{Ctx, err, run_queued, with_args};

pub(crate) fn multi(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    if ctx.session.multi.is_some() {
        return err("ERR MULTI calls can not be nested");
    }
    ctx.session.multi = Some(Vec::new());
    ctx.session.multi_failed = false;
    Frame::ok()
}

/// Runs the queue with the keyspace locked exclusively (`dispatch` took the lock), unless a
/// watched key was written since `WATCH` (null reply) or a queued command was rejected.
pub(crate) fn exec(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    let Some(queue) = ctx.session.multi.take() else {
        return err("ERR EXEC without MULTI");
    };
    let failed = std::mem::take(&mut ctx.session.multi_failed);
    let dirty = ctx.session.dirty.load(Ordering::Acquire);
    unwatch_all(ctx);
    if failed {
        return err("EXECABORT Transaction discarded because of previous errors.");
    }
    if dirty {
        return Frame::NullArray;
    }
    Frame::Array(
        queue
            .iter()
            .map(|(index, args)| {
                with_args(
                    args.len(),
                    |i| &args[i],
                    |args| run_queued(ctx, *index, args),
                )
            })
            .collect(),
    )
}

pub(crate) fn discard(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    if ctx.session.multi.take().is_none() {
        return err("ERR DISCARD without MULTI");
    }
    ctx.session.multi_failed = false;
    unwatch_all(ctx);
    Frame::ok()
}

pub(crate) fn watch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    if ctx.session.multi.is_some() {
        return err("ERR WATCH inside MULTI is not allowed");
    }
    for key in &args[1..] {
        if !ctx.session.watched.iter().any(|w| w == key) {
            let key = Bytes::copy_from_slice(key);
            ctx.shared
                .keyspace
                .watch(key.clone(), ctx.session.dirty.clone());
            ctx.session.watched.push(key);
        }
    }
    Frame::ok()
}

pub(crate) fn unwatch(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    unwatch_all(ctx);
    Frame::ok()
}

/// Forgets the session's watches (also on disconnect).
pub(crate) fn unwatch_all(ctx: &mut Ctx<'_>) {
    let keys = std::mem::take(&mut ctx.session.watched);
    ctx.shared.keyspace.unwatch(&keys, &ctx.session.dirty);
    ctx.session.dirty.store(false, Ordering::Release);
}
