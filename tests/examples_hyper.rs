//! The hyper and axum examples, run as child processes on an ephemeral port
//! and spoken to with hyper's client on gopark (HTTP/1.1 and HTTP/2 with
//! prior knowledge), with raw sockets, and with curl when it is installed:
//! their routes, and a graceful shutdown on SIGTERM that finishes the
//! request in flight.
//!
//! `cargo test` builds the examples before it runs the tests; a filtered
//! run (`--test examples_hyper`) does not: run `cargo build --features
//! hyper --examples` first.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc as async_mpsc;
use futures_util::{SinkExt, StreamExt};
use gopark::hyper::{Executor, Io};
use gopark::net::TcpStream;
use gopark::runtime::{self, time::timeout};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, StatusCode};
use serde_json::json;
use support::data::pattern;
use support::example::{example_path, Proc};
use support::http_client::{json_of, Client};

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// A running example on an ephemeral port, with two workers; killed and
/// reaped when dropped.
struct Server {
    proc: Proc,
    addr: SocketAddr,
}

impl Server {
    fn start(name: &str) -> Server {
        let (proc, addr) = Proc::server(name, &["--addr", "127.0.0.1:0", "--workers", "2"]);
        Server { proc, addr }
    }

    /// Waits for a stdout line that starts with `prefix`.
    fn wait_line(&self, prefix: &str) -> String {
        self.proc.wait_stdout(|l| l.starts_with(prefix))
    }

    fn signal(&self, signum: libc::c_int) {
        self.proc.signal(signum);
    }

    fn wait_exit(&mut self) -> ExitStatus {
        self.proc.wait_exit(WAIT)
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime::block_on(async {
        timeout(Duration::from_secs(60), f)
            .await
            .expect("the test's requests took over 60 s")
    })
}

#[test]
fn hyper_example_answers_http1_and_http2() {
    let mut server = Server::start("hyper");
    let addr = server.addr;
    block_on(async {
        for http2 in [false, true] {
            let mut c = Client::connect(addr, http2).await;
            let (status, ct, body) = c.get("/").await;
            assert_eq!(
                (status, ct.as_str(), &body[..]),
                (StatusCode::OK, "text/plain", &b"Hello, World!"[..])
            );
            let (status, ct, body) = c.get("/json").await;
            assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json"));
            assert_eq!(json_of(&body), json!({ "message": "Hello, World!" }));
            let sent = pattern(7, 1 << 20);
            let (status, _, body) = c.request("POST", "/echo", None, sent.clone()).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body == sent, "1 MiB echoed");
            assert_eq!(c.get("/nowhere").await.0, StatusCode::NOT_FOUND);
            assert_eq!(
                c.request("DELETE", "/", None, Vec::new()).await.0,
                StatusCode::METHOD_NOT_ALLOWED
            );
            assert_eq!(c.get("/echo").await.0, StatusCode::METHOD_NOT_ALLOWED);
        }
    });
    server.signal(libc::SIGTERM);
    server.wait_line("SIGTERM: shutting down");
    assert_eq!(server.wait_line("served "), "served 12 requests");
    assert!(server.wait_exit().success());
}

#[test]
fn axum_example_answers_http1_and_http2() {
    let mut server = Server::start("axum");
    let addr = server.addr;
    block_on(async {
        let mut h1 = Client::connect(addr, false).await;
        let mut h2 = Client::connect(addr, true).await;
        assert_eq!(&h1.get("/").await.2[..], b"Hello, World!");
        let (status, ct, body) = h2.get("/json").await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json"));
        assert_eq!(json_of(&body), json!({ "message": "Hello, World!" }));

        let user = serde_json::to_vec(&json!({ "name": "Ada" })).unwrap();
        let (status, _, body) = h1
            .request("POST", "/users", Some("application/json"), user)
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(json_of(&body), json!({ "id": 1, "name": "Ada" }));
        let (status, _, body) = h2.get("/users/1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json_of(&body), json!({ "id": 1, "name": "Ada" }));
        assert_eq!(h2.get("/users/2").await.0, StatusCode::NOT_FOUND);

        assert_eq!(json_of(&h1.get("/counter").await.2), json!({ "count": 1 }));
        assert_eq!(json_of(&h2.get("/counter").await.2), json!({ "count": 2 }));

        let want: String = (0..50).map(|i| format!("chunk {i}\n")).collect();
        for c in [&mut h1, &mut h2] {
            let (status, _, body) = c.get("/stream?chunks=50&every_ms=0").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, want.as_bytes());
        }
    });
    server.signal(libc::SIGINT);
    server.wait_line("SIGINT: shutting down");
    assert_eq!(server.wait_line("served "), "served 9 requests");
    assert!(server.wait_exit().success());
}

