//! The Redis serialization protocol, RESP2 and RESP3, without I/O.
//!
//! - [`parse_request`] reads one client command (an array of bulk strings, or an inline
//!   command) from the front of a buffer, as the server sees it: it never panics, waits for
//!   more bytes on a partial frame, and rejects oversized or malformed input with the errors
//!   Redis sends. [`Command`] does the same in place, for a server that runs a pipeline
//!   without copying or allocating per command.
//! - [`Frame`] is any RESP2/RESP3 value; [`Frame::encode`] writes it for a protocol version
//!   (downgrading RESP3 types for RESP2 clients as Redis does) and [`parse_frame`] reads one
//!   back (for clients and tests).
//!
//! ```
//! use bytes::BytesMut;
//! use strata_resp::{Frame, Limits, Protocol, parse_request};
//!
//! let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nPING\r\n"[..]);
//! let limits = Limits::default();
//! let get = parse_request(&mut buf, &limits)?.expect("a whole command");
//! assert_eq!(get, vec!["GET", "key"]);
//! let ping = parse_request(&mut buf, &limits)?.expect("an inline command");
//! assert_eq!(ping, vec!["PING"]);
//! assert!(parse_request(&mut buf, &limits)?.is_none()); // nothing left: wait for more
//!
//! let mut out = Vec::new();
//! Frame::Map(vec![(Frame::simple("a"), Frame::Integer(1))]).encode(Protocol::Resp2, &mut out);
//! assert_eq!(out, b"*2\r\n+a\r\n:1\r\n");
//! # Ok::<(), strata_resp::ProtocolError>(())
//! ```

mod error;
mod frame;
mod parse;
mod request;

pub use error::ProtocolError;
pub use frame::{Frame, Protocol};
pub use parse::parse_frame;
pub use request::{Command, Limits, parse_request};
