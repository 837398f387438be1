//! Real clients: `redis-cli` (RESP2 and RESP3) and `redis-py` (RESP2 and RESP3, pipelines,
//! transactions).

use std::process::Command;

use crate::{Server, cli};

#[test]
fn redis_cli_resp2_and_resp3() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let p = server.port;
    assert_eq!(cli(p, &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(p, &["GET", "greeting"]), "hello world");
    assert_eq!(cli(p, &["STRLEN", "greeting"]), "11");
    assert_eq!(cli(p, &["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(cli(p, &["MGET", "a", "b", "nope"]), "1\n2");
    assert_eq!(cli(p, &["INCRBY", "a", "41"]), "42");
    assert_eq!(cli(p, &["EXPIRE", "a", "100"]), "1");
    assert_eq!(cli(p, &["TTL", "a"]), "100");
    let keys = cli(p, &["KEYS", "*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a", "b", "greeting"]);
    assert_eq!(cli(p, &["DBSIZE"]), "3");
    assert!(cli(p, &["INFO", "stats"]).contains("keyspace_hits:"));
    // RESP3: redis-cli -3 prints typed replies.
    assert_eq!(cli(p, &["-3", "--no-raw", "GET", "nope"]), "(nil)");
    assert!(cli(p, &["-3", "--no-raw", "HELLO", "3"]).contains("proto => (integer) 3"));
    assert_eq!(cli(p, &["-3", "INCRBYFLOAT", "f", "1.5"]), "1.5");
    // Strata's own commands: tags.
    assert_eq!(cli(p, &["SET", "page:/u/42", "<html>"]), "OK");
    assert_eq!(cli(p, &["SET", "feed:42", "[...]"]), "OK");
    assert_eq!(cli(p, &["STRATA.TAG", "page:/u/42", "user:42"]), "1");
    assert_eq!(cli(p, &["STRATA.TAG", "feed:42", "user:42"]), "1");
    assert_eq!(cli(p, &["STRATA.TAG", "missing", "user:42"]), "0");
    assert_eq!(cli(p, &["STRATA.INVALIDATE", "user:42"]), "2");
    assert_eq!(cli(p, &["EXISTS", "page:/u/42", "feed:42"]), "0");
    // Inline commands (what telnet and `redis-cli` without args send are RESP arrays; this is
    // the inline form).
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'PING\\r\\n' | redis-cli -p {p}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
}

const REDIS_PY: &str = r#"
import sys, redis
port, protocol = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(port=port, protocol=protocol, decode_responses=True)
assert r.ping()
r.flushall()
assert r.set("k", "v", ex=100)
assert r.get("k") == "v"
assert 95 <= r.ttl("k") <= 100
assert r.set("k", "w", nx=True) is None
assert r.set("k", "w", xx=True, get=True) == "v"
assert r.incr("counter") == 1 and r.incrby("counter", 5) == 6 and r.decr("counter") == 5
assert abs(r.incrbyfloat("f", 2.5) - 2.5) < 1e-9
assert r.mset({"a": "1", "b": "2"}) and r.mget("a", "b", "zz") == ["1", "2", None]
assert r.append("a", "0") == 2 and r.getrange("a", 0, 0) == "1"
assert r.exists("a", "b", "zz") == 2
assert r.expire("b", 50) and r.persist("b") and r.ttl("b") == -1
assert r.rename("b", "b2") and r.get("b2") == "2"
assert r.getdel("b2") == "2" and r.get("b2") is None
assert r.getex("k", px=50000) == "w" and r.pttl("k") > 0
assert r.type("k") == "string"
assert set(r.keys("*")) == {"k", "counter", "f", "a"}
assert set(r.scan_iter(match="*", count=2)) == {"k", "counter", "f", "a"}
assert r.dbsize() == 4
# Pipelines, with and without a transaction.
with r.pipeline(transaction=False) as p:
    for i in range(200):
        p.set(f"p{i}", i)
    p.get("p7")
    assert p.execute()[-1] == "7"
with r.pipeline(transaction=True) as p:
    p.incr("counter").incr("counter").get("counter")
    assert p.execute() == [6, 7, "7"]
# Optimistic locking: a conflicting write aborts the transaction.
other = redis.Redis(port=port, protocol=protocol, decode_responses=True)
with r.pipeline() as p:
    p.watch("counter")
    other.set("counter", 100)
    p.multi()
    p.set("counter", 0)
    try:
        p.execute()
        raise AssertionError("EXEC should have been aborted")
    except redis.WatchError:
        pass
assert r.get("counter") == "100"
# Errors surface as Python exceptions with Redis's messages.
try:
    r.incr("k")
    raise AssertionError("INCR on a string should fail")
except redis.ResponseError as e:
    assert "not an integer" in str(e)
info = r.info()
assert info["redis_version"] and "keyspace_hits" in info
assert r.config_get("maxclients") == {"maxclients": "10000"}
assert r.client_setname("tester") and r.client_getname() == "tester"
assert r.client_id() > 0
assert r.time()[0] > 1_700_000_000
r.flushdb()
assert r.dbsize() == 0
print("ok", protocol)
"#;

#[test]
fn redis_py_resp2_and_resp3() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for protocol in ["2", "3"] {
        let out = Command::new("python3")
            .args(["-c", REDIS_PY, &server.port.to_string(), protocol])
            .output()
            .expect("python3 must be installed");
        assert!(
            out.status.success(),
            "redis-py (protocol {protocol}) failed (pip install redis):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ok {protocol}")
        );
    }
}

/// Django's own cache backend (`django.core.cache.backends.redis.RedisCache`), as a web
/// application would use it: set/get, add, set_many/get_many, incr/decr, touch, delete_many,
/// get_or_set, a timeout that expires, clear.
const DJANGO: &str = r#"
import sys
import django
from django.conf import settings
port = int(sys.argv[1])
settings.configure(CACHES={"default": {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": f"redis://127.0.0.1:{port}",
    "KEY_PREFIX": "site",
    "TIMEOUT": 300,
}})
django.setup()
from django.core.cache import cache
cache.clear()
cache.set("greeting", {"text": "hello", "n": 1})
assert cache.get("greeting") == {"text": "hello", "n": 1}
assert cache.get("missing", "default") == "default"
assert cache.add("greeting", "other") is False
assert cache.add("fresh", 5) is True
cache.set_many({"a": 1, "b": [1, 2], "c": "three"})
assert cache.get_many(["a", "b", "c", "zz"]) == {"a": 1, "b": [1, 2], "c": "three"}
assert cache.incr("a") == 2 and cache.decr("a", 2) == 0
assert cache.has_key("b") and not cache.has_key("zz")
assert cache.touch("b", 10)
cache.delete_many(["a", "b"])
assert cache.get("a") is None
assert cache.get_or_set("computed", lambda: 42) == 42
cache.set("short", 1, timeout=1)
import time; time.sleep(1.2)
assert cache.get("short") is None
assert cache.delete("c") is True and cache.delete("c") is False
cache.clear()
assert cache.get("greeting") is None
print("django ok")
"#;

#[test]
fn djangos_redis_cache_backend_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let out = Command::new("python3")
        .args(["-c", DJANGO, &server.port.to_string()])
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "Django's cache failed (pip install django redis):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "django ok");
}