/// Reads from a blocking socket until `done(bytes so far)` holds, or to the
/// end of the stream if `done` is `None`; appends to `all`.
fn read_until(stream: &mut StdTcpStream, all: &mut Vec<u8>, done: Option<fn(&[u8]) -> bool>) {
    let mut buf = [0u8; 64 * 1024];
    while !done.is_some_and(|d| d(all)) {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            assert!(done.is_none(), "the server closed early");
            return;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

#[test]
fn sigterm_finishes_the_request_in_flight_over_http1() {
    let mut server = Server::start("hyper");
    let sent = pattern(7, 200_000);
    let mut stream = StdTcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        sent.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&sent[..100_000]).unwrap();
    // The echo answers as the body comes: once the head and some of the
    // body are back, the request is in the server's hands.
    let mut reply = Vec::new();
    read_until(
        &mut stream,
        &mut reply,
        Some(|b| head_end(b).is_some_and(|end| b.len() > end)),
    );

    server.signal(libc::SIGTERM);
    server.wait_line("SIGTERM: shutting down");
    // Listening has stopped...
    let refused = StdTcpStream::connect(server.addr).expect_err("no new connections");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // ...but the request in flight is finished, and then the connection
    // closes.
    stream.write_all(&sent[100_000..]).unwrap();
    read_until(&mut stream, &mut reply, None);
    let end = head_end(&reply).unwrap();
    let head = String::from_utf8_lossy(&reply[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", sent.len())),
        "{head}"
    );
    assert!(reply[end..] == sent[..], "the whole body came back");
    assert_eq!(server.wait_line("served "), "served 1 requests");
    assert!(server.wait_exit().success());
}

#[test]
fn sigterm_finishes_the_stream_in_flight_over_http2() {
    let mut server = Server::start("hyper");
    let addr = server.addr;
    let sent = pattern(7, 300_000);
    // The request body comes from a channel the test feeds.
    let (mut feed, frames) = async_mpsc::channel::<Bytes>(1);
    let body = StreamBody::new(frames.map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))));
    let (status, mut echo, conn) = block_on(async {
        let io = Io::new(TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http2::handshake(Executor::new(), io)
            .await
            .unwrap();
        let conn = runtime::spawn(conn);
        let req = Request::post("http://localhost/echo").body(body).unwrap();
        feed.send(Bytes::copy_from_slice(&sent[..100_000]))
            .await
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        (resp.status(), resp.into_body(), conn)
    });
    assert_eq!(status, StatusCode::OK);
    // Bytes echoed back: the stream is in the server's hands.
    let mut got = block_on(async {
        let frame = echo.frame().await.unwrap().unwrap();
        frame.into_data().unwrap().to_vec()
    });
    assert!(!got.is_empty());

    server.signal(libc::SIGTERM);
    server.wait_line("SIGTERM: shutting down");
    assert_eq!(
        StdTcpStream::connect(addr)
            .expect_err("no new connections")
            .kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let rest = block_on(async move {
        feed.send(Bytes::copy_from_slice(&sent[100_000..]))
            .await
            .unwrap();
        drop(feed); // the end of the request body
        echo.collect().await.unwrap().to_bytes()
    });
    got.extend_from_slice(&rest);
    assert!(got == pattern(7, 300_000), "the whole body came back");
    assert_eq!(server.wait_line("served "), "served 1 requests");
    assert!(server.wait_exit().success());
    block_on(conn)
        .unwrap()
        .expect("the server closed the connection cleanly");
}

#[test]
fn sigterm_finishes_a_streaming_axum_response() {
    let mut server = Server::start("axum");
    let addr = server.addr;
    let (mut body, conn) = block_on(async {
        let io = Io::new(TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http2::handshake(Executor::new(), io)
            .await
            .unwrap();
        let conn = runtime::spawn(conn);
        let req = Request::get("http://localhost/stream?chunks=4&every_ms=200")
            .body(Full::<Bytes>::default())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        (resp.into_body(), conn)
    });
    let first = block_on(async { body.frame().await.unwrap().unwrap().into_data().unwrap() });
    assert_eq!(first, "chunk 0\n");

    server.signal(libc::SIGTERM);
    server.wait_line("SIGTERM: shutting down");
    let rest = block_on(async move { body.collect().await.unwrap().to_bytes() });
    assert_eq!(rest, "chunk 1\nchunk 2\nchunk 3\n");
    assert_eq!(server.wait_line("served "), "served 1 requests");
    assert!(server.wait_exit().success());
    block_on(conn)
        .unwrap()
        .expect("the server closed the connection cleanly");
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Server::start("hyper");
    let mut stream = StdTcpStream::connect(server.addr).unwrap();
    // A request that never finishes.
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut first = [0u8; 1];
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.read_exact(&mut first).unwrap();
    server.signal(libc::SIGINT);
    server.wait_line("SIGINT: shutting down");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(130), "{status}");
}

#[test]
fn bad_arguments_exit_with_status_2() {
    for name in ["hyper", "axum"] {
        let path = example_path(name);
        let out = Command::new(&path).arg("--workers=0").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
        let out = Command::new(&path).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name} --help");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage:"));
        assert!(out.status.signal().is_none());
    }
}

