//! The disk tier against redb, fjall and foyer's hybrid cache: same workload, same run.
//!
//! For each value size: N single-key writes (then whatever the engine needs to make them
//! durable, timed with the writes), a close and a timed reopen, then N random single-key
//! reads. One JSON line per (cache, value size). Run it from a scratch directory: it works in
//! a temporary directory there and removes it.
//!
//! Each engine is used as a cache would use it, with its defaults:
//! - strata: `DiskStore` with the default sync policy (1 s interval), then `flush()`;
//! - redb: one write transaction per insert with `Durability::None`, then one `Immediate`
//!   commit (redb's documented way to batch durability); one read transaction per get;
//! - fjall: `Keyspace::insert` (journaled, not synced), then `persist(SyncAll)`;
//! - foyer: `HybridCache` with `WriteOnInsertion` and a 64-entry memory tier, then `close()`
//!   (which waits for its flushers); reads after reopen come from its disk engine.
//!
//! Values are random bytes (no engine gets to compress them). `space_amplification` is the
//! disk space the engine's files take (allocated blocks) over the payload (keys + values).
//! `writes_per_sec` times the insert calls; `sync_ms` is what the engine then needs to make
//! them durable (foyer cannot: its `close` only waits for its flushers). `stored_fraction` is
//! the share of reads that found their value after the reopen: foyer drops writes when its
//! flushers fall behind, so `stored_write_mib_per_sec` (write MiB/s × stored fraction) is the
//! figure to compare.

use std::path::Path;
use std::time::Instant;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

#[derive(Parser)]
struct Args {
    /// Engines to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "strata,redb,fjall,foyer")]
    cache: Vec<String>,
    /// Workloads as value_size:count, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100:200000,1048576:512")]
    workload: Vec<String>,
    /// Rounds; engines take turns in a rotating order and each figure is the median (the
    /// machine is shared, and one engine's write-back would otherwise slow the next).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Instead: time Strata's reopen after a kill -9, with this many 100-byte entries
    /// written by a child process (which is killed without a clean shutdown).
    #[arg(long)]
    reopen_after_kill: Option<usize>,
}

type BoxError = Box<dyn std::error::Error>;

/// The keys and values of one workload.
struct Workload {
    value_size: usize,
    keys: Vec<Vec<u8>>,
    /// Random bytes; value `i` is `pool[..value_size]` with `i` in its first 8 bytes.
    pool: Vec<u8>,
    reads: Vec<usize>,
}

impl Workload {
    fn new(value_size: usize, count: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(42);
        let mut pool = vec![0; value_size + count * 8];
        rng.fill_bytes(&mut pool);
        Self {
            value_size,
            keys: (0..count)
                .map(|i| format!("key{i:08}").into_bytes())
                .collect(),
            pool,
            reads: (0..count).map(|_| rng.random_range(0..count)).collect(),
        }
    }

    /// Value `i`: a window of the random pool (distinct per `i`).
    fn value(&self, i: usize) -> &[u8] {
        &self.pool[i * 8..i * 8 + self.value_size]
    }

    fn payload_bytes(&self) -> u64 {
        self.keys
            .iter()
            .map(|k| (k.len() + self.value_size) as u64)
            .sum()
    }
}

/// What one engine measured.
#[derive(Default)]
struct Measured {
    /// The insert calls.
    write_secs: f64,
    /// What the engine then needs to make the writes durable (or, for foyer, stored).
    sync_secs: f64,
    reopen_ms: f64,
    read_secs: f64,
    /// Reads that found the value written.
    read_hits: usize,
    disk_bytes: u64,
}

fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += if meta.is_dir() {
            disk_usage(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

fn strata(dir: &Path, w: &Workload) -> Result<Measured, BoxError> {
    let open = || strata::DiskStore::builder(dir).max_bytes(8 << 30).open();
    let mut m = Measured::default();
    {
        let store = open()?;
        let start = Instant::now();
        for (i, key) in w.keys.iter().enumerate() {
            store.insert(key, w.value(i))?;
        }
        m.write_secs = start.elapsed().as_secs_f64();
        store.flush()?;
        m.sync_secs = start.elapsed().as_secs_f64() - m.write_secs;
    }
    m.disk_bytes = disk_usage(dir);
    let start = Instant::now();
    let store = open()?;
    m.reopen_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    for &i in &w.reads {
        m.read_hits += usize::from(store.get(&w.keys[i])?.is_some_and(|v| v == w.value(i)));
    }
    m.read_secs = start.elapsed().as_secs_f64();
    Ok(m)
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("cache");

fn redb(dir: &Path, w: &Workload) -> Result<Measured, BoxError> {
    let path = dir.join("cache.redb");
    let mut m = Measured::default();
    {
        let db = redb::Database::create(&path)?;
        let start = Instant::now();
        for (i, key) in w.keys.iter().enumerate() {
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::None)?;
            txn.open_table(REDB_TABLE)?
                .insert(key.as_slice(), w.value(i))?;
            txn.commit()?;
        }
        m.write_secs = start.elapsed().as_secs_f64();
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
        m.sync_secs = start.elapsed().as_secs_f64() - m.write_secs;
    }
    m.disk_bytes = disk_usage(dir);
    let start = Instant::now();
    let db = redb::Database::open(&path)?;
    m.reopen_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    for &i in &w.reads {
        let txn = redb::ReadableDatabase::begin_read(&db)?;
        let table = txn.open_table(REDB_TABLE)?;
        m.read_hits += usize::from(
            table
                .get(w.keys[i].as_slice())?
                .is_some_and(|v| v.value() == w.value(i)),
        );
    }
    m.read_secs = start.elapsed().as_secs_f64();
    Ok(m)
}

fn fjall(dir: &Path, w: &Workload) -> Result<Measured, BoxError> {
    let open = || -> Result<(fjall::Database, fjall::Keyspace), BoxError> {
        let db = fjall::Database::builder(dir).open()?;
        let ks = db.keyspace("cache", fjall::KeyspaceCreateOptions::default)?;
        Ok((db, ks))
    };
    let mut m = Measured::default();
    {
        let (db, ks) = open()?;
        let start = Instant::now();
        for (i, key) in w.keys.iter().enumerate() {
            ks.insert(key.as_slice(), w.value(i))?;
        }
        m.write_secs = start.elapsed().as_secs_f64();
        db.persist(fjall::PersistMode::SyncAll)?;
        m.sync_secs = start.elapsed().as_secs_f64() - m.write_secs;
    }
    m.disk_bytes = disk_usage(dir);
    let start = Instant::now();
    let (_db, ks) = open()?;
    m.reopen_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    for &i in &w.reads {
        m.read_hits += usize::from(ks.get(&w.keys[i])?.is_some_and(|v| &*v == w.value(i)));
    }
    m.read_secs = start.elapsed().as_secs_f64();
    Ok(m)
}

async fn foyer_open(
    dir: &Path,
    capacity: usize,
) -> Result<foyer::HybridCache<Vec<u8>, Vec<u8>>, BoxError> {
    use foyer::{
        BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCacheBuilder, HybridCachePolicy,
    };
    let device = FsDeviceBuilder::new(dir).with_capacity(capacity).build()?;
    Ok(HybridCacheBuilder::new()
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .memory(64)
        .storage()
        .with_engine_config(BlockEngineConfig::new(device))
        .with_recover_mode(foyer::RecoverMode::Quiet)
        .build()
        .await?)
}

fn foyer(dir: &Path, w: &Workload) -> Result<Measured, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Room for every entry even at foyer's 4 KiB alignment, so nothing is evicted.
        let capacity =
            (w.keys.len() * (w.value_size + 64).next_multiple_of(4096) * 2).max(64 << 20);
        let mut m = Measured::default();
        {
            let cache = foyer_open(dir, capacity).await?;
            let start = Instant::now();
            for (i, key) in w.keys.iter().enumerate() {
                cache.insert(key.clone(), w.value(i).to_vec());
            }
            m.write_secs = start.elapsed().as_secs_f64();
            cache.close().await?;
            m.sync_secs = start.elapsed().as_secs_f64() - m.write_secs;
        }
        m.disk_bytes = disk_usage(dir);
        let start = Instant::now();
        let cache = foyer_open(dir, capacity).await?;
        m.reopen_ms = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        for &i in &w.reads {
            let entry = cache.get(&w.keys[i]).await?;
            m.read_hits += usize::from(entry.is_some_and(|e| e.value().as_slice() == w.value(i)));
        }
        m.read_secs = start.elapsed().as_secs_f64();
        cache.close().await?;
        Ok(m)
    })
}

