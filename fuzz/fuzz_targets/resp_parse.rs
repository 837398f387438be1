//! Feeds arbitrary bytes to both RESP parsers, whole and in two pieces: they must never panic,
//! and a request parsed in pieces must equal the request parsed whole.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_resp::{Limits, parse_frame, parse_request};

fuzz_target!(|data: &[u8]| {
    let _ = parse_frame(data);
    let limits = Limits::default();
    let whole = {
        let mut buf = BytesMut::from(data);
        let mut out = Vec::new();
        while let Ok(Some(args)) = parse_request(&mut buf, &limits) {
            out.push(args);
        }
        out
    };
    if data.is_empty() {
        return;
    }
    let cut = usize::from(data[0]) % data.len();
    let mut buf = BytesMut::from(&data[..cut]);
    let mut pieces = Vec::new();
    while let Ok(Some(args)) = parse_request(&mut buf, &limits) {
        pieces.push(args);
    }
    buf.extend_from_slice(&data[cut..]);
    while let Ok(Some(args)) = parse_request(&mut buf, &limits) {
        pieces.push(args);
    }
    assert_eq!(whole, pieces);
});