/// curl, as a user would run it, if it is installed.
fn curl(args: &[&str]) -> Option<(String, String)> {
    let out = match Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("curl: {e}"),
    };
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    ))
}

#[test]
fn curl_gets_the_right_answers_over_http1_and_http2() {
    if curl(&["--version"]).is_none() {
        eprintln!(
            "curl is not installed: skipped (the hyper-client tests above cover the same routes)"
        );
        return;
    }
    for name in ["hyper", "axum"] {
        let server = Server::start(name);
        let base = format!("http://{}", server.addr);
        for proto in ["--http1.1", "--http2-prior-knowledge"] {
            let want = if proto == "--http1.1" { "1.1" } else { "2" };
            let (out, _) = curl(&[proto, "-w", "\n%{http_version}", &format!("{base}/")]).unwrap();
            assert_eq!(out, format!("Hello, World!\n{want}"), "{name} {proto}");
            let (out, _) = curl(&[proto, &format!("{base}/json")]).unwrap();
            assert_eq!(out, r#"{"message":"Hello, World!"}"#, "{name} {proto}");
        }
        if name == "axum" {
            let (out, _) = curl(&[
                "--http2-prior-knowledge",
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"name":"Ada"}"#,
                &format!("{base}/users"),
            ])
            .unwrap();
            assert_eq!(out, r#"{"id":1,"name":"Ada"}"#);
            let (out, _) = curl(&[&format!("{base}/users/1")]).unwrap();
            assert_eq!(out, r#"{"id":1,"name":"Ada"}"#);
            let (out, _) = curl(&["-N", &format!("{base}/stream?chunks=3&every_ms=10")]).unwrap();
            assert_eq!(out, "chunk 0\nchunk 1\nchunk 2\n");
        } else {
            let (out, _) = curl(&[
                "--http2-prior-knowledge",
                "--data-binary",
                "some bytes",
                &format!("{base}/echo"),
            ])
            .unwrap();
            assert_eq!(out, "some bytes");
        }
    }
}
