//! Parsing client commands: arrays of bulk strings, or inline commands (`PING\r\n`).

use std::ops::Range;

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
    let mut command = Command::default();
    if !command.parse(buf, limits)? {
        return Ok(None);
    }
    let frame = buf.split_to(command.frame_len()).freeze();
    Ok(Some(match command.form {
        Form::Multibulk => command
            .ranges
            .iter()
            .map(|r| frame.slice(r.clone()))
            .collect(),
        Form::Inline => command.inline.into_iter().map(Bytes::from).collect(),
    }))
}

/// One command parsed where it lies: its arguments are places in the buffer it was parsed
/// from, so a server runs it without copying them or counting references to the buffer.
/// Reuse one per connection: parsing a pipeline then allocates nothing per command.
///
/// ```
/// use strata_resp::{Command, Limits};
///
/// let buf = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPI";
/// let mut command = Command::default();
/// assert!(command.parse(buf, &Limits::default())?);
/// assert_eq!((command.arg_count(), command.arg(buf, 1)), (2, &b"key"[..]));
/// let rest = &buf[command.frame_len()..]; // what the caller keeps after running it
/// assert!(!command.parse(rest, &Limits::default())?); // a partial PING: read more
/// # Ok::<(), strata_resp::ProtocolError>(())
/// ```
#[derive(Debug, Default)]
pub struct Command {
    /// Bytes the command takes at the front of the buffer.
    frame_len: usize,
    form: Form,
    /// Where a multibulk command's arguments are in the buffer.
    ranges: Vec<Range<usize>>,
    /// An inline command's arguments, unquoted (so not always bytes of the buffer).
    inline: Vec<Vec<u8>>,
}

#[derive(Debug, Default, Clone, Copy)]
enum Form {
    #[default]
    Multibulk,
    Inline,
}

impl Command {
    /// Parses the command at the front of `buf`, which it does not change. `Ok(true)`: a whole
    /// command, whose arguments [`arg`](Self::arg) reads and which takes the first
    /// [`frame_len`](Self::frame_len) bytes. `Ok(false)`: only part of one; read more and
    /// parse again. An empty command (`*0`, a blank line) has no arguments; the server skips
    /// it.
    ///
    /// # Errors
    /// A [`ProtocolError`], after which the connection should be closed (what was buffered
    /// cannot be resynchronized).
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<bool, ProtocolError> {
        self.ranges.clear();
        self.inline.clear();
        let parsed = match buf.first() {
            None => None,
            Some(b'*') => {
                self.form = Form::Multibulk;
                multibulk(buf, limits, &mut self.ranges)?
            }
            Some(_) => {
                self.form = Form::Inline;
                inline(buf, limits, &mut self.inline)?
            }
        };
        self.frame_len = parsed.unwrap_or(0);
        Ok(parsed.is_some())
    }

    /// The bytes the parsed command takes at the front of the buffer.
    #[inline]
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// How many arguments the parsed command has (the command's name included).
    #[inline]
    pub fn arg_count(&self) -> usize {
        match self.form {
            Form::Multibulk => self.ranges.len(),
            Form::Inline => self.inline.len(),
        }
    }

    /// Argument `i` (`0` is the command's name), read from `buf`, the buffer it was parsed
    /// from.
    ///
    /// # Panics
    /// If `i` is not below [`arg_count`](Self::arg_count), or `buf` is shorter than the
    /// parsed command.
    #[inline]
    pub fn arg<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        match self.form {
            Form::Multibulk => &buf[self.ranges[i].clone()],
            Form::Inline => &self.inline[i],
        }
    }
}

/// Parses a multibulk command into the ranges of its arguments; its length if it is whole.
fn multibulk(
    buf: &[u8],
    limits: &Limits,
    ranges: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let Some(end) = header_line(buf, 1, limits)? else {
        return Ok(None);
    };
    let count = int(&buf[1..end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > limits.max_args as i64 || count > i64::from(i32::MAX) {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    if !limits.authenticated && count > 10 {
        return Err(ProtocolError::UnauthenticatedMultibulk);
    }
    let mut pos = end + 2;
    for _ in 0..count.max(0) {
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
        ranges.push(start..start + len);
        // Like Redis, the two bytes after the payload are skipped, not checked.
        pos = start + len + 2;
    }
    Ok(Some(pos))
}

/// The end of a length line starting at `from`, within the inline limit.
fn header_line(buf: &[u8], from: usize, limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    match line_end(buf, from, limits.max_inline_len) {
        Err(ProtocolError::Invalid(_)) => Err(ProtocolError::InvalidBulkLength),
        other => other,
    }
}

/// Parses an inline command into its arguments; its length if it is whole.
fn inline(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Vec<u8>>,
) -> Result<Option<usize>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    if nl > limits.max_inline_len {
        return Err(ProtocolError::TooBigInline);
    }
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    split_args(line, args)?;
    if !limits.authenticated && args.len() > 10 {
        return Err(ProtocolError::UnauthenticatedMultibulk);
    }
    Ok(Some(nl + 1))
}

/// Splits an inline command like Redis's `sdssplitargs`: spaces separate arguments; double
/// quotes allow `\n`, `\r`, `\t`, `\b`, `\a`, `\\`, `\"` and `\xHH`; single quotes allow `\'`.
/// A closing quote must be followed by a space or the end.
fn split_args(line: &[u8], args: &mut Vec<Vec<u8>>) -> Result<(), ProtocolError> {
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
        args.push(arg);
    }
}
