//! Strata against a real `redis-server`: random sequences of string and keyspace commands go
//! to both, and every reply must be the same bytes. A command both servers implement must not
//! answer differently, whatever its arguments: values that are not numbers, overflows, negative
//! offsets, option clashes, missing keys, expiry options.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::{Server, encode, free_port};

/// A `redis-server` of our own on a free loopback port, no persistence; killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt install redis-server)");
        // Made first so that a failed start is killed and reaped on drop.
        let redis = Self { child, port };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on {port}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection that sends one command at a time and reads its whole reply.
struct Client {
    stream: TcpStream,
}

impl Client {
    fn new(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Self { stream }
    }

    /// Sends `args` and returns the reply's exact bytes.
    fn call(&mut self, args: &[&str]) -> Vec<u8> {
        self.stream.write_all(&encode(args)).expect("write");
        let mut reply = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let n = self.stream.read(&mut chunk).expect("read a reply");
            assert!(n > 0, "connection closed after {reply:?}");
            reply.extend_from_slice(&chunk[..n]);
            if let Some(end) = element_end(&reply, 0) {
                assert_eq!(end, reply.len(), "one reply per command");
                return reply;
            }
        }
    }
}

const KEYS: [&str; 3] = ["a", "b", "c"];
/// Values that are and are not integers or floats, at and past the limits.
const VALUES: [&str; 22] = [
    "",
    "0",
    "1",
    "-1",
    "10",
    "9223372036854775807",
    "-9223372036854775808",
    "3.5",
    "-0.5",
    "abc",
    "1e3",
    " 1",
    "01",
    "0x10",
    "inf",
    "nan",
    "1.7976931348623157e308",
    "+5",
    "0.1",
    "1e400",
    "0x1p3",
    "-0",
];

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&KEYS[..])
}

fn value() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&VALUES[..])
}

fn small_int() -> impl Strategy<Value = String> {
    (-6_i64..8).prop_map(|n| n.to_string())
}

