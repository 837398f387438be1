//! Property tests: encoding then parsing gives the frame back; any split of a request parses
//! the same; arbitrary bytes never panic either parser.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use strata_resp::{Command, Frame, Limits, Protocol, ProtocolError, parse_frame, parse_request};

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 :_.-]{0,20}"
}

fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        text().prop_map(|t| Frame::Simple(t.into())),
        text().prop_map(|t| Frame::Error(format!("ERR {t}"))),
        any::<i64>().prop_map(Frame::Integer),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Frame::Bulk(Bytes::from(b))),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
            .prop_map(Frame::Double),
        "-?[1-9][0-9]{0,40}".prop_map(Frame::BigNumber),
        proptest::collection::vec(any::<u8>(), 0..32)
            .prop_map(|b| Frame::BulkError(Bytes::from(b))),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(|b| Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from(b)
        }),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

fn encode_request(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Array(
        args.iter()
            .map(|a| Frame::Bulk(Bytes::from(a.clone())))
            .collect(),
    )
    .encode(Protocol::Resp2, &mut out);
    out
}

proptest! {
    #[test]
    fn resp3_frames_round_trip(f in frame(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = Vec::new();
        f.encode(Protocol::Resp3, &mut bytes);
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(parse_frame(&bytes), Ok(Some((f, len))));
    }

    #[test]
    fn every_proper_prefix_of_a_frame_is_incomplete(f in frame()) {
        let mut bytes = Vec::new();
        f.encode(Protocol::Resp3, &mut bytes);
        for cut in 0..bytes.len() {
            prop_assert_eq!(parse_frame(&bytes[..cut]), Ok(None), "cut at {}", cut);
        }
    }

    #[test]
    fn requests_parse_the_same_however_they_are_split(
        commands in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire: Vec<u8> = commands.iter().flat_map(|c| encode_request(c)).collect();
        let cut = cut.index(wire.len() + 1);
        let limits = Limits::default();
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut parsed = Vec::new();
        while let Some(args) = parse_request(&mut buf, &limits).unwrap() {
            parsed.push(args);
        }
        buf.extend_from_slice(&wire[cut..]);
        // The rest through the server's path: one Command, reused, reading in place.
        let mut command = Command::default();
        while command.parse(&buf, &limits).unwrap() {
            parsed.push((0..command.arg_count()).map(|i| Bytes::copy_from_slice(command.arg(&buf, i))).collect());
            let _ = buf.split_to(command.frame_len());
        }
        prop_assert!(buf.is_empty());
        let expected: Vec<Vec<Bytes>> = commands
            .iter()
            .map(|c| c.iter().map(|a| Bytes::from(a.clone())).collect())
            .collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_frame(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        let limits = Limits { authenticated: false, ..Limits::default() };
        // Parse until error or need-more; each successful parse consumes bytes.
        while let Ok(Some(_)) = parse_request(&mut buf, &limits) {}
    }

    #[test]
    fn resp_shaped_garbage_never_panics(
        parts in proptest::collection::vec(prop_oneof![
            Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"%".to_vec()), Just(b"\r\n".to_vec()),
            Just(b"-1".to_vec()), Just(b"99999999999999999999".to_vec()), Just(b"3".to_vec()),
            Just(b"\"".to_vec()), Just(b"\\x".to_vec()), Just(b"abc".to_vec()), Just(b"\n".to_vec()),
        ], 0..40)
    ) {
        let bytes: Vec<u8> = parts.concat();
        let _ = parse_frame(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = parse_request(&mut buf, &Limits::default()) {}
    }
}

#[test]
fn malformed_requests_get_redis_errors() {
    let parse = |bytes: &[u8], limits: &Limits| parse_request(&mut BytesMut::from(bytes), limits);
    let limits = Limits::default();
    assert_eq!(
        parse(b"*abc\r\n", &limits),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        parse(b"*2\r\n:1\r\n", &limits),
        Err(ProtocolError::ExpectedBulk(':'))
    );
    assert_eq!(
        parse(b"*1\r\n$-5\r\n", &limits),
        Err(ProtocolError::InvalidBulkLength)
    );
    let small = Limits {
        max_bulk_len: 10,
        ..Limits::default()
    };
    assert_eq!(
        parse(b"*1\r\n$11\r\n", &small),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(
        parse(b"SET \"unclosed\r\n", &limits),
        Err(ProtocolError::UnbalancedQuotes)
    );
    let long = vec![b'a'; 70 << 10];
    assert_eq!(parse(&long, &limits), Err(ProtocolError::TooBigInline));
    let stranger = Limits {
        authenticated: false,
        ..Limits::default()
    };
    assert_eq!(
        parse(b"*11\r\n", &stranger),
        Err(ProtocolError::UnauthenticatedMultibulk)
    );
    assert_eq!(
        parse(b"*1\r\n$20000\r\n", &stranger),
        Err(ProtocolError::UnauthenticatedBulk)
    );
    // A huge declared length is refused before any of its bytes arrive.
    assert_eq!(
        parse(b"*1\r\n$600000000\r\n", &limits),
        Err(ProtocolError::InvalidBulkLength)
    );
}

#[test]
fn inline_commands_split_like_redis() {
    let mut buf = BytesMut::from(&b"set  k \"a b\\x41\\n\" 'it''s'\r\nset k 'it\\'s'\n\r\n"[..]);
    let limits = Limits::default();
    assert!(matches!(
        parse_request(&mut buf, &limits),
        Err(ProtocolError::UnbalancedQuotes)
    ));
    let mut buf = BytesMut::from(&b"set  k \"a b\\x41\\n\"\r\nset k 'it\\'s'\n\r\n"[..]);
    assert_eq!(
        parse_request(&mut buf, &limits).unwrap().unwrap(),
        vec!["set", "k", "a bA\n"]
    );
    assert_eq!(
        parse_request(&mut buf, &limits).unwrap().unwrap(),
        vec!["set", "k", "it's"]
    );
    assert_eq!(
        parse_request(&mut buf, &limits).unwrap().unwrap(),
        Vec::<Bytes>::new()
    );
    assert_eq!(parse_request(&mut buf, &limits).unwrap(), None);
}

#[test]
fn resp2_downgrades_resp3_types_like_redis() {
    let enc = |f: Frame| {
        let mut out = Vec::new();
        f.encode(Protocol::Resp2, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(enc(Frame::Null), "$-1\r\n");
    assert_eq!(enc(Frame::NullArray), "*-1\r\n");
    assert_eq!(enc(Frame::Boolean(true)), ":1\r\n");
    assert_eq!(enc(Frame::Double(1.5)), "$3\r\n1.5\r\n");
    assert_eq!(enc(Frame::Set(vec![Frame::Integer(1)])), "*1\r\n:1\r\n");
    assert_eq!(enc(Frame::Error("ERR a\r\nb".into())), "-ERR a  b\r\n");
}
