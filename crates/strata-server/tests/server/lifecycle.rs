//! Restarts (SIGTERM and kill -9), graceful shutdown, client limits and metrics.

use crate::{Server, cli, free_port};

fn fill(port: u16, n: usize) {
    let mut c = crate::Conn::new(port);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let (k, v) = (format!("key:{i}"), format!("value:{i}"));
        wire.extend_from_slice(&crate::encode(&["SET", &k, &v]));
        expected.extend_from_slice(b"+OK\r\n");
    }
    c.send(&wire);
    c.expect(&expected);
}

/// A numeric field of an `INFO` reply.
fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {info}"))
}

fn check(port: u16, n: usize, dbsize: usize) {
    for i in (0..n).step_by(97) {
        assert_eq!(
            cli(port, &["GET", &format!("key:{i}")]),
            format!("value:{i}"),
            "key:{i}"
        );
    }
    assert_eq!(cli(port, &["DBSIZE"]), dbsize.to_string());
}

#[test]
fn keys_survive_a_sigterm_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    fill(server.port, 3000);
    assert_eq!(
        cli(server.port, &["SET", "ttl-key", "x", "EX", "1000"]),
        "OK"
    );
    let status = server.stop("TERM");
    assert!(status.success(), "SIGTERM exit: {status:?}");
    let server = Server::start(dir.path(), &[]);
    check(server.port, 3000, 3001);
    let ttl: i64 = cli(server.port, &["TTL", "ttl-key"]).parse().unwrap();
    assert!(
        (990..=1000).contains(&ttl),
        "TTL kept across the restart: {ttl}"
    );
}

#[test]
fn acknowledged_writes_survive_kill_9_with_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--fsync", "always"]);
    fill(server.port, 2000);
    assert_eq!(cli(server.port, &["DEL", "key:0"]), "1");
    server.stop("KILL");
    let server = Server::start(dir.path(), &["--fsync", "always"]);
    assert_eq!(
        cli(server.port, &["GET", "key:0"]),
        "",
        "a deleted key stays deleted"
    );
    for i in (1..2000).step_by(97) {
        assert_eq!(
            cli(server.port, &["GET", &format!("key:{i}")]),
            format!("value:{i}")
        );
    }
}

#[test]
fn kill_9_under_the_default_policy_loses_at_most_the_last_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    fill(server.port, 1000);
    // The default policy syncs every second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.stop("KILL");
    let server = Server::start(dir.path(), &[]);
    check(server.port, 1000, 1000);
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Server::start(dir.path(), &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another Strata store"),
        "{stderr}"
    );
}

#[test]
fn memory_evictions_spill_to_disk_not_to_oblivion() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB of memory tier for ~5 MiB of values: most reads come back from disk.
    let server = Server::start(dir.path(), &["--maxmemory", "1mb"]);
    let value = "x".repeat(1000);
    let mut c = server.connect();
    for i in 0..5000 {
        c.roundtrip(&["SET", &format!("big:{i}"), &value], b"+OK\r\n");
    }
    for i in (0..5000).step_by(250) {
        c.roundtrip(&["STRLEN", &format!("big:{i}")], b":1000\r\n");
    }
    let info = cli(server.port, &["INFO", "strata"]);
    assert!(info_field(&info, "disk_tier_hits") > 0, "{info}");
}

/// Without a disk tier, a value heavier than a memory-tier shard's share is kept (the other
/// shards lend it capacity), and one heavier than `maxmemory` is refused with OOM, as Redis
/// refuses it: not acknowledged and dropped.
#[test]
fn without_a_disk_tier_a_value_fits_maxmemory_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--maxmemory", "1mb", "--no-disk"]);
    let mut c = server.connect();
    c.roundtrip(&["SET", "big", &"b".repeat(600_000)], b"+OK\r\n");
    c.roundtrip(&["STRLEN", "big"], b":600000\r\n");
    c.command(&["SET", "huge", &"h".repeat(1_100_000)]);
    c.expect_prefix(b"-OOM ");
    c.roundtrip(&["EXISTS", "huge"], b":0\r\n");
    // One value too large refuses the whole MSET.
    c.command(&["MSET", "small", "s", "huge", &"h".repeat(1_100_000)]);
    c.expect_prefix(b"-OOM ");
    c.roundtrip(&["EXISTS", "small", "huge"], b":0\r\n");
    c.roundtrip(&["STRLEN", "big"], b":600000\r\n");
}