fn run(cache: &str, dir: &Path, w: &Workload) -> Result<Measured, BoxError> {
    std::fs::create_dir_all(dir)?;
    let m = match cache {
        "strata" => strata(dir, w)?,
        "redb" => redb(dir, w)?,
        "fjall" => fjall(dir, w)?,
        "foyer" => foyer(dir, w)?,
        other => return Err(format!("unknown cache {other}").into()),
    };
    std::fs::remove_dir_all(dir)?;
    // Let the OS write back this engine's dirty pages before the next one runs.
    std::process::Command::new("sync").status()?;
    Ok(m)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// `--reopen-after-kill`: a child writes `entries` and syncs them (so they are on disk) and
/// waits to be killed; the parent kills it and times the reopen, which then finds unsealed
/// segments and checks every value, as after a real crash.
fn reopen_after_kill(entries: usize) -> Result<(), BoxError> {
    let open = |dir: &Path| strata::DiskStore::builder(dir).max_bytes(64 << 30).open();
    if let Some(dir) = std::env::var_os("STRATA_BENCH_CHILD_DIR") {
        let store = open(Path::new(&dir))?;
        let w = Workload::new(100, entries);
        for (i, key) in w.keys.iter().enumerate() {
            store.insert(key, w.value(i))?;
        }
        store.flush()?;
        println!("written");
        std::thread::sleep(std::time::Duration::from_secs(3600));
        return Ok(());
    }
    let scratch = tempfile::Builder::new()
        .prefix("strata-disk-bench")
        .tempdir_in(".")?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--reopen-after-kill", &entries.to_string()])
        .env("STRATA_BENCH_CHILD_DIR", scratch.path())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("child stdout")?;
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    child.kill()?;
    child.wait()?;
    let start = Instant::now();
    let store = open(scratch.path())?;
    let reopen_ms = start.elapsed().as_secs_f64() * 1e3;
    let stats = store.stats();
    let line = serde_json::json!({
        "cache": "strata",
        "reopen_after_kill_ms": (reopen_ms * 10.0).round() / 10.0,
        "entries": stats.recovered_entries,
        "ms_per_million_entries": (reopen_ms / stats.recovered_entries as f64 * 1e6).round(),
        "disk_bytes": stats.disk_bytes,
    });
    println!("{line}");
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if let Some(entries) = args.reopen_after_kill {
        return reopen_after_kill(entries);
    }
    let scratch = tempfile::Builder::new()
        .prefix("strata-disk-bench")
        .tempdir_in(".")?;
    for spec in &args.workload {
        let (size, count) = spec.split_once(':').ok_or("workload is value_size:count")?;
        let w = Workload::new(size.parse()?, count.parse()?);
        let mut results: Vec<Vec<Measured>> = args.cache.iter().map(|_| Vec::new()).collect();
        for round in 0..args.rounds.max(1) {
            for turn in 0..args.cache.len() {
                let e = (turn + round) % args.cache.len();
                let dir = scratch
                    .path()
                    .join(format!("{}-{size}-{round}", args.cache[e]));
                results[e].push(run(&args.cache[e], &dir, &w)?);
            }
        }
        for (cache, runs) in args.cache.iter().zip(results) {
            let n = w.keys.len() as f64;
            let reads = w.reads.len() as f64;
            let mib = |bytes_per_op: f64, ops: f64| bytes_per_op * ops / f64::from(1 << 20);
            let med = |f: &dyn Fn(&Measured) -> f64| median(runs.iter().map(f).collect());
            let write_secs = med(&|m| m.write_secs);
            let read_secs = med(&|m| m.read_secs);
            let stored = med(&|m| m.read_hits as f64 / reads);
            let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
            let round1 = |x: f64| (x * 10.0).round() / 10.0;
            let line = serde_json::json!({
                "cache": cache,
                "value_size": w.value_size,
                "writes_per_sec": (n / write_secs).round(),
                "reads_per_sec": (reads / read_secs).round(),
                "write_mib_per_sec": round1(mib(w.value_size as f64, n) / write_secs),
                "read_mib_per_sec": round1(mib(w.value_size as f64, reads) / read_secs),
                "space_amplification": round3(med(&|m| m.disk_bytes as f64) / w.payload_bytes() as f64),
                "reopen_ms": round1(med(&|m| m.reopen_ms)),
                "sync_ms": round1(med(&|m| m.sync_secs * 1e3)),
                "stored_fraction": round3(stored),
                "stored_write_mib_per_sec": round1(mib(w.value_size as f64, n) / write_secs * stored),
                "rounds": runs.len(),
            });
            println!("{line}");
        }
    }
    Ok(())
}
