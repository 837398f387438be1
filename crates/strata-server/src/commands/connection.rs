//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, CLIENT, QUIT, RESET, COMMAND.

use std::time::Instant;

use bytes::Bytes;
use strata_resp::{Frame, Protocol};

use super::transactions::unwatch_all;
use super::{COMMANDS, Ctx, err, int, syntax_error};

pub(crate) fn ping(_ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    match args.len() {
        1 => Frame::simple("PONG"),
        2 => Frame::Bulk(Bytes::copy_from_slice(args[1])),
        _ => err("ERR wrong number of arguments for 'ping' command"),
    }
}

pub(crate) fn echo(_ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(args[1]))
}

/// Compares without leaking, through timing, how much of the password matched.
fn password_matches(given: &[u8], expected: &str) -> bool {
    let expected = expected.as_bytes();
    let mut diff = given.len() ^ expected.len();
    for (i, &b) in expected.iter().enumerate() {
        diff |= usize::from(b ^ given.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Checks `AUTH [user] password`; only the `default` user exists.
fn authenticate(ctx: &mut Ctx<'_>, user: Option<&[u8]>, password: &[u8]) -> Result<(), Frame> {
    let required = ctx.shared.runtime.read().requirepass.clone();
    let Some(required) = required else {
        if user.is_none() {
            return Err(err(
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ));
        }
        // With no password, the default user accepts any password, as in Redis.
        ctx.session.authenticated = true;
        return Ok(());
    };
    let user_ok = user.is_none_or(|u| u == b"default");
    if user_ok && password_matches(password, &required) {
        ctx.session.authenticated = true;
        Ok(())
    } else {
        Err(err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

pub(crate) fn auth(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let result = match args.len() {
        2 => authenticate(ctx, None, args[1]),
        3 => authenticate(ctx, Some(args[1]), args[2]),
        _ => return syntax_error(),
    };
    result.map_or_else(|e| e, |()| Frame::ok())
}

pub(crate) fn hello(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let mut protocol = ctx.session.protocol;
    let mut i = 1;
    if let Some(version) = args.get(1) {
        protocol = match int(version) {
            Ok(2) => Protocol::Resp2,
            Ok(3) => Protocol::Resp3,
            Ok(_) => return err("NOPROTO unsupported protocol version"),
            Err(_) => return err("ERR Protocol version is not an integer or out of range"),
        };
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                if let Err(e) = authenticate(ctx, Some(args[i + 1]), args[i + 2]) {
                    return e;
                }
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                name = Some(args[i + 1]);
                i += 2;
            }
            _ => {
                return err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(args[i])
                ));
            }
        }
    }
    if !ctx.session.authenticated {
        return err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = name
        && let Err(e) = set_name(ctx, name)
    {
        return e;
    }
    ctx.session.protocol = protocol;
    Frame::Map(vec![
        (Frame::simple("server"), Frame::bulk("redis")),
        (
            Frame::simple("version"),
            Frame::bulk(super::server::REDIS_VERSION),
        ),
        (
            Frame::simple("proto"),
            Frame::Integer(if protocol == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (Frame::simple("id"), Frame::Integer(ctx.session.id as i64)),
        (Frame::simple("mode"), Frame::bulk("standalone")),
        (Frame::simple("role"), Frame::bulk("master")),
        (Frame::simple("modules"), Frame::Array(Vec::new())),
    ])
}

pub(crate) fn select(_ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    match int(args[1]) {
        Ok(0) => Frame::ok(),
        Ok(_) => err("ERR DB index is out of range"),
        Err(e) => e,
    }
}

fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> Result<(), Frame> {
    if name.iter().any(|&b| b <= b' ' || b > b'~') {
        return Err(err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    let name = (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
    ctx.session.name = name.clone();
    *ctx.session.info.name.lock() = name;
    Ok(())
}

fn client_line(id: u64, info: &crate::state::ClientInfo, now: Instant) -> String {
    format!(
        "id={id} addr={} laddr=? fd=0 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 \
         qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default \
         redir=-1 resp=2",
        info.addr,
        info.name.lock().as_deref().unwrap_or(""),
        now.duration_since(info.connected).as_secs(),
        COMMANDS
            .get(info.last_command.load(std::sync::atomic::Ordering::Relaxed))
            .map_or("NULL", |c| c.name),
    )
}

pub(crate) fn client(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"SETNAME", 3) => set_name(ctx, args[2]).map_or_else(|e| e, |()| Frame::ok()),
        (b"GETNAME", 2) => ctx.session.name.clone().map_or(Frame::Null, Frame::bulk),
        (b"ID", 2) => Frame::Integer(ctx.session.id as i64),
        (b"INFO", 2) => {
            let clients = ctx.shared.clients.lock();
            let line = clients
                .get(&ctx.session.id)
                .map(|info| client_line(ctx.session.id, info, Instant::now()))
                .unwrap_or_default();
            Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(line + "\n"),
            }
        }
        (b"LIST", _) => {
            let now = Instant::now();
            let clients = ctx.shared.clients.lock();
            let text: String = clients
                .iter()
                .map(|(id, info)| client_line(*id, info, now) + "\n")
                .collect();
            Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(text),
            }
        }
        (b"SETINFO", 4) => Frame::ok(),
        (b"NO-EVICT" | b"NO-TOUCH", 3) => Frame::ok(),
        (b"SETNAME" | b"GETNAME" | b"ID" | b"INFO" | b"SETINFO", _) => err(format!(
            "ERR wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(args[1]).to_ascii_lowercase()
        )),
        _ => err(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(args[1])
        )),
    }
}

pub(crate) fn quit(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    ctx.session.quit = true;
    Frame::ok()
}

pub(crate) fn reset(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> Frame {
    ctx.session.multi = None;
    ctx.session.multi_failed = false;
    unwatch_all(ctx);
    ctx.session.protocol = Protocol::Resp2;
    let _ = set_name(ctx, b"");
    ctx.session.authenticated = ctx.shared.runtime.read().requirepass.is_none();
    Frame::simple("RESET")
}

/// One entry of `COMMAND` / `COMMAND INFO`.
fn command_info(c: &super::Command) -> Frame {
    Frame::Array(vec![
        Frame::bulk(c.name),
        Frame::Integer(i64::from(c.arity)),
        Frame::Set(c.flags.iter().map(|f| Frame::simple(f)).collect()),
        Frame::Integer(i64::from(c.keys.0)),
        Frame::Integer(i64::from(c.keys.1)),
        Frame::Integer(i64::from(c.keys.2)),
        Frame::Set(Vec::new()),
        Frame::Set(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}

pub(crate) fn command(_ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Frame {
    let Some(sub) = args.get(1) else {
        return Frame::Array(COMMANDS.iter().map(command_info).collect());
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" => Frame::Integer(COMMANDS.len() as i64),
        b"LIST" => Frame::Array(COMMANDS.iter().map(|c| Frame::bulk(c.name)).collect()),
        b"INFO" => Frame::Array(
            args[2..]
                .iter()
                .map(|name| super::lookup(name).map_or(Frame::Null, |i| command_info(&COMMANDS[i])))
                .collect(),
        ),
        // Enough for clients that probe it (redis-cli asks for hints): no documentation.
        b"DOCS" => Frame::Map(Vec::new()),
        _ => err(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::password_matches;

    #[test]
    fn passwords_compare_exactly() {
        assert!(password_matches(b"s3cret", "s3cret"));
        assert!(!password_matches(b"s3cre", "s3cret"));
        assert!(!password_matches(b"s3cretx", "s3cret"));
        assert!(!password_matches(b"", "s3cret"));
        assert!(!password_matches(b"S3cret", "s3cret"));
    }
}