#[test]
fn maxclients_refuses_the_extra_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--maxclients", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    a.roundtrip(&["PING"], b"+PONG\r\n");
    b.roundtrip(&["PING"], b"+PONG\r\n");
    let mut c = server.connect();
    c.expect(b"-ERR max number of clients reached\r\n");
    assert!(c.closed());
    drop(a);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut d = server.connect();
    d.roundtrip(&["PING"], b"+PONG\r\n");
}

#[test]
fn prometheus_metrics_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let server = Server::start(dir.path(), &["--metrics-bind", &bind]);
    cli(server.port, &["SET", "a", "1"]);
    cli(server.port, &["GET", "a"]);
    cli(server.port, &["GET", "missing"]);
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut http, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut http, &mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("strata_keyspace_hits_total 1\n"), "{body}");
    assert!(body.contains("strata_keyspace_misses_total 1\n"), "{body}");
    assert!(
        body.contains("strata_commands_total{command=\"set\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("strata_command_duration_seconds_bucket{le=\"+Inf\"}"),
        "{body}"
    );
    assert!(body.contains("strata_resident_memory_bytes"), "{body}");
    assert!(body.contains("strata_tier_bytes{tier=\"disk\"}"), "{body}");
}

#[test]
fn config_set_maxmemory_shrinks_the_memory_tier_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--maxmemory", "64mb"]);
    let value = "y".repeat(1000);
    let mut c = server.connect();
    for i in 0..4000 {
        c.roundtrip(&["SET", &format!("k:{i}"), &value], b"+OK\r\n");
    }
    assert!(info_field(&cli(server.port, &["INFO", "strata"]), "memory_tier_bytes") > 3_000_000);
    assert_eq!(
        cli(server.port, &["CONFIG", "SET", "maxmemory", "1mb"]),
        "OK"
    );
    assert_eq!(
        cli(server.port, &["CONFIG", "GET", "maxmemory"]),
        "maxmemory\n1048576"
    );
    let info = cli(server.port, &["INFO", "strata"]);
    assert!(info_field(&info, "memory_tier_bytes") <= 1 << 20);
    // Each key is in exactly one tier, and what memory let go of is on disk already.
    assert_eq!(
        info_field(&info, "memory_tier_entries") + info_field(&info, "disk_tier_entries"),
        4000,
        "{info}"
    );
    // Evicted from memory, not lost: the disk tier still has every key.
    for i in (0..4000).step_by(400) {
        c.roundtrip(&["STRLEN", &format!("k:{i}")], b":1000\r\n");
    }
    let refused = cli(server.port, &["CONFIG", "SET", "maxmemory", "10"]);
    assert!(refused.contains("at least 1mb"), "{refused}");
}

/// Like Redis's active expiry: keys whose TTL passed are reclaimed (their memory freed) even
/// when no command touches them again.
#[test]
fn an_idle_server_reclaims_expired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    for i in 0..2000 {
        c.roundtrip(&["SET", &format!("t:{i}"), "v", "PX", "100"], b"+OK\r\n");
    }
    c.roundtrip(&["SET", "kept", "v"], b"+OK\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let entries = info_field(
            &cli(server.port, &["INFO", "strata"]),
            "memory_tier_entries",
        );
        if entries == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{entries} entries in memory 10 s after their TTL of 100 ms"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(cli(server.port, &["DBSIZE"]), "1");
}

/// Keys move between memory (1 MiB) and disk while they are written, overwritten, deleted and
/// read; after kill -9 under `--fsync always`, each comes back with its last acknowledged value,
/// and deleted ones stay deleted, wherever they lived at the crash.
#[test]
fn kill_9_finds_each_key_at_its_last_value_whichever_tier_held_it() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--maxmemory", "1mb", "--fsync", "always"];
    let server = Server::start(dir.path(), &args);
    let value = |version: u32, i: u32| format!("v{version}-{i}-{}", "x".repeat(500));
    let mut c = server.connect();
    const KEYS: u32 = 4000;
    let mut run = |commands: Vec<Vec<String>>, reply: &dyn Fn(&[String]) -> Vec<u8>| {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for command in &commands {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            wire.extend_from_slice(&crate::encode(&args));
            expected.extend_from_slice(&reply(command));
        }
        c.send(&wire);
        c.expect(&expected);
    };
    let set = |version: u32, keys: &mut dyn Iterator<Item = u32>| -> Vec<Vec<String>> {
        keys.map(|i| vec!["SET".into(), format!("k:{i}"), value(version, i)])
            .collect()
    };
    run(set(1, &mut (0..KEYS)), &|_| b"+OK\r\n".to_vec());
    // Reads of old keys bring them back from disk, pushing others out.
    let bulk = |v: &str| format!("${}\r\n{v}\r\n", v.len()).into_bytes();
    run(
        (0..KEYS)
            .step_by(7)
            .map(|i| vec!["GET".into(), format!("k:{i}")])
            .collect(),
        &|c| {
            let i: u32 = c[1][2..].parse().unwrap();
            bulk(&value(1, i))
        },
    );
    run(set(2, &mut (0..KEYS).step_by(2)), &|_| b"+OK\r\n".to_vec());
    run(
        (0..KEYS)
            .step_by(5)
            .map(|i| vec!["DEL".into(), format!("k:{i}")])
            .collect(),
        &|_| b":1\r\n".to_vec(),
    );
    server.stop("KILL");

    let server = Server::start(dir.path(), &args);
    let expected = |i: u32| match (i % 5, i % 2) {
        (0, _) => String::new(),
        (_, 0) => value(2, i),
        _ => value(1, i),
    };
    for i in (0..KEYS).step_by(13) {
        assert_eq!(
            cli(server.port, &["GET", &format!("k:{i}")]),
            expected(i),
            "k:{i}"
        );
    }
    let live = (0..KEYS).filter(|i| i % 5 != 0).count();
    assert_eq!(cli(server.port, &["DBSIZE"]), live.to_string());
}

