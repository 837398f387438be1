//! Parsing any RESP2/RESP3 frame (what a client reads).

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::frame::Frame;

/// Longest line (simple string, error, number, length) accepted before its CRLF.
const MAX_LINE: usize = 1 << 20;
/// Longest bulk payload accepted.
const MAX_BULK: usize = 512 << 20;
/// Deepest nesting of aggregates accepted.
const MAX_DEPTH: usize = 64;

/// Parses one frame from the front of `buf`: `Ok(None)` if `buf` holds only part of it,
/// otherwise the frame and how many bytes it took.
///
/// # Errors
/// [`ProtocolError::Invalid`] for bytes that are not RESP, or nesting deeper than 64.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let mut at = 0;
    match frame(buf, &mut at, 0)? {
        Some(f) => Ok(Some((f, at))),
        None => Ok(None),
    }
}

/// The position of the CRLF ending the line that starts at `from`, if it is there yet.
pub(crate) fn line_end(
    buf: &[u8],
    from: usize,
    max: usize,
) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[from.min(buf.len())..];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) if nl > 0 && window[nl - 1] == b'\r' => Ok(Some(from + nl - 1)),
        Some(_) => Err(ProtocolError::Invalid("expected CRLF")),
        None if window.len() > max => Err(ProtocolError::TooBigInline),
        None => Ok(None),
    }
}

/// Parses a decimal i64 the way Redis's `string2ll` does: no sign on zero-padded forms, no
/// spaces, no overflow.
pub(crate) fn int(bytes: &[u8]) -> Option<i64> {
    let (neg, digits) = match bytes.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    if neg {
        if n == 0 {
            return None;
        }
        Some(-n)
    } else {
        Some(n)
    }
}

fn frame(buf: &[u8], at: &mut usize, depth: usize) -> Result<Option<Frame>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError::Invalid("nesting too deep"));
    }
    let Some(&kind) = buf.get(*at) else {
        return Ok(None);
    };
    let Some(end) = line_end(buf, *at + 1, MAX_LINE)? else {
        return Ok(None);
    };
    let body = &buf[*at + 1..end];
    let next = end + 2;
    let text = || {
        std::str::from_utf8(body)
            .map(str::to_string)
            .map_err(|_| ProtocolError::Invalid("invalid UTF-8 in a line"))
    };
    let length = |kind_name: &'static str| -> Result<i64, ProtocolError> {
        int(body).ok_or(ProtocolError::Invalid(kind_name))
    };
    let frame = match kind {
        b'+' => Frame::Simple(text()?.into()),
        b'-' => Frame::Error(text()?),
        b':' => Frame::Integer(length("invalid integer")?),
        b'_' if body.is_empty() => Frame::Null,
        b'#' => match body {
            b"t" => Frame::Boolean(true),
            b"f" => Frame::Boolean(false),
            _ => return Err(ProtocolError::Invalid("invalid boolean")),
        },
        b',' => Frame::Double(double(body).ok_or(ProtocolError::Invalid("invalid double"))?),
        b'(' => {
            let n = text()?;
            let digits = n.strip_prefix('-').unwrap_or(&n);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ProtocolError::Invalid("invalid big number"));
            }
            Frame::BigNumber(n)
        }
        b'$' | b'!' | b'=' => {
            let len = length("invalid bulk length")?;
            if kind == b'$' && len == -1 {
                *at = next;
                return Ok(Some(Frame::Null));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_BULK)
                .ok_or(ProtocolError::Invalid("invalid bulk length"))?;
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            if &buf[next + len..next + len + 2] != b"\r\n" {
                return Err(ProtocolError::Invalid("bulk string not followed by CRLF"));
            }
            let data = Bytes::copy_from_slice(&buf[next..next + len]);
            *at = next + len + 2;
            return Ok(Some(match kind {
                b'$' => Frame::Bulk(data),
                b'!' => Frame::BulkError(data),
                _ => {
                    if data.len() < 4 || data[3] != b':' {
                        return Err(ProtocolError::Invalid("invalid verbatim string"));
                    }
                    Frame::Verbatim {
                        format: [data[0], data[1], data[2]],
                        text: data.slice(4..),
                    }
                }
            }));
        }
        b'*' | b'~' | b'>' | b'%' => {
            let len = length("invalid aggregate length")?;
            if kind == b'*' && len == -1 {
                *at = next;
                return Ok(Some(Frame::NullArray));
            }
            let len = usize::try_from(len)
                .map_err(|_| ProtocolError::Invalid("invalid aggregate length"))?;
            let count = if kind == b'%' {
                len.checked_mul(2)
            } else {
                Some(len)
            }
            .ok_or(ProtocolError::Invalid("invalid aggregate length"))?;
            let mut pos = next;
            // Each element takes at least 3 bytes: do not trust a length the buffer cannot hold.
            let mut items = Vec::with_capacity(count.min((buf.len() - pos.min(buf.len())) / 3));
            for _ in 0..count {
                match frame(buf, &mut pos, depth + 1)? {
                    Some(f) => items.push(f),
                    None => return Ok(None),
                }
            }
            *at = pos;
            return Ok(Some(match kind {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                b'>' => Frame::Push(items),
                _ => {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Frame::Map(pairs)
                }
            }));
        }
        _ => return Err(ProtocolError::Invalid("unknown frame type")),
    };
    *at = next;
    Ok(Some(frame))
}

fn double(body: &[u8]) -> Option<f64> {
    match body {
        b"inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" => Some(f64::NAN),
        _ => std::str::from_utf8(body).ok()?.parse().ok(),
    }
}
