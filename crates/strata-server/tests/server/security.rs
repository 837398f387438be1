//! Authentication, protected mode, and limits for unauthenticated clients.

use crate::Server;

#[test]
fn with_a_password_only_auth_hello_and_quit_work_before_authenticating() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--requirepass", "s3cret"]);
    let mut c = server.connect();
    c.roundtrip(&["GET", "k"], b"-NOAUTH Authentication required.\r\n");
    c.roundtrip(&["PING"], b"-NOAUTH Authentication required.\r\n");
    c.roundtrip(
        &["AUTH", "wrong"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    c.roundtrip(&["AUTH", "s3cret"], b"+OK\r\n");
    c.roundtrip(&["SET", "k", "v"], b"+OK\r\n");
    let mut h = server.connect();
    h.command(&["HELLO", "3"]);
    h.expect(b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n");
    h.command(&["HELLO", "3", "AUTH", "default", "s3cret"]);
    h.expect_prefix(b"%7\r\n+server\r\n");
    let mut q = server.connect();
    q.roundtrip(&["QUIT"], b"+OK\r\n");
    assert!(q.closed());
    // An unauthenticated client cannot make the server buffer big requests.
    let mut big = server.connect();
    big.send(b"*1\r\n$100000\r\n");
    big.expect(b"-ERR Protocol error: unauthenticated bulk length\r\n");
    assert!(big.closed());
    // The password is not disclosed by CONFIG GET.
    c.command(&["CONFIG", "GET", "requirepass"]);
    c.expect(b"*2\r\n$11\r\nrequirepass\r\n$5\r\n(set)\r\n");
}

#[test]
fn protected_mode_refuses_a_public_address_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--bind", "0.0.0.0", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("protected mode"), "{stderr}");
    // With a password it starts.
    let server = Server::start(
        dir.path(),
        &["--bind", "0.0.0.0", "--requirepass", "s3cret"],
    );
    let mut c = server.connect();
    c.roundtrip(&["AUTH", "s3cret"], b"+OK\r\n");
}

#[test]
fn bad_flags_and_config_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("strata.conf");
    std::fs::write(&conf, "port 7000\nmaxmemroy 1gb\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strata.conf:2") && stderr.contains("maxmemroy"),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--maxmemory", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--maxmemory") && stderr.contains("lots"),
        "{stderr}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--bind",
        "--port",
        "--data-dir",
        "--maxmemory",
        "--max-disk",
        "--requirepass",
        "--maxclients",
        "--max-value-size",
        "--metrics-bind",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