/// node-redis 4 (installed by `.ci/run` under `target/node-redis`).
const NODE_REDIS: &str = r#"
import { createClient } from 'redis';
const port = Number(process.argv[2]);
const client = createClient({ url: `redis://127.0.0.1:${port}` });
client.on('error', (e) => { console.error(e); process.exit(1); });
await client.connect();
await client.flushAll();
await client.set('k', 'v', { EX: 100 });
if ((await client.get('k')) !== 'v') throw new Error('get');
const [a, b] = await client.multi().incr('n').incrBy('n', 5).exec();
if (a !== 1 || b !== 6) throw new Error(`multi ${a} ${b}`);
await client.mSet({ x: '1', y: '2' });
const got = await client.mGet(['x', 'y', 'z']);
if (JSON.stringify(got) !== JSON.stringify(['1', '2', null])) throw new Error(JSON.stringify(got));
if ((await client.ttl('k')) <= 0) throw new Error('ttl');
const keys = [];
for await (const key of client.scanIterator({ MATCH: '*', COUNT: 2 })) keys.push(key);
if (keys.sort().join(',') !== 'k,n,x,y') throw new Error(keys.join(','));
await client.quit();
console.log('node-redis ok');
"#;

#[test]
fn node_redis_works_unchanged() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/node-redis");
    if !dir.join("node_modules/redis").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "node-redis is not installed (npm install --prefix target/node-redis redis@4)"
        );
        eprintln!("skipped: node-redis is not installed under target/node-redis");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let script = dir.join("strata-check.mjs");
    std::fs::write(&script, NODE_REDIS).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(server.port.to_string())
        .output()
        .expect("node must be installed");
    assert!(
        out.status.success(),
        "node-redis failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "node-redis ok");
}

#[test]
fn scan_walks_every_key_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    let mut wire = Vec::new();
    for i in 0..3000 {
        wire.extend_from_slice(&crate::encode(&["SET", &format!("key:{i}"), "v"]));
    }
    c.send(&wire);
    c.expect(&b"+OK\r\n".repeat(3000));
    // redis-cli --scan runs the SCAN cursor loop.
    let listed = cli(server.port, &["--scan"]);
    let mut keys: Vec<&str> = listed.lines().collect();
    assert_eq!(keys.len(), 3000, "every key once");
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 3000, "no key twice");
    let matched = cli(server.port, &["--scan", "--pattern", "key:12*"]);
    assert_eq!(matched.lines().count(), 111); // key:12, key:120..129, key:1200..1299
}
