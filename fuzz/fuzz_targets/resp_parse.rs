//! Feeds arbitrary bytes to both RESP parsers, whole and in two pieces: they must never panic,
//! a request parsed in pieces must equal the request parsed whole, and the server's in-place
//! path (`Command`) must read the same arguments.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_resp::{Command, Limits, parse_frame, parse_request};

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
    // The server's in-place path reads the same arguments.
    let mut in_place = Vec::new();
    let mut command = Command::default();
    let mut rest = data;
    while let Ok(true) = command.parse(rest, &limits) {
        let args: Vec<Vec<u8>> = (0..command.arg_count())
            .map(|i| command.arg(rest, i).to_vec())
            .collect();
        in_place.push(args);
        rest = &rest[command.frame_len()..];
    }
    assert_eq!(whole, in_place);
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