/// One command with its arguments.
fn command() -> impl Strategy<Value = Vec<String>> {
    let set_options = prop::sample::subsequence(
        vec![
            "NX",
            "XX",
            "GET",
            "EX 1000",
            "PX 100000",
            "KEEPTTL",
            "EX 0",
            "EX x",
        ],
        0..=2,
    );
    // GT and LT only with absolute times (EXPIREAT below): a relative time compared with one
    // set a moment before depends on whether the millisecond changed in between.
    let expire_options = prop::sample::subsequence(vec!["NX", "XX"], 0..=2);
    let one_key = prop::sample::select(vec![
        "GET", "GETDEL", "STRLEN", "INCR", "DECR", "TYPE", "PERSIST", "TTL", "PTTL", "EXISTS",
        "DEL", "UNLINK",
    ]);
    let key_value = prop::sample::select(vec![
        "GETSET",
        "SETNX",
        "APPEND",
        "INCRBY",
        "DECRBY",
        "INCRBYFLOAT",
    ]);
    prop_oneof![
        (key(), value(), set_options).prop_map(|(k, v, options)| {
            let mut args = vec!["SET".to_string(), k.into(), v.into()];
            for option in options {
                args.extend(option.split(' ').map(String::from));
            }
            args
        }),
        (one_key, key()).prop_map(|(c, k)| vec![c.into(), k.into()]),
        (key_value, key(), value()).prop_map(|(c, k, v)| vec![c.into(), k.into(), v.into()]),
        (key(), small_int(), small_int()).prop_map(|(k, s, e)| vec![
            "GETRANGE".into(),
            k.into(),
            s,
            e
        ]),
        (key(), 0_u32..6, value()).prop_map(|(k, o, v)| vec![
            "SETRANGE".into(),
            k.into(),
            o.to_string(),
            v.into()
        ]),
        (key(), key(), value(), value()).prop_map(|(k1, k2, v1, v2)| vec![
            "MSET".into(),
            k1.into(),
            v1.into(),
            k2.into(),
            v2.into()
        ]),
        (key(), key(), value()).prop_map(|(k1, k2, v)| vec![
            "MSETNX".into(),
            k1.into(),
            v.into(),
            k2.into(),
            v.into()
        ]),
        prop::collection::vec(key(), 1..4).prop_map(|ks| {
            let mut args = vec!["MGET".to_string()];
            args.extend(ks.into_iter().map(String::from));
            args
        }),
        (
            prop::sample::select(vec!["DEL", "EXISTS", "RENAME", "RENAMENX"]),
            key(),
            key()
        )
            .prop_map(|(c, k1, k2)| vec![c.into(), k1.into(), k2.into()]),
        (
            prop::sample::select(vec!["EXPIRE", "PEXPIRE"]),
            key(),
            // Long enough in either unit (ms for PEXPIRE) that no key expires mid-list.
            prop::sample::select(vec![
                "100000000",
                "2000000",
                "-1",
                "0",
                "x",
                "9223372036854775807"
            ]),
            expire_options
        )
            .prop_map(|(c, k, t, options)| {
                let mut args = vec![c.to_string(), k.into(), t.into()];
                args.extend(options.into_iter().map(String::from));
                args
            }),
        (
            key(),
            prop::sample::select(vec!["", "PERSIST", "EX 1000", "PX 0", "EX 5 PERSIST"])
        )
            .prop_map(|(k, option)| {
                let mut args = vec!["GETEX".to_string(), k.into()];
                args.extend(
                    option
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
                args
            }),
        (
            prop::sample::select(vec!["SETEX", "PSETEX"]),
            key(),
            // Times long enough in either unit (ms for PSETEX) that no key expires mid-list.
            prop::sample::select(vec!["100000000", "0", "-5", "x", "2000000"]),
            value()
        )
            .prop_map(|(c, k, t, v)| vec![c.into(), k.into(), t.into(), v.into()]),
        (
            prop::sample::select(vec!["EXPIREAT", "PEXPIREAT"]),
            key(),
            prop::sample::select(vec!["1", "0", "-1", "4102444800", "4102444800000", "y"]),
            prop::sample::subsequence(vec!["NX", "XX", "GT", "LT", "ZZ"], 0..=2)
        )
            .prop_map(|(c, k, t, options)| {
                let mut args = vec![c.to_string(), k.into(), t.into()];
                args.extend(options.into_iter().map(String::from));
                args
            }),
        (
            prop::sample::select(vec!["EXPIRETIME", "PEXPIRETIME"]),
            key()
        )
            .prop_map(|(c, k)| vec![c.into(), k.into()]),
        (key(), small_int()).prop_map(|(k, n)| vec!["getrange".into(), k.into(), n, "-1".into()]),
        Just(vec!["DBSIZE".to_string()]),
        // Transactions: queued replies, errors while queuing (EXECABORT), WATCH aborts.
        prop::sample::select(vec!["MULTI", "EXEC", "DISCARD", "UNWATCH"])
            .prop_map(|c| vec![c.to_string()]),
        key().prop_map(|k| vec!["WATCH".to_string(), k.into()]),
        prop::sample::select(vec![
            "*", "a*", "?", "[ab]", "[^a]", "[a-b]", "\\a", "*[", "[]"
        ])
        .prop_map(|p| vec!["KEYS".to_string(), p.into()]),
        // Wrong arity, unknown commands, connection commands.
        prop::sample::select(vec![
            "GET",
            "SET a",
            "INCRBY a",
            "GETEX",
            "PING",
            "PING hi",
            "ECHO hi",
            "ECHO",
            "NOSUCH a b",
            "get a",
            "ExIsTs a b",
            "FLUSHDB",
            "FLUSHALL",
        ])
        .prop_map(|line| line.split(' ').map(String::from).collect()),
        (
            key(),
            -3_i64..3,
            prop::sample::select(vec!["-1", "9223372036854775807", "x"])
        )
            .prop_map(|(k, s, e)| vec![
                "GETRANGE".into(),
                k.into(),
                s.to_string(),
                e.into()
            ]),
        (
            key(),
            prop::sample::select(vec!["-1", "x", "536870912"]),
            value()
        )
            .prop_map(|(k, o, v)| vec!["SETRANGE".into(), k.into(), o.into(), v.into()]),
    ]
}

/// The end of the RESP2 or RESP3 element that starts at `at`, or `None` if it is not all
/// there yet.
fn element_end(reply: &[u8], at: usize) -> Option<usize> {
    let line_end = at + reply.get(at..)?.windows(2).position(|w| w == b"\r\n")? + 2;
    let count = || -> i64 {
        std::str::from_utf8(&reply[at + 1..line_end - 2])
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad length in {reply:?}"))
    };
    let elements = |n: i64| (0..n.max(0)).try_fold(line_end, |end, _| element_end(reply, end));
    let end = match reply[at] {
        b'$' | b'=' | b'!' if count() >= 0 => line_end + count() as usize + 2,
        b'*' | b'~' | b'>' => elements(count())?,
        b'%' => elements(2 * count())?,
        b'+' | b'-' | b':' | b'$' | b'_' | b',' | b'#' | b'(' => line_end,
        other => panic!("unexpected reply type {:?}", other as char),
    };
    (end <= reply.len()).then_some(end)
}

/// Makes replies comparable across the two servers:
/// - remaining and absolute expiry times depend on the instant each server ran the command,
///   so any positive one compares equal (-1 "no expiry" and -2 "no key" must match exactly);
/// - KEYS lists keys in no set order: its elements are sorted;
/// - EXEC's elements are the replies of the `queued` commands, normalized alike.
fn normalize(args: &[String], reply: Vec<u8>, queued: &[Vec<String>]) -> Vec<u8> {
    let command = args[0].to_ascii_uppercase();
    let timed = matches!(
        command.as_str(),
        "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME"
    );
    if timed && reply.starts_with(b":") && !reply.starts_with(b":-") {
        return b":<positive>\r\n".to_vec();
    }
    let array = reply.starts_with(b"*") && !reply.starts_with(b"*-");
    if !array || !matches!(command.as_str(), "KEYS" | "EXEC") {
        return reply;
    }
    let header_end = reply.iter().position(|&b| b == b'\n').expect("header") + 1;
    let mut elements = Vec::new();
    let mut at = header_end;
    while at < reply.len() {
        let end = element_end(&reply, at).expect("a whole reply");
        elements.push(reply[at..end].to_vec());
        at = end;
    }
    if command == "KEYS" {
        elements.sort();
    } else {
        elements = elements
            .into_iter()
            .zip(queued)
            .map(|(element, args)| normalize(args, element, &[]))
            .collect();
    }
    [reply[..header_end].to_vec(), elements.concat()].concat()
}

/// A decimal (sometimes hexadecimal) number as a client might send it.
fn number() -> impl Strategy<Value = String> {
    let decimal = (
        prop::sample::select(vec!["", "-", "+"]),
        "[0-9]{0,12}",
        prop::option::of("[0-9]{0,12}"),
        prop::option::of(-40_i32..40),
    )
        .prop_filter_map("needs a digit", |(sign, whole, fraction, exponent)| {
            if whole.is_empty() && fraction.as_deref().is_none_or(str::is_empty) {
                return None;
            }
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let exponent = exponent.map(|e| format!("e{e}")).unwrap_or_default();
            Some(format!("{sign}{whole}{fraction}{exponent}"))
        });
    let hex = ("[0-9a-f]{1,6}", -20_i32..20).prop_map(|(h, p)| format!("0x{h}p{p}"));
    prop_oneof![8 => decimal, 1 => hex]
}

/// Runs `cases` random command lists (from `commands`) on a fresh Strata and a fresh
/// redis-server, flushing both before each list; fails on the first reply that differs.
/// `protocol` is 2 or 3 (`HELLO 3` first).
fn differential(cases: u32, protocol: u8, commands: impl Strategy<Value = Vec<Vec<String>>>) {
    let dir = tempfile::tempdir().unwrap();
    let strata = Server::start(&dir.path().join("strata"), &[]);
    std::fs::create_dir_all(dir.path().join("redis")).unwrap();
    let redis = Redis::start(&dir.path().join("redis"));
    let (mut ours, mut theirs) = (Client::new(strata.port), Client::new(redis.port));
    if protocol == 3 {
        // The servers describe themselves differently; only the protocol switch matters.
        for client in [&mut ours, &mut theirs] {
            assert!(client.call(&["HELLO", "3"]).starts_with(b"%"));
        }
    }
    // The runner takes a `Fn`: the two connections sit behind a `RefCell`.
    let clients = std::cell::RefCell::new((ours, theirs));
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("DIFF_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&commands, |commands| {
        let (ours, theirs) = &mut *clients.borrow_mut();
        for client in [&mut *ours, &mut *theirs] {
            // Out of any transaction the last list left open, then empty.
            client.call(&["DISCARD"]);
            client.call(&["UNWATCH"]);
            assert_eq!(client.call(&["FLUSHALL"]), b"+OK\r\n");
        }
        // The commands queued in the open transaction, if any.
        let mut queued: Option<Vec<Vec<String>>> = None;
        for args in &commands {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let in_queue = queued.as_deref().unwrap_or_default();
            let expected = normalize(args, theirs.call(&refs), in_queue);
            let got = normalize(args, ours.call(&refs), in_queue);
            if got != expected {
                return Err(TestCaseError::fail(format!(
                    "{args:?}: strata {:?}, redis {:?}",
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&expected)
                )));
            }
            match (args[0].as_str(), expected.as_slice()) {
                ("MULTI", b"+OK\r\n") => queued = Some(Vec::new()),
                ("EXEC" | "DISCARD", _) => queued = None,
                (_, b"+QUEUED\r\n") => queued.get_or_insert_default().push(args.clone()),
                _ => {}
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn random_commands_get_the_same_replies_as_redis() {
    differential(300, 2, prop::collection::vec(command(), 1..25));
}

/// The same in RESP3 (`HELLO 3`): nulls, maps and the other RESP3 types.
#[test]
fn random_commands_get_the_same_resp3_replies_as_redis() {
    differential(200, 3, prop::collection::vec(command(), 1..25));
}

/// Redis adds in 80-bit `long double` and prints 17 decimals: `0.1 + 0.2` is `0.3` there, and
/// `10000000000.1` comes back as `10000000000.09999999962747097`.
#[test]
fn incrbyfloat_matches_redis_digit_for_digit() {
    let step = (prop::sample::select(vec!["INCRBYFLOAT", "SET"]), number())
        .prop_map(|(c, n)| vec![c.to_string(), "f".to_string(), n]);
    differential(300, 2, prop::collection::vec(step, 1..6));
}
