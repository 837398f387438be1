//! The tiered cache: promotion, write-through, and invalidations reaching another client's
//! local tiers (separate runtimes, separate connections).

use std::time::{Duration, Instant};

use strata::Tag;
use strata_redis::{RedisConfig, RedisTier, TieredCache};

use crate::{cluster_config, standalone_config};

async fn tiered(
    config: RedisConfig,
    disk: Option<&std::path::Path>,
) -> TieredCache<String, String> {
    let mut builder = TieredCache::builder().redis(config).memory(1000);
    if let Some(dir) = disk {
        builder = builder.disk(
            strata::DiskStore::builder(dir)
                .max_bytes(16 << 20)
                .open()
                .unwrap(),
        );
    }
    subscribed(builder.build().await.unwrap()).await
}

/// `cache`, once its invalidation channel is up.
async fn subscribed(cache: TieredCache<String, String>) -> TieredCache<String, String> {
    let start = Instant::now();
    while !cache.stats().subscribed {
        assert!(start.elapsed() < Duration::from_secs(5), "never subscribed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache
}

#[tokio::test]
async fn reads_promote_with_the_ttl_left_and_writes_go_through() {
    let Some(config) = standalone_config("promote") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = tiered(config.clone(), None).await;
    let reader = tiered(config, Some(dir.path())).await;
    writer
        .insert_with(
            &"k".to_string(),
            "v".to_string(),
            Some(Duration::from_millis(800)),
            &[],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // From Redis, promoted into disk and memory with ~400 ms left.
    assert_eq!(
        reader.get(&"k".to_string()).await.unwrap().as_deref(),
        Some("v")
    );
    assert_eq!(
        reader.get(&"k".to_string()).await.unwrap().as_deref(),
        Some("v")
    );
    let stats = reader.stats();
    assert_eq!((stats.redis.hits, stats.memory.hits), (1, 1), "{stats:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A fresh TTL would still hold it; the promoted copy expired with the original.
    assert_eq!(reader.get(&"k".to_string()).await.unwrap(), None);
}

/// Runs `f` on a second runtime on its own thread: an independent client.
fn on_other_runtime<T: Send + 'static>(
    f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        f(&rt)
    })
    .join()
    .unwrap()
}

/// Polls `cache` until `key` reads `want`; the time it took.
async fn until(cache: &TieredCache<String, String>, key: &str, want: Option<&str>) -> Duration {
    let start = Instant::now();
    loop {
        if cache.get(&key.to_string()).await.unwrap().as_deref() == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{key} never became {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn invalidations_reach_the_other_client(config: RedisConfig) {
    let a = tiered(config.clone(), None).await;
    a.insert(&"x".to_string(), "1".to_string()).await.unwrap();
    a.insert_with(
        &"tagged".to_string(),
        "t".to_string(),
        None,
        &[Tag::from("group")],
    )
    .await
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<Duration>>();
    let b_config = config.clone();
    let b = std::thread::spawn(move || {
        on_other_runtime(move |rt| {
            rt.block_on(async move {
                let b = tiered(b_config, None).await;
                let mut delays = Vec::new();
                // B caches the values locally, then watches them change under it.
                assert_eq!(b.get(&"x".to_string()).await.unwrap().as_deref(), Some("1"));
                tx.send("ready").unwrap();
                delays.push(until(&b, "x", Some("2")).await);
                tx.send("updated").unwrap();
                delays.push(until(&b, "x", None).await);
                tx.send("removed").unwrap();
                assert_eq!(
                    b.get(&"tagged".to_string()).await.unwrap().as_deref(),
                    Some("t")
                );
                tx.send("tag-ready").unwrap();
                delays.push(until(&b, "tagged", None).await);
                assert!(b.stats().invalidations_received >= 3, "{:?}", b.stats());
                done_tx.send(delays).unwrap();
            });
        });
    });
    assert_eq!(rx.recv().unwrap(), "ready");
    a.insert(&"x".to_string(), "2".to_string()).await.unwrap();
    assert_eq!(rx.recv().unwrap(), "updated");
    a.remove(&"x".to_string()).await.unwrap();
    assert_eq!(rx.recv().unwrap(), "removed");
    assert_eq!(rx.recv().unwrap(), "tag-ready");
    a.invalidate_tag("group").await.unwrap();
    let delays = done_rx.recv().unwrap();
    b.join().unwrap();
    eprintln!("invalidation propagation delays: {delays:?}");
    for d in delays {
        assert!(d < Duration::from_secs(1), "propagation took {d:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalidations_reach_another_client_standalone() {
    let Some(config) = standalone_config("coherence") else {
        return;
    };
    invalidations_reach_the_other_client(config).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalidations_reach_another_client_in_a_cluster() {
    let Some(config) = cluster_config("coherence") else {
        return;
    };
    invalidations_reach_the_other_client(config).await;
}

/// With client tracking, a change made by another program (here a plain `DEL`) reaches the
/// local tiers too.
#[tokio::test(flavor = "multi_thread")]
async fn tracking_sees_writes_by_other_programs() {
    let Some(config) = standalone_config("tracking") else {
        return;
    };
    let cache = tiered(config.clone(), None).await;
    cache
        .insert(&"k".to_string(), "v".to_string())
        .await
        .unwrap();
    assert_eq!(
        cache.get(&"k".to_string()).await.unwrap().as_deref(),
        Some("v")
    );
    let data_key = {
        let mut key = cache.redis().unwrap().data_prefix_for_tests();
        key.extend_from_slice(b"\x01k"); // postcard's encoding of "k"
        key
    };
    let mut raw = crate::raw(&crate::standalone().unwrap()).await;
    let deleted: i64 = redis::AsyncCommands::del(&mut raw, &data_key)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let start = Instant::now();
    while cache.get(&"k".to_string()).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the local copy outlived the DEL"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(cache.stats().invalidations_received >= 1);
}

/// Values go to disk and Redis through a pluggable codec: JSON compressed with LZ4 here.
#[tokio::test]
async fn a_compressed_json_codec_round_trips_and_shrinks_redis_values() {
    let Some(config) = standalone_config("codec") else {
        return;
    };
    let codec = || strata_redis::Lz4::new(strata_redis::Json);
    let writer: TieredCache<String, Vec<String>> = TieredCache::builder()
        .redis(config.clone())
        .codec(codec())
        .build()
        .await
        .unwrap();
    let reader: TieredCache<String, Vec<String>> = TieredCache::builder()
        .redis(config.clone())
        .memory(10)
        .codec(codec())
        .build()
        .await
        .unwrap();
    let rows: Vec<String> = (0..500)
        .map(|i| format!("row {i}: the same words again"))
        .collect();
    writer
        .insert(&"report".to_string(), rows.clone())
        .await
        .unwrap();
    assert_eq!(
        reader.get(&"report".to_string()).await.unwrap(),
        Some(rows.clone())
    );
    let (stored, _) = writer
        .redis()
        .unwrap()
        .get(b"\x06report")
        .await
        .unwrap()
        .unwrap();
    let json_len = serde_json::to_vec(&rows).unwrap().len();
    assert!(
        stored.len() < json_len / 4,
        "stored {} bytes for {json_len} bytes of JSON",
        stored.len()
    );
    // A reader with another codec sees a miss, not garbage.
    let other: TieredCache<String, Vec<String>> =
        TieredCache::builder().redis(config).build().await.unwrap();
    assert_eq!(other.get(&"report".to_string()).await.unwrap(), None);
}

/// Any subset of tiers: memory and disk without Redis is a local two-tier cache.
#[tokio::test]
async fn memory_and_disk_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let store = strata::DiskStore::builder(dir.path())
        .max_bytes(16 << 20)
        .open()
        .unwrap();
    let cache: TieredCache<u32, String> = TieredCache::builder()
        .memory(2)
        .disk(store.clone())
        .build()
        .await
        .unwrap();
    assert!(cache.redis().is_none());
    for i in 0..10 {
        cache
            .insert_with(
                &i,
                format!("v{i}"),
                Some(Duration::from_secs(60)),
                &[Tag::from("all")],
            )
            .await
            .unwrap();
    }
    // Memory holds 2; the rest come back from disk, promoted with their tags.
    for i in 0..10 {
        assert_eq!(cache.get(&i).await.unwrap(), Some(format!("v{i}")));
    }
    assert!(cache.stats().disk.hits > 0);
    assert_eq!(cache.invalidate_tag("all").await.unwrap(), 10);
    for i in 0..10 {
        assert_eq!(
            cache.get(&i).await.unwrap(),
            None,
            "key {i} survived the tag"
        );
    }
    assert_eq!(
        cache
            .get_with(42, async { "computed".to_string() })
            .await
            .unwrap(),
        "computed"
    );
    assert_eq!(store.len(), 1);
}

/// One client's share of [`concurrent_writers_leave_every_client_reading_what_redis_holds`]:
/// `ops` random reads (`get`, `get_with`), writes, removals, tag invalidations and, rarely,
/// `invalidate_all`, over a few keys.
async fn random_ops(cache: &TieredCache<String, String>, seed: u64, ops: usize) {
    let mut x = seed | 1;
    for i in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("k{}", x % 6);
        match (x >> 8) % 100 {
            0..=39 => {
                let tags = if (x >> 16).is_multiple_of(2) {
                    vec![Tag::from(format!("t{}", (x >> 20) % 2))]
                } else {
                    Vec::new()
                };
                let value = format!("{seed}-{i}");
                cache.insert_with(&key, value, None, &tags).await.unwrap();
            }
            40..=69 => {
                cache.get(&key).await.unwrap();
            }
            70..=79 => {
                let value = format!("{seed}-{i}-loaded");
                cache.get_with(key, async { value }).await.unwrap();
            }
            80..=88 => cache.remove(&key).await.unwrap(),
            89 => cache.invalidate_all().await.unwrap(),
            _ => {
                cache
                    .invalidate_tag(&format!("t{}", (x >> 20) % 2))
                    .await
                    .unwrap();
            }
        }
    }
}

/// Two clients write, read and invalidate the same few keys at once, each from its own
/// task; a third, with no local tier, reads Redis itself. Once they stop, every key read
/// through either client must come to what Redis holds: a local copy that an invalidation
/// missed (a promotion racing a write, a write racing another's invalidation, a tag dropped
/// in transit) would stay stale.
async fn concurrent_writers_leave_every_client_reading_what_redis_holds(config: RedisConfig) {
    let a = tiered(config.clone(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let b = tiered(config.clone(), Some(dir.path())).await;
    let truth: TieredCache<String, String> =
        TieredCache::builder().redis(config).build().await.unwrap();
    for round in 0..5_u64 {
        tokio::join!(
            random_ops(&a, 2 * round + 1, 300),
            random_ops(&b, 2 * round + 2, 300)
        );
        for k in 0..6 {
            let key = format!("k{k}");
            let held = truth.get(&key).await.unwrap();
            for (name, client) in [("a", &a), ("b", &b)] {
                let start = Instant::now();
                loop {
                    let read = client.get(&key).await.unwrap();
                    if read == held {
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(3),
                        "round {round}: {name} reads {key} as {read:?}, Redis holds {held:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_standalone() {
    let Some(config) = standalone_config("concurrent") else {
        return;
    };
    concurrent_writers_leave_every_client_reading_what_redis_holds(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_in_a_cluster() {
    let Some(config) = cluster_config("concurrent") else {
        return;
    };
    concurrent_writers_leave_every_client_reading_what_redis_holds(config).await;
}

/// Starts `get_with_options(key, ttl, tags)` on `cache` with a computation that, once
/// running, waits to be told to return `value`; returns when it runs, with the load and the
/// sender that lets it finish.
async fn blocked_load(
    cache: &std::sync::Arc<TieredCache<String, String>>,
    key: &str,
    ttl: Option<Duration>,
    tags: &[Tag],
    value: &'static str,
) -> (
    tokio::task::JoinHandle<String>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (cache, key, tags) = (cache.clone(), key.to_string(), tags.to_vec());
    let load = tokio::spawn(async move {
        cache
            .get_with_options(key, ttl, &tags, async move {
                started_tx.send(()).unwrap();
                go_rx.await.unwrap();
                value.to_string()
            })
            .await
            .unwrap()
    });
    started_rx.await.unwrap();
    (load, go_tx)
}

/// A write or removal of the key while `get_with` computes it wins, whether it comes from
/// another process or from this one: the computed value, read from the source before the
/// write, goes to the caller, but neither Redis nor any process's local tiers keep it.
async fn a_write_during_a_load_wins(config: RedisConfig, from_another_process: bool) {
    let loader = std::sync::Arc::new(tiered(config.clone(), None).await);
    let other = tiered(config.clone(), None).await;
    let writer = if from_another_process {
        &other
    } else {
        &*loader
    };
    let truth: TieredCache<String, String> =
        TieredCache::builder().redis(config).build().await.unwrap();
    for (key, removal) in [("written", false), ("removed", true)] {
        let (load, go_tx) =
            blocked_load(&loader, key, None, &[], "computed from the old row").await;
        let key = key.to_string();
        let want = if removal {
            writer.remove(&key).await.unwrap();
            None
        } else {
            writer.insert(&key, "new".to_string()).await.unwrap();
            Some("new")
        };
        go_tx.send(()).unwrap();
        assert_eq!(load.await.unwrap(), "computed from the old row");
        assert_eq!(
            truth.get(&key).await.unwrap().as_deref(),
            want,
            "{key} in Redis"
        );
        // Any invalidation still on its way may only take a copy away.
        for cache in [&*loader, &other] {
            assert_eq!(cache.get(&key).await.unwrap().as_deref(), want, "{key}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(cache.get(&key).await.unwrap().as_deref(), want, "{key}");
        }
    }
    // Without a write in between, the computed value is stored, in Redis and locally.
    let quiet = "quiet".to_string();
    let value = loader
        .get_with(quiet.clone(), async { "computed".to_string() })
        .await
        .unwrap();
    assert_eq!(value, "computed");
    assert_eq!(
        truth.get(&quiet).await.unwrap().as_deref(),
        Some("computed")
    );
    // Redis 7.0 reports a script's writes to its own connection's tracking, `NOLOOP` or
    // not: the loader's local copy may go once, and come back with the next read.
    let start = Instant::now();
    loop {
        let hits = loader.stats().memory.hits;
        assert_eq!(
            loader.get(&quiet).await.unwrap().as_deref(),
            Some("computed")
        );
        if loader.stats().memory.hits > hits {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "never kept locally"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_load_wins_standalone() {
    let Some(config) = standalone_config("xload") else {
        return;
    };
    a_write_during_a_load_wins(config.clone(), true).await;
    a_write_during_a_load_wins(config.prefix(crate::prefix("load")), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_load_wins_in_a_cluster() {
    let Some(config) = cluster_config("xload") else {
        return;
    };
    a_write_during_a_load_wins(config.clone(), true).await;
    a_write_during_a_load_wins(config.prefix(crate::prefix("load")), false).await;
}

/// An invalidation of a tag, by another process, while `get_with_options` computes a value
/// carrying it wins as a write of the key does; a value computed in quiet keeps its TTL and
/// tags, and the tag's invalidation then reaches it in every tier.
async fn a_tag_invalidated_during_a_load_wins(config: RedisConfig) {
    let loader = std::sync::Arc::new(tiered(config.clone(), None).await);
    let other = tiered(config.clone(), None).await;
    let truth: TieredCache<String, String> =
        TieredCache::builder().redis(config).build().await.unwrap();
    let tags: Vec<Tag> = vec!["user:42".into()];
    let ttl = Some(Duration::from_secs(60));
    let key = "profile".to_string();
    let (load, go_tx) = blocked_load(&loader, &key, ttl, &tags, "computed from the old user").await;
    other.invalidate_tag("user:42").await.unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(load.await.unwrap(), "computed from the old user");
    assert_eq!(truth.get(&key).await.unwrap(), None, "in Redis");
    assert_eq!(loader.get(&key).await.unwrap(), None, "in the loader");

    let value = loader
        .get_with_options(key.clone(), ttl, &tags, async { "fresh".to_string() })
        .await
        .unwrap();
    assert_eq!(value, "fresh");
    let redis = truth.redis().unwrap();
    let stored = redis.get(&postcard(&key)).await.unwrap().expect("in Redis");
    let left = stored.1.expect("with a TTL");
    assert!(
        left > Duration::from_secs(50) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    assert_eq!(other.get(&key).await.unwrap().as_deref(), Some("fresh"));
    assert_eq!(other.invalidate_tag("user:42").await.unwrap(), 1);
    assert_eq!(truth.get(&key).await.unwrap(), None, "in Redis");
    until(&loader, &key, None).await;
    assert_eq!(other.get(&key).await.unwrap(), None, "in the other process");
}

fn postcard(key: &str) -> Vec<u8> {
    postcard::to_allocvec(key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidated_during_a_load_wins_standalone() {
    let Some(config) = standalone_config("tagload") else {
        return;
    };
    a_tag_invalidated_during_a_load_wins(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidated_during_a_load_wins_in_a_cluster() {
    let Some(config) = cluster_config("tagload") else {
        return;
    };
    a_tag_invalidated_during_a_load_wins(config).await;
}

/// The cache's default TTL applies to what is written without one: inserts and computed
/// values; a TTL of the write's own wins over it.
#[tokio::test]
async fn the_default_ttl_applies_to_inserts_and_computed_values() {
    let Some(config) = standalone_config("defttl") else {
        return;
    };
    let cache: TieredCache<String, String> = TieredCache::builder()
        .redis(config)
        .memory(100)
        .time_to_live(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let redis = cache.redis().unwrap().clone();
    let ttl_of = |key: &str| {
        let (redis, key) = (redis.clone(), postcard(key));
        async move { redis.get(&key).await.unwrap().expect("in Redis").1 }
    };
    let within = |left: Option<Duration>, max: u64| {
        left.is_some_and(|l| l > Duration::from_secs(max - 10) && l <= Duration::from_secs(max))
    };
    cache.insert(&"inserted".into(), "v".into()).await.unwrap();
    assert!(within(ttl_of("inserted").await, 30));
    cache
        .insert_with(
            &"own".into(),
            "v".into(),
            Some(Duration::from_secs(100)),
            &[],
        )
        .await
        .unwrap();
    assert!(within(ttl_of("own").await, 100));
    cache
        .get_with("computed".into(), async { "v".to_string() })
        .await
        .unwrap();
    assert!(within(ttl_of("computed").await, 30));
}

/// Runs `scripts/strata_tiered_format.py` (redis-py) with `args`; its output.
fn python(args: &[&str]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/strata_tiered_format.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "redis-py failed (pip install redis): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Another language reads and writes a JSON cache's entries in Redis with redis-py and
/// `scripts/strata_tiered_format.py`, the layout `docs/redis-tier.md` documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reads_and_writes_a_json_caches_entries() {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Profile {
        name: String,
        visits: u32,
    }
    let Some(url) = crate::standalone() else {
        return;
    };
    let prefix = crate::prefix("python");
    let config = RedisConfig::standalone(&url).prefix(&prefix).strict(true);
    let cache: TieredCache<String, Profile> = TieredCache::builder()
        .redis(config)
        .memory(10)
        .codec(strata_redis::Json)
        .build()
        .await
        .unwrap();
    let ada = Profile {
        name: "Ada".into(),
        visits: 12,
    };
    cache
        .insert_with(&"user:42".into(), ada.clone(), None, &["team:1".into()])
        .await
        .unwrap();
    let read: serde_json::Value =
        serde_json::from_str(&python(&["read", &url, &prefix, "user:42"])).unwrap();
    assert_eq!(
        read,
        serde_json::json!({"tags": ["team:1"], "value": {"name": "Ada", "visits": 12}})
    );

    python(&[
        "write",
        &url,
        &prefix,
        "user:7",
        r#"{"name": "Grace", "visits": 3}"#,
        "60000",
        "team:1",
    ]);
    let grace = Profile {
        name: "Grace".into(),
        visits: 3,
    };
    assert_eq!(cache.get(&"user:7".into()).await.unwrap(), Some(grace));
    let left = cache
        .redis()
        .unwrap()
        .get(&postcard("user:7"))
        .await
        .unwrap()
        .and_then(|(_, ttl)| ttl)
        .expect("a TTL");
    assert!(left > Duration::from_secs(50), "{left:?}");
    // Python's write joined the tag's set: the tag's invalidation reaches it.
    assert_eq!(cache.invalidate_tag("team:1").await.unwrap(), 2);
    assert_eq!(cache.get(&"user:7".into()).await.unwrap(), None);
    assert_eq!(python(&["read", &url, &prefix, "user:42"]).trim(), "null");
}

/// A write or a removal through the Python helper while a Strata process computes the key
/// wins, as a Strata write does: the helper deletes the key's lease, whose key it derives as
/// Strata does (for a key with a hash tag of its own as well). Another process's local copy
/// of a key Python writes or removes goes (client tracking on a standalone server, the
/// invalidation channel on a Cluster).
async fn a_python_write_during_a_load_wins(
    config: RedisConfig,
    prefix: &str,
    url: &str,
    cluster: bool,
) {
    let py = |command: &str, rest: &[&str]| {
        let flags: &[&str] = if cluster { &["--cluster"] } else { &[] };
        let args: Vec<&str> = flags
            .iter()
            .chain(&[command, url, prefix])
            .chain(rest)
            .copied()
            .collect();
        python(&args)
    };
    let json_cache = || async {
        let builder = TieredCache::builder()
            .redis(config.clone())
            .memory(10)
            .codec(strata_redis::Json);
        subscribed(builder.build().await.unwrap()).await
    };
    let loader = std::sync::Arc::new(json_cache().await);
    let reader = json_cache().await;
    for (key, removal) in [
        ("user:9", false),
        ("team{7}:users", false),
        ("user:10", true),
    ] {
        let (load, go_tx) = blocked_load(&loader, key, None, &[], "from the old row").await;
        let want = if removal {
            assert_eq!(py("remove", &[key]).trim(), "0");
            None
        } else {
            py("write", &[key, r#""from python""#]);
            Some("from python")
        };
        go_tx.send(()).unwrap();
        assert_eq!(load.await.unwrap(), "from the old row");
        let stored: serde_json::Value = serde_json::from_str(&py("read", &[key])).unwrap();
        assert_eq!(
            stored,
            want.map_or(serde_json::Value::Null, |value| {
                serde_json::json!({"tags": [], "value": value})
            }),
            "{key} in Redis"
        );
        assert_eq!(
            loader.get(&key.to_string()).await.unwrap().as_deref(),
            want,
            "{key}"
        );
    }
    // Another process's local copy goes when Python writes or removes the key.
    let key = "user:11".to_string();
    loader.insert(&key, "v".into()).await.unwrap();
    assert_eq!(reader.get(&key).await.unwrap().as_deref(), Some("v"));
    for (command, args, want) in [
        ("write", vec![key.as_str(), r#""w""#], Some("w")),
        ("remove", vec![key.as_str()], None),
    ] {
        py(command, &args);
        let start = Instant::now();
        while reader.get(&key).await.unwrap().as_deref() != want {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the local copy outlived Python's {command}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(py("read", &[&key]).trim(), "null");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_write_during_a_load_wins_standalone() {
    let Some(url) = crate::standalone() else {
        return;
    };
    let prefix = crate::prefix("pylease");
    let config = RedisConfig::standalone(&url).prefix(&prefix).strict(true);
    a_python_write_during_a_load_wins(config, &prefix, &url, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_write_during_a_load_wins_in_a_cluster() {
    let Some(urls) = crate::cluster() else {
        return;
    };
    let prefix = crate::prefix("pylease");
    let config = RedisConfig::cluster(urls.clone())
        .prefix(&prefix)
        .strict(true);
    a_python_write_during_a_load_wins(config, &prefix, &urls[0], true).await;
}

/// A tag's invalidation through the tiered cache deletes, in Redis and in every process's
/// local tiers, the keys whose values still carry the tag, across many slots; a key
/// rewritten without the tag since stays (`RedisTier`'s own, whose values are opaque bytes,
/// deletes it).
async fn a_key_rewritten_without_its_tag_survives_the_tag(config: RedisConfig) {
    let writer = tiered(config.clone(), None).await;
    let reader = tiered(config.clone(), None).await;
    let tag: Vec<Tag> = vec!["user:7".into()];
    for i in 0..40 {
        writer
            .insert_with(&format!("page:{i}"), format!("v{i}"), None, &tag)
            .await
            .unwrap();
    }
    // The tag second of two: the script reads past the first.
    writer
        .insert_with(
            &"page:1".to_string(),
            "v1".into(),
            None,
            &["team:3".into(), "user:7".into()],
        )
        .await
        .unwrap();
    // Tags past the first 512 bytes of a value, which the script reads first: one value
    // carries the tag at the end of them, one was rewritten without it.
    let teams: Vec<Tag> = (0..60).map(|i| Tag::from(format!("team:{i:05}"))).collect();
    let mut wide = teams.clone();
    wide.push("user:7".into());
    let (wide_key, kept_key) = ("wide".to_string(), "wide, rewritten".to_string());
    writer
        .insert_with(&wide_key, "w".repeat(5000), None, &wide)
        .await
        .unwrap();
    writer
        .insert_with(&kept_key, "w".repeat(5000), None, &tag)
        .await
        .unwrap();
    writer
        .insert_with(&kept_key, "kept".into(), None, &teams)
        .await
        .unwrap();
    let rewritten = "page:0".to_string();
    writer
        .insert_with(&rewritten, "untagged".into(), None, &["user:8".into()])
        .await
        .unwrap();
    for i in 0..40 {
        reader
            .get(&format!("page:{i}"))
            .await
            .unwrap()
            .expect("cached by the reader");
    }
    assert_eq!(writer.invalidate_tag("user:7").await.unwrap(), 40);
    assert_eq!(writer.get(&wide_key).await.unwrap(), None);
    assert_eq!(
        writer.get(&kept_key).await.unwrap().as_deref(),
        Some("kept")
    );
    for cache in [&writer, &reader] {
        for i in 1..40 {
            until(cache, &format!("page:{i}"), None).await;
        }
        assert_eq!(
            cache.get(&rewritten).await.unwrap().as_deref(),
            Some("untagged")
        );
    }
    assert_eq!(writer.invalidate_tag("user:8").await.unwrap(), 1);
    assert_eq!(writer.get(&rewritten).await.unwrap(), None);
    // The byte-level tier cannot read a value's tags: it deletes what the set lists.
    let tier = RedisTier::connect(config).await.unwrap();
    tier.insert(b"k", b"tagged", None, &tag).await.unwrap();
    tier.insert(b"k", b"rewritten", None, &[]).await.unwrap();
    assert_eq!(tier.invalidate_tag("user:7").await.unwrap(), 1);
    assert_eq!(tier.get(b"k").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rewritten_without_its_tag_survives_the_tag_standalone() {
    let Some(config) = standalone_config("retag") else {
        return;
    };
    a_key_rewritten_without_its_tag_survives_the_tag(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rewritten_without_its_tag_survives_the_tag_in_a_cluster() {
    let Some(config) = cluster_config("retag") else {
        return;
    };
    a_key_rewritten_without_its_tag_survives_the_tag(config).await;
}
