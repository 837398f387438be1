//! Commands and protocol over raw sockets: exact reply bytes, pipelining, RESP3, bad input.

use crate::Server;

#[test]
fn replies_match_redis_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    c.roundtrip(&["PING"], b"+PONG\r\n");
    c.roundtrip(&["SET", "k", "v", "EX", "100"], b"+OK\r\n");
    c.roundtrip(&["GET", "k"], b"$1\r\nv\r\n");
    c.roundtrip(&["GET", "missing"], b"$-1\r\n");
    c.roundtrip(&["SET", "k", "w", "NX"], b"$-1\r\n");
    c.roundtrip(&["SET", "k", "w", "XX", "GET"], b"$1\r\nv\r\n");
    c.roundtrip(&["TTL", "k"], b":-1\r\n");
    c.roundtrip(
        &["SET", "k", "x", "PX", "0"],
        b"-ERR invalid expire time in 'set' command\r\n",
    );
    c.roundtrip(&["SET", "k", "x", "NX", "XX"], b"-ERR syntax error\r\n");
    c.roundtrip(
        &["INCR", "k"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    c.roundtrip(
        &["INCRBY", "n", "9223372036854775807"],
        b":9223372036854775807\r\n",
    );
    c.roundtrip(
        &["INCR", "n"],
        b"-ERR increment or decrement would overflow\r\n",
    );
    c.roundtrip(&["APPEND", "s", "ab"], b":2\r\n");
    c.roundtrip(&["SETRANGE", "s", "4", "z"], b":5\r\n");
    c.roundtrip(&["GET", "s"], b"$5\r\nab\x00\x00z\r\n");
    c.roundtrip(&["GETRANGE", "s", "-1", "-1"], b"$1\r\nz\r\n");
    c.roundtrip(&["INCRBYFLOAT", "f", "10.5"], b"$4\r\n10.5\r\n");
    c.roundtrip(
        &["MSET", "a", "1", "b"],
        b"-ERR wrong number of arguments for 'mset' command\r\n",
    );
    c.roundtrip(&["MSETNX", "a", "1", "k", "2"], b":0\r\n");
    c.roundtrip(&["EXISTS", "a", "k", "k"], b":2\r\n");
    c.roundtrip(&["EXPIRE", "k", "100", "NX"], b":1\r\n");
    c.roundtrip(&["EXPIRE", "k", "50", "GT"], b":0\r\n");
    c.roundtrip(
        &["EXPIRE", "k", "50", "NX", "XX"],
        b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    );
    c.roundtrip(&["PERSIST", "k"], b":1\r\n");
    c.roundtrip(&["TYPE", "k"], b"+string\r\n");
    c.roundtrip(&["TYPE", "nope"], b"+none\r\n");
    c.roundtrip(&["RENAME", "nope", "x"], b"-ERR no such key\r\n");
    c.roundtrip(&["RENAME", "k", "k2"], b"+OK\r\n");
    c.roundtrip(&["GETDEL", "k2"], b"$1\r\nw\r\n");
    c.roundtrip(&["DEL", "k2", "a", "s"], b":1\r\n");
    c.roundtrip(
        &["GET"],
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.roundtrip(
        &["NOSUCH", "x", "y"],
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' 'y' \r\n",
    );
    c.roundtrip(&["SELECT", "1"], b"-ERR DB index is out of range\r\n");
    c.roundtrip(&["EXPIRE", "f", "-1"], b":1\r\n");
    c.roundtrip(&["EXISTS", "f"], b":0\r\n");
    c.roundtrip(&["FLUSHALL"], b"+OK\r\n");
    c.roundtrip(&["DBSIZE"], b":0\r\n");
}

/// RENAME once held the destination's stripe lock while taking the source's: when both keys
/// hashed to the same one of the 256 stripes, the server hung for good.
#[test]
fn rename_between_any_two_keys_completes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    // 2,000 pairs: all on different stripes has a chance of (255/256)^2000, under 0.1%.
    for i in 0..2000 {
        let (from, to) = (format!("from{i}"), format!("to{i}"));
        c.roundtrip(&["SET", &from, "v"], b"+OK\r\n");
        c.roundtrip(&["RENAME", &from, &to], b"+OK\r\n");
        c.roundtrip(&["RENAMENX", &to, &from], b":1\r\n");
    }
    c.roundtrip(&["DBSIZE"], b":2000\r\n");
}

#[test]
fn a_pipeline_of_thousands_gets_every_reply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..5000 {
        let (k, v) = (format!("key{i}"), format!("value{i}"));
        wire.extend_from_slice(&crate::encode(&["SET", &k, &v]));
        wire.extend_from_slice(&crate::encode(&["GET", &k]));
        expected.extend_from_slice(b"+OK\r\n");
        expected.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    // Sent in odd-sized pieces: frames split anywhere must still parse.
    for chunk in wire.chunks(997) {
        c.send(chunk);
    }
    c.expect(&expected);
}

#[test]
fn transactions_and_watch_behave_like_redis() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut a = server.connect();
    let mut b = server.connect();
    a.roundtrip(&["MULTI"], b"+OK\r\n");
    a.roundtrip(&["SET", "x", "1"], b"+QUEUED\r\n");
    a.roundtrip(&["INCR", "x"], b"+QUEUED\r\n");
    a.roundtrip(&["EXEC"], b"*2\r\n+OK\r\n:2\r\n");
    a.roundtrip(&["MULTI"], b"+OK\r\n");
    a.roundtrip(
        &["NOSUCH"],
        b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    );
    a.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    a.roundtrip(&["EXEC"], b"-ERR EXEC without MULTI\r\n");
    // WATCH: another client's write makes EXEC return a null array.
    a.roundtrip(&["WATCH", "x"], b"+OK\r\n");
    b.roundtrip(&["SET", "x", "changed"], b"+OK\r\n");
    a.roundtrip(&["MULTI"], b"+OK\r\n");
    a.roundtrip(&["SET", "x", "mine"], b"+QUEUED\r\n");
    a.roundtrip(&["EXEC"], b"*-1\r\n");
    a.roundtrip(&["GET", "x"], b"$7\r\nchanged\r\n");
    // Without interference it commits.
    a.roundtrip(&["WATCH", "x"], b"+OK\r\n");
    a.roundtrip(&["MULTI"], b"+OK\r\n");
    a.roundtrip(&["SET", "x", "mine"], b"+QUEUED\r\n");
    a.roundtrip(&["EXEC"], b"*1\r\n+OK\r\n");
    a.roundtrip(&["DISCARD"], b"-ERR DISCARD without MULTI\r\n");
}

