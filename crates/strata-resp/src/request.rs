//! Parsing client commands: arrays of bulk strings, or inline commands (`PING\r\n`).

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::parse::{int, line_end};

/// Limits on what a client may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest bulk string (Redis's `proto-max-bulk-len`; default 512 MiB).
    pub max_bulk_len: usize,
    /// Most arguments in one command (default 1,048,576).
    pub max_args: usize,
    /// Longest inline command, and longest length line (default 64 KiB).
    pub max_inline_len: usize,
    /// Whether the client has authenticated (or needs not): before that, Redis allows at most
    /// 10 arguments of at most 16 KiB, so an unauthenticated client cannot make the server
    /// buffer much.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 << 20,
            max_args: 1 << 20,
            max_inline_len: 64 << 10,
            authenticated: true,
        }
    }
}

/// Parses one command from the front of `buf`, removing its bytes. `Ok(None)`: `buf` holds
/// only part of a command (nothing is removed; read more and call again). An empty command
/// (`*0`, a blank line) is `Some(vec![])`, which the server skips.
///
/// # Errors
/// A [`ProtocolError`], after which the connection should be closed (what was buffered cannot
/// be resynchronized).
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let mut args = Vec::new();
    Ok(parse_request_into(buf, limits, &mut args)?.then_some(args))
}

/// [`parse_request`] into a vector the caller reuses, so that a server parsing a pipeline
/// allocates nothing per command: `args` is cleared, then holds the command's arguments if
/// this returns `Ok(true)`. `Ok(false)`: `buf` holds only part of a command.
///
/// ```
/// use bytes::BytesMut;
/// use strata_resp::{Limits, parse_request_into};
///
/// let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1"[..]);
/// let mut args = Vec::new();
/// assert!(parse_request_into(&mut buf, &Limits::default(), &mut args)?);
/// assert_eq!(args, vec!["PING"]);
/// assert!(!parse_request_into(&mut buf, &Limits::default(), &mut args)?); // a partial GET
/// # Ok::<(), strata_resp::ProtocolError>(())
/// ```
///
/// # Errors
/// As [`parse_request`].
pub fn parse_request_into(
    buf: &mut BytesMut,
    limits: &Limits,
    args: &mut Vec<Bytes>,
) -> Result<bool, ProtocolError> {
    args.clear();
    match buf.first() {
        None => Ok(false),
        Some(b'*') => multibulk(buf, limits, args),
        Some(_) => inline(buf, limits, args),
    }
}

fn multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
    args: &mut Vec<Bytes>,
) -> Result<bool, ProtocolError> {
    let Some(end) = header_line(buf, 1, limits)? else {
        return Ok(false);
    };
    let count = int(&buf[1..end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > limits.max_args as i64 || count > i64::from(i32::MAX) {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    if !limits.authenticated && count > 10 {
        return Err(ProtocolError::UnauthenticatedMultibulk);
    }
    let first = end + 2;
    if count <= 0 {
        let _ = buf.split_to(first);
        return Ok(true);
    }
    // First pass: is the whole command here? Nothing is kept, so nothing is allocated.
    let mut pos = first;
    for _ in 0..count {
        let Some(payload) = bulk(buf, pos, limits)? else {
            return Ok(false);
        };
        // Like Redis, the two bytes after the payload are skipped, not checked.
        pos = payload.end + 2;
    }
    // Second pass over the same, now complete, bytes: slice the arguments out.
    let frame = buf.split_to(pos).freeze();
    let mut pos = first;
    for _ in 0..count {
        match bulk(&frame, pos, limits) {
            Ok(Some(payload)) => {
                pos = payload.end + 2;
                args.push(frame.slice(payload));
            }
            // The first pass accepted these bytes.
            _ => return Err(ProtocolError::InvalidBulkLength),
        }
    }
    Ok(true)
}

/// The payload of the bulk string whose `$` is at `pos`; `None` if it is not all in `buf`.
fn bulk(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
) -> Result<Option<std::ops::Range<usize>>, ProtocolError> {
    let Some(&first) = buf.get(pos) else {
        return Ok(None);
    };
    if first != b'$' {
        return Err(ProtocolError::ExpectedBulk(char::from(first)));
    }
    let Some(end) = header_line(buf, pos + 1, limits)? else {
        return Ok(None);
    };
    let len = int(&buf[pos + 1..end])
        .and_then(|l| usize::try_from(l).ok())
        .filter(|&l| l <= limits.max_bulk_len)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    if !limits.authenticated && len > 16 << 10 {
        return Err(ProtocolError::UnauthenticatedBulk);
    }
    let start = end + 2;
    if buf.len() < start + len + 2 {
        return Ok(None);
    }
    Ok(Some(start..start + len))
}

/// The end of a length line starting at `from`, within the inline limit.
fn header_line(buf: &[u8], from: usize, limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    match line_end(buf, from, limits.max_inline_len) {
        Err(ProtocolError::Invalid(_)) => Err(ProtocolError::InvalidBulkLength),
        other => other,
    }
}

fn inline(
    buf: &mut BytesMut,
    limits: &Limits,
    args: &mut Vec<Bytes>,
) -> Result<bool, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(false);
    };
    if nl > limits.max_inline_len {
        return Err(ProtocolError::TooBigInline);
    }
    let line = buf.split_to(nl + 1);
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    split_args(line, args)?;
    if !limits.authenticated && args.len() > 10 {
        return Err(ProtocolError::UnauthenticatedMultibulk);
    }
    Ok(true)
}

/// Splits an inline command like Redis's `sdssplitargs`: spaces separate arguments; double
/// quotes allow `\n`, `\r`, `\t`, `\b`, `\a`, `\\`, `\"` and `\xHH`; single quotes allow `\'`.
/// A closing quote must be followed by a space or the end.
fn split_args(line: &[u8], args: &mut Vec<Bytes>) -> Result<(), ProtocolError> {
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let mut arg = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\')
                            if line.get(i + 1) == Some(&b'x')
                                && line.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                                && line.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                        {
                            let hex = std::str::from_utf8(&line[i + 2..i + 4]).unwrap_or("0");
                            arg.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                            i += 4;
                        }
                        Some(b'\\') if i + 1 < line.len() => {
                            arg.push(match line[i + 1] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 8,
                                b'a' => 7,
                                other => other,
                            });
                            i += 2;
                        }
                        Some(b'"') => {
                            if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                            arg.push(b'\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(arg));
    }
}
