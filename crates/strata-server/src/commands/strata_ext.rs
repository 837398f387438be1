//! Strata's own commands: tags, which Redis lacks.
//!
//! - `STRATA.TAG key tag [tag …]` attaches tags to an existing key (1), or does nothing if the
//!   key does not exist (0). A later `SET` of the key replaces its value and drops its tags:
//!   tags describe what a value was derived from.
//! - `STRATA.INVALIDATE tag` removes every key carrying `tag` and returns how many, in both
//!   tiers. ("When user 42 changes, drop everything derived from them.")

use strata::Tag;
use strata_resp::Frame;

use super::{Ctx, err, write_failed};

fn tag_text(arg: &[u8]) -> Result<&str, Frame> {
    std::str::from_utf8(arg).map_err(|_| err("ERR tags must be UTF-8"))
}

pub(crate) fn tag(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let mut tags = Vec::new();
    for arg in &args[2..] {
        match tag_text(arg) {
            Ok(t) => tags.push(Tag::from(t)),
            Err(e) => return e,
        }
    }
    let key = ctx.shared.keyspace.lock(args[1]);
    let Some(entry) = key.get() else {
        return Frame::Integer(0);
    };
    let mut all: Vec<Tag> = entry.tags().to_vec();
    for t in tags {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    match key.set(entry.with_tags(all)) {
        Ok(()) => Frame::Integer(1),
        Err(e) => write_failed(&e),
    }
}

pub(crate) fn invalidate(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let tag = match tag_text(args[1]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    match ctx.shared.keyspace.invalidate_tag(tag) {
        Ok(n) => Frame::Integer(n as i64),
        Err(e) => write_failed(&e),
    }
}
