//! The real `strata` binary on a loopback port, driven by `redis-cli`, `redis-py` and raw
//! sockets. `redis-cli` and `python3 -c 'import redis'` must be installed (`.ci/run` installs
//! them); the tests fail, not skip, without them.

mod clients;
mod differential;
mod lifecycle;
mod protocol;
mod security;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `strata serve`, killed on drop.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Server {
    /// Starts `strata serve --port 0 --data-dir DIR EXTRA…` and waits for its ready line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start strata");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Self { child, port }
    }

    /// A raw connection to it.
    pub fn connect(&self) -> Conn {
        Conn::new(self.port)
    }

    /// Sends `signal` (`TERM`, `KILL`) and waits for the process to exit; its exit status.
    pub fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-cli -p PORT ARGS…`: its stdout, trimmed.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed (apt install redis-tools)");
    assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A raw connection for exact bytes.
pub struct Conn {
    stream: TcpStream,
}

impl Conn {
    /// Connects to a local port.
    pub fn new(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Self { stream }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a command as an array of bulk strings.
    pub fn command(&mut self, args: &[&str]) {
        self.send(&encode(args));
    }

    /// Reads until `expected` has arrived (or fails after the timeout with what came).
    pub fn expect(&mut self, expected: &[u8]) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < expected.len() {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "read failed ({e}) after {:?}",
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Reads a reply that starts with `prefix` (its rest is consumed and ignored).
    pub fn expect_prefix(&mut self, prefix: &[u8]) {
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = vec![0u8; 64 << 10];
        let n = self.stream.read(&mut buf).expect("read");
        assert!(
            buf[..n].starts_with(prefix),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    /// Whether the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.stream.read(&mut buf), Ok(0) | Err(_))
    }

    /// Sends a command and expects exactly `expected` back.
    pub fn roundtrip(&mut self, args: &[&str], expected: &[u8]) {
        self.command(args);
        self.expect(expected);
    }
}

/// A command as a RESP array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out.into_bytes()
}

/// A port nobody listens on right now (for `--metrics-bind`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