#[test]
fn resp3_after_hello_3() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    c.command(&["HELLO", "3"]);
    c.expect_prefix(
        b"%7\r\n+server\r\n$5\r\nredis\r\n+version\r\n$5\r\n7.2.0\r\n+proto\r\n:3\r\n+id\r\n",
    );
    let mut rest = server.connect();
    rest.roundtrip(
        &["HELLO", "4"],
        b"-NOPROTO unsupported protocol version\r\n",
    );
    c.roundtrip(&["GET", "missing"], b"_\r\n");
    c.roundtrip(
        &["CONFIG", "GET", "maxclients"],
        b"%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n",
    );
}

#[test]
fn malformed_input_gets_a_protocol_error_and_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-value-size", "1kb"]);
    let cases: [(&[u8], &[u8]); 4] = [
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n:5\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*1\r\n$2000\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET \"unbalanced\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, reply) in cases {
        let mut c = server.connect();
        c.send(input);
        c.expect(reply);
        assert!(
            c.closed(),
            "{:?} left the connection open",
            String::from_utf8_lossy(input)
        );
    }
    // APPEND and SETRANGE cannot build a value larger than a client may send.
    let mut c = server.connect();
    let half = "x".repeat(600);
    c.roundtrip(&["SET", "grow", &half], b"+OK\r\n");
    c.roundtrip(
        &["APPEND", "grow", &half],
        b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n",
    );
    c.roundtrip(
        &["SETRANGE", "grow", "2000", "y"],
        b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n",
    );
    c.roundtrip(&["STRLEN", "grow"], b":600\r\n");
    // A partial frame waits; the rest completes it; inline commands work.
    let mut c = server.connect();
    c.send(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel");
    std::thread::sleep(std::time::Duration::from_millis(50));
    c.send(b"lo\r\nPING\r\n");
    c.expect(b"$5\r\nhello\r\n+PONG\r\n");
    // The server survived all of it.
    assert_eq!(crate::cli(server.port, &["PING"]), "PONG");
}