/// The reply a GET of a model's value gets.
fn bulk(value: Option<&String>) -> Vec<u8> {
    match value {
        Some(v) => format!("${}\r\n{v}\r\n", v.len()).into_bytes(),
        None => b"$-1\r\n".to_vec(),
    }
}

/// Four clients, each on its own keys, send pipelines of SET, GET, APPEND, DEL and EXISTS
/// at once to a server whose memory tier (1 MB) is far smaller than their data, so that keys
/// move between memory and disk all along, on two threads. Every reply is the one the
/// client's own model predicts, byte for byte; after a SIGTERM restart every key reads as
/// its last write.
#[test]
fn concurrent_pipelining_clients_read_their_own_writes_across_tiers_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--maxmemory", "1mb", "--threads", "2"];
    let server = Server::start(dir.path(), &args);
    let port = server.port;
    let models: Vec<std::collections::HashMap<String, String>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4_u64)
            .map(|t| {
                s.spawn(move || {
                    let mut c = crate::Conn::new(port);
                    let mut model = std::collections::HashMap::new();
                    let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (t + 1);
                    for round in 0..150 {
                        let (mut wire, mut expected) = (Vec::new(), Vec::new());
                        for i in 0..32 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let key = format!("c{t}:k{}", (x >> 8) % 200);
                            match x % 10 {
                                0..=3 => {
                                    let len = 10 + (x >> 32) as usize % 3000;
                                    let stamp = format!("{t}.{round}.{i}|");
                                    let value: String = stamp.chars().cycle().take(len).collect();
                                    wire.extend(crate::encode(&["SET", &key, &value]));
                                    expected.extend_from_slice(b"+OK\r\n");
                                    model.insert(key, value);
                                }
                                4..=6 => {
                                    wire.extend(crate::encode(&["GET", &key]));
                                    expected.extend(bulk(model.get(&key)));
                                }
                                7 => {
                                    wire.extend(crate::encode(&["APPEND", &key, "+"]));
                                    let value = model.entry(key).or_default();
                                    value.push('+');
                                    expected.extend(format!(":{}\r\n", value.len()).into_bytes());
                                }
                                8 => {
                                    wire.extend(crate::encode(&["DEL", &key]));
                                    let existed = model.remove(&key).is_some();
                                    expected
                                        .extend(format!(":{}\r\n", u8::from(existed)).into_bytes());
                                }
                                _ => {
                                    wire.extend(crate::encode(&["EXISTS", &key]));
                                    let exists = model.contains_key(&key);
                                    expected
                                        .extend(format!(":{}\r\n", u8::from(exists)).into_bytes());
                                }
                            }
                        }
                        c.send(&wire);
                        c.expect(&expected);
                    }
                    model
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect()
    });
    let info = cli(port, &["INFO", "strata"]);
    assert!(
        info_field(&info, "memory_tier_evictions") > 0 && info_field(&info, "disk_tier_hits") > 0,
        "keys moved between the tiers: {info}"
    );
    let status = server.stop("TERM");
    assert!(status.success(), "SIGTERM exit: {status:?}");
    let server = Server::start(dir.path(), &args);
    let mut c = server.connect();
    for (t, model) in models.iter().enumerate() {
        let (mut wire, mut expected) = (Vec::new(), Vec::new());
        for k in 0..200 {
            let key = format!("c{t}:k{k}");
            wire.extend(crate::encode(&["GET", &key]));
            expected.extend(bulk(model.get(&key)));
        }
        c.send(&wire);
        c.expect(&expected);
    }
}
