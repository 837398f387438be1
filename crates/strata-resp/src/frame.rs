//! RESP values and their encoding.

use std::borrow::Cow;

use bytes::Bytes;

/// The protocol version a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

/// A RESP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(Cow<'static, str>),
    /// `-ERR …` (the text includes the error code).
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// RESP3 `_`; RESP2 `$-1`.
    Null,
    /// RESP2's null array `*-1` (a `WATCH`-aborted `EXEC`, for instance); RESP3 `_`.
    NullArray,
    /// `*N`
    Array(Vec<Frame>),
    /// RESP3 `#t`; RESP2 `:1`.
    Boolean(bool),
    /// RESP3 `,1.5`; RESP2 a bulk string.
    Double(f64),
    /// RESP3 `(123…`; RESP2 a bulk string.
    BigNumber(String),
    /// RESP3 `!`; RESP2 an error.
    BulkError(Bytes),
    /// RESP3 `=` with a 3-letter format (`txt`, `mkd`); RESP2 a bulk string.
    Verbatim {
        /// The format.
        format: [u8; 3],
        /// The text.
        text: Bytes,
    },
    /// RESP3 `%`; RESP2 a flat array of keys and values.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~`; RESP2 an array.
    Set(Vec<Frame>),
    /// RESP3 `>` (out-of-band); RESP2 an array.
    Push(Vec<Frame>),
}

impl Frame {
    /// `+text`
    pub fn simple(text: &str) -> Self {
        Self::Simple(Cow::Owned(text.to_string()))
    }

    /// `+OK` (without an allocation: it is the reply to every `SET`).
    pub fn ok() -> Self {
        Self::Simple(Cow::Borrowed("OK"))
    }

    /// An error reply; `text` starts with its code (`ERR`, `WRONGTYPE`, …).
    pub fn error(text: impl Into<String>) -> Self {
        Self::Error(text.into())
    }

    /// A bulk string.
    pub fn bulk(bytes: impl Into<Bytes>) -> Self {
        Self::Bulk(bytes.into())
    }

    /// Appends the encoding of `self` for `protocol` to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut Vec<u8>) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Frame::Simple(s) => line(out, b'+', clean(s).as_bytes()),
            Frame::Error(e) => line(out, b'-', clean(e).as_bytes()),
            Frame::Integer(n) => line(out, b':', itoa::Buffer::new().format(*n).as_bytes()),
            Frame::Bulk(b) => bulk(out, b'$', b),
            Frame::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Frame::Null => out.extend_from_slice(b"$-1\r\n"),
            Frame::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Frame::Array(items) => aggregate(out, b'*', items, protocol),
            Frame::Boolean(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Frame::Boolean(b) => line(out, b':', if *b { b"1" } else { b"0" }),
            Frame::Double(d) if resp3 => line(out, b',', format_double(*d).as_bytes()),
            Frame::Double(d) => bulk(out, b'$', format_double(*d).as_bytes()),
            Frame::BigNumber(n) if resp3 => line(out, b'(', clean(n).as_bytes()),
            Frame::BigNumber(n) => bulk(out, b'$', n.as_bytes()),
            Frame::BulkError(e) if resp3 => bulk(out, b'!', e),
            Frame::BulkError(e) => line(out, b'-', clean(&String::from_utf8_lossy(e)).as_bytes()),
            Frame::Verbatim { format, text } if resp3 => {
                let mut body = Vec::with_capacity(4 + text.len());
                body.extend_from_slice(format);
                body.push(b':');
                body.extend_from_slice(text);
                bulk(out, b'=', &body);
            }
            Frame::Verbatim { text, .. } => bulk(out, b'$', text),
            Frame::Map(pairs) if resp3 => {
                header(out, b'%', pairs.len());
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Frame::Map(pairs) => {
                header(out, b'*', pairs.len() * 2);
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Frame::Set(items) if resp3 => aggregate(out, b'~', items, protocol),
            Frame::Push(items) if resp3 => aggregate(out, b'>', items, protocol),
            Frame::Set(items) | Frame::Push(items) => aggregate(out, b'*', items, protocol),
        }
    }
}

/// Simple strings and errors cannot hold CR or LF: they become spaces (Redis does the same).
fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ").into()
    } else {
        s.into()
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, kind: u8, len: usize) {
    line(out, kind, itoa::Buffer::new().format(len).as_bytes());
}

fn bulk(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    header(out, kind, body.len());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, kind: u8, items: &[Frame], protocol: Protocol) {
    header(out, kind, items.len());
    for item in items {
        item.encode(protocol, out);
    }
}

/// Doubles as Redis prints them: `inf`, `-inf`, `nan`, or the shortest round-tripping form.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{d}")
    }
}
