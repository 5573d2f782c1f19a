//! The https example, run as a child process on an ephemeral port and
//! spoken to by real clients: curl over HTTP/1.1 and HTTP/2 (chosen by
//! ALPN), trusting the CA the example wrote out; h2load over TLS; and
//! clients that send garbage, or nothing, instead of a handshake.
//!
//! curl and h2load (Debian's `curl` and `nghttp2-client`) are installed by
//! `.ci/run`. Without them the tests that need them say so loudly and
//! skip, unless `CI` is set: under CI a missing tool fails the test.
//!
//! `cargo test` builds the examples before it runs the tests; a filtered
//! run (`--test examples_https`) does not: run `cargo build --features tls
//! --examples` first.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::example::{example_path, Proc};

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// A file under the temporary directory, unique to this test, removed when
/// dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        let name = format!("gopark-https-{tag}-{}.pem", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The example on an ephemeral port with two workers and a certificate
/// made at start, its CA written to a file of the test's own.
struct Server {
    proc: Proc,
    addr: SocketAddr,
    ca: TempFile,
}

impl Server {
    fn start(tag: &str) -> Server {
        let ca = TempFile::new(tag);
        let proc = Proc::start(
            "https",
            &[
                "--addr",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--write-ca",
                ca.path(),
            ],
        );
        let line = proc.wait_stdout(|l| l.starts_with("CA certificate: "));
        assert_eq!(line, format!("CA certificate: {}", ca.path()));
        let addr = listening(&proc);
        Server { proc, addr, ca }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    /// curl, trusting the server's CA; `None` if curl is missing.
    fn curl(&self, args: &[&str]) -> Option<String> {
        let mut all = vec!["--cacert", self.ca.path()];
        all.extend_from_slice(args);
        curl(&all)
    }
}

/// The address of the example's `listening on https://ADDR` line.
fn listening(proc: &Proc) -> SocketAddr {
    let line = proc.wait_stdout(|l| l.starts_with("listening on "));
    line.trim_start_matches("listening on https://")
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
}

/// Whether `tool` can be run. Missing, it fails the test under CI (where
/// `.ci/run` installs it), and says so loudly elsewhere.
fn have(tool: &str, package: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if std::env::var_os("CI").is_some() {
                panic!("{tool} is not installed, and CI is set: `.ci/run` installs {package}");
            }
            eprintln!(
                "\n*** {tool} is not installed: this test is SKIPPED. \
                 `apt-get install {package}` (or `bash .ci/run`) to run it. ***\n"
            );
            false
        }
        Err(e) => panic!("{tool}: {e}"),
    }
}

