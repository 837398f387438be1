//! `GET /metrics` in Prometheus's text format, over a deliberately tiny HTTP/1.0 responder:
//! one path, no keep-alive, requests capped at 8 KiB. It binds only where `--metrics-bind`
//! says.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::commands::COMMANDS;
use crate::state::{LATENCY_BUCKETS_US, Shared, resident_bytes};

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let mut request = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    stream.read(&mut chunk),
                )
                .await
                {
                    Ok(Ok(n)) if n > 0 => request.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let response = if request.starts_with(b"GET /metrics ")
                || request.starts_with(b"GET /metrics?")
            {
                let body = render(&shared);
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// The metrics, rendered.
pub(crate) fn render(s: &Shared) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let ks = &s.keyspace;
    let memory = ks.memory().stats();
    let one = |v: u64| vec![(String::new(), v as f64)];
    metric(
        "strata_keyspace_hits_total",
        "counter",
        "Lookups of keys that existed.",
        &one(ks.stats.hits.get()),
    );
    metric(
        "strata_keyspace_misses_total",
        "counter",
        "Lookups of keys that did not exist.",
        &one(ks.stats.misses.get()),
    );
    let mut tier_hits = vec![("{tier=\"memory\"}".to_string(), memory.hits as f64)];
    let mut tier_misses = vec![("{tier=\"memory\"}".to_string(), memory.misses as f64)];
    let mut evictions = vec![
        (
            "{tier=\"memory\",cause=\"size\"}".to_string(),
            memory.evicted_size as f64,
        ),
        (
            "{tier=\"memory\",cause=\"expired\"}".to_string(),
            memory.evicted_expired as f64,
        ),
        (
            "{tier=\"memory\",cause=\"explicit\"}".to_string(),
            memory.removed_explicit as f64,
        ),
        (
            "{tier=\"memory\",cause=\"tag\"}".to_string(),
            memory.removed_tag as f64,
        ),
    ];
    let mut bytes = vec![(
        "{tier=\"memory\"}".to_string(),
        ks.memory().weighted_size() as f64,
    )];
    if let Some(disk) = ks.disk() {
        let d = disk.stats();
        tier_hits.push(("{tier=\"disk\"}".into(), d.hits as f64));
        tier_misses.push(("{tier=\"disk\"}".into(), d.misses as f64));
        evictions.push(("{tier=\"disk\",cause=\"size\"}".into(), d.evictions as f64));
        evictions.push((
            "{tier=\"disk\",cause=\"expired\"}".into(),
            d.expirations as f64,
        ));
        bytes.push(("{tier=\"disk\"}".into(), d.disk_bytes as f64));
    }
    metric(
        "strata_tier_hits_total",
        "counter",
        "Hits per tier.",
        &tier_hits,
    );
    metric(
        "strata_tier_misses_total",
        "counter",
        "Misses per tier.",
        &tier_misses,
    );
    metric(
        "strata_evictions_total",
        "counter",
        "Entries removed per tier and cause.",
        &evictions,
    );
    metric(
        "strata_tier_bytes",
        "gauge",
        "Bytes held per tier (memory: weighted size; disk: file bytes).",
        &bytes,
    );
    metric(
        "strata_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        &one(resident_bytes()),
    );
    metric(
        "strata_connected_clients",
        "gauge",
        "Open client connections.",
        &one(s.stats.connected_clients.load(Ordering::Relaxed) as u64),
    );
    metric(
        "strata_connections_received_total",
        "counter",
        "Connections accepted.",
        &one(s.stats.connections_received.load(Ordering::Relaxed)),
    );
    let calls: Vec<(String, f64)> = COMMANDS
        .iter()
        .zip(&s.stats.per_command)
        .filter(|(_, st)| st.calls.load(Ordering::Relaxed) > 0)
        .map(|(c, st)| {
            (
                format!("{{command=\"{}\"}}", c.name),
                st.calls.load(Ordering::Relaxed) as f64,
            )
        })
        .collect();
    metric(
        "strata_commands_total",
        "counter",
        "Commands processed, by command.",
        &calls,
    );
    let mut histogram = Vec::new();
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
        cumulative += s.stats.latency_buckets[i].load(Ordering::Relaxed);
        histogram.push((
            format!("_bucket{{le=\"{}\"}}", *bound as f64 / 1e6),
            cumulative as f64,
        ));
    }
    cumulative += s.stats.latency_buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
    histogram.push(("_bucket{le=\"+Inf\"}".into(), cumulative as f64));
    histogram.push((
        "_sum".into(),
        s.stats.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
    ));
    histogram.push(("_count".into(), cumulative as f64));
    let _ = writeln!(
        out,
        "# HELP strata_command_duration_seconds Command execution time.\n# TYPE strata_command_duration_seconds histogram"
    );
    for (suffix, value) in histogram {
        let _ = writeln!(out, "strata_command_duration_seconds{suffix} {value}");
    }
    out
}