/// curl, as a user would run it, with a bound; its stdout. A failed run
/// fails the test.
fn curl(args: &[&str]) -> Option<String> {
    if !have("curl", "curl") {
        return None;
    }
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn curl_gets_http1_and_http2_by_alpn() {
    let server = Server::start("alpn");
    for (proto, want) in [("--http1.1", "1.1"), ("--http2", "2")] {
        for host in ["127.0.0.1", "localhost"] {
            let Some(out) =
                server.curl(&[proto, "-w", "\n%{http_version}", &server.url(host, "/")])
            else {
                return;
            };
            assert_eq!(out, format!("Hello, World!\n{want}"), "{proto} {host}");
        }
        let out = server
            .curl(&[proto, &server.url("localhost", "/json")])
            .unwrap();
        assert_eq!(out, r#"{"message":"Hello, World!"}"#, "{proto}");
        // A body that takes several TLS records each way.
        let body = "x".repeat(100_000);
        let out = server
            .curl(&[
                proto,
                "--data-binary",
                &body,
                &server.url("localhost", "/echo"),
            ])
            .unwrap();
        assert!(out == body, "{proto}: the echoed body differs");
    }
}

#[test]
fn curl_refuses_a_server_it_was_not_told_to_trust() {
    let server = Server::start("untrusted");
    if !have("curl", "curl") {
        return;
    }
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", &server.url("localhost", "/")])
        .output()
        .unwrap();
    // 60: the peer's certificate cannot be verified.
    assert_eq!(out.status.code(), Some(60), "{out:?}");
}

#[test]
fn h2load_over_tls_succeeds_on_every_request() {
    let server = Server::start("h2load");
    if !have("h2load", "nghttp2-client") {
        return;
    }
    // `timeout` bounds the run; h2load has no bound of its own.
    let out = Command::new("timeout")
        .args(["120", "h2load", "-n", "1000", "-c", "10"])
        .arg(server.url("127.0.0.1", "/"))
        .output()
        .expect("timeout and h2load run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "h2load: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{text}"
    );
    assert!(text.contains("status codes: 1000 2xx"), "{text}");
    // Every connection negotiated HTTP/2 (h2load speaks it by default).
    assert!(text.contains("Application protocol: h2"), "{text}");
}

/// Reads until the server closes the connection: end of stream or a
/// reset. Fails if it stays open longer than `WAIT`.
fn wait_closed(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            // An alert before the close.
            Ok(_) => assert!(
                start.elapsed() < WAIT,
                "the server kept the connection open"
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
}

#[test]
fn garbage_instead_of_a_handshake_is_closed_and_the_server_keeps_serving() {
    let server = Server::start("garbage");
    // A client that does not speak TLS at all...
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    wait_closed(&mut plain);
    // ...and one that sends bytes that look like nothing.
    let mut noise = TcpStream::connect(server.addr).unwrap();
    noise.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]).unwrap();
    noise.write_all(&[0xab; 4096]).unwrap();
    wait_closed(&mut noise);
    // A silent client holds its own handshake task, nobody else's: served
    // while it sits there.
    let silent = TcpStream::connect(server.addr).unwrap();
    if let Some(out) = server.curl(&["--http2", &server.url("localhost", "/")]) {
        assert_eq!(out, "Hello, World!");
    }
    drop(silent);
}

#[test]
fn certificate_and_key_from_pem_files() {
    // A self-signed certificate made here, given to the example as files.
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = TempFile::new("cert");
    let key = TempFile::new("key");
    std::fs::write(&cert.0, made.cert.pem()).unwrap();
    std::fs::write(&key.0, made.signing_key.serialize_pem()).unwrap();
    let proc = Proc::start(
        "https",
        &[
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--cert",
            cert.path(),
            "--key",
            key.path(),
        ],
    );
    let addr = listening(&proc);
    let url = format!("https://localhost:{}/", addr.port());
    if let Some(out) = curl(&["--cacert", cert.path(), "--http1.1", &url]) {
        assert_eq!(out, "Hello, World!");
    }
}

#[test]
fn bad_arguments_and_bad_pem_files_exit_with_status_2() {
    let path = example_path("https");
    let not_pem = TempFile::new("not-pem");
    std::fs::write(&not_pem.0, "this is not PEM\n").unwrap();
    let cases: &[&[&str]] = &[
        &["--workers=0"],
        &["--cert", "/nonexistent"],
        &["--cert", not_pem.path(), "--key", not_pem.path()],
        &[
            "--cert",
            "/nonexistent/cert.pem",
            "--key",
            "/nonexistent/key.pem",
        ],
    ];
    for args in cases {
        let out = Command::new(&path).args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: says why");
    }
    let out = Command::new(&path).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage:"));
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = Server::start("sigterm");
    if let Some(out) = server.curl(&["--http2", &server.url("localhost", "/")]) {
        assert_eq!(out, "Hello, World!");
    }
    server.proc.signal(libc::SIGTERM);
    server
        .proc
        .wait_stdout(|l| l.starts_with("SIGTERM: shutting down"));
    let refused = TcpStream::connect(server.addr).expect_err("no new connections");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    let served = server.proc.wait_stdout(|l| l.starts_with("served "));
    let want = if have("curl", "curl") {
        "served 1 requests"
    } else {
        "served 0 requests"
    };
    assert_eq!(served, want);
    assert!(server.proc.wait_exit(WAIT).success());
}
