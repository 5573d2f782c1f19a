//! The http example, run as a child process on an ephemeral port and
//! spoken to with plain blocking sockets.

mod support;

use std::ffi::CString;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::example::{Client, Proc, Response, WAIT};

fn assert_hello(resp: &Response) {
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body_str(), "Hello, World!");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
}

/// Seconds since the epoch of an IMF-fixdate, parsed by the C library.
fn parse_http_date(date: &str) -> i64 {
    let text = CString::new(date).unwrap();
    let format = CString::new("%a, %d %b %Y %H:%M:%S GMT").unwrap();
    // SAFETY: an all-zero `tm` is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both strings are NUL-terminated and `tm` is valid to write.
    let end = unsafe { libc::strptime(text.as_ptr(), format.as_ptr(), &mut tm) };
    // SAFETY: a non-null result points into `text`.
    assert!(!end.is_null() && unsafe { *end } == 0, "bad Date {date:?}");
    // SAFETY: `tm` was filled in by strptime.
    unsafe { libc::timegm(&mut tm) }
}

#[test]
fn routes_and_headers() {
    let (_server, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);

    let resp = c.get("/");
    assert_hello(&resp);
    assert_eq!(resp.header("content-length"), Some("13"));
    assert_eq!(resp.header("connection"), None, "keep-alive is the default");
    let date = resp.header("date").expect("a Date header");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (parse_http_date(date) - now).abs() <= 2,
        "Date {date:?} is not now"
    );

    let resp = c.get("/json");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body_str(), r#"{"message":"Hello, World!"}"#);

    assert_hello(&c.get("/?greeting=1"));
    assert_eq!(c.get("/missing").status, 404);
    assert_eq!(c.get("/json/extra").status, 404);

    c.send(b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    let resp = c.response();
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD"));

    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let resp = c.head_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("13"));

    // Still the same connection, after a bodiless HEAD reply.
    assert_hello(&c.get("/"));
}

#[test]
fn debug_pages_only_with_metrics() {
    let (_plain, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/debug/metrics").status, 404);
    assert_eq!(c.get("/debug/tasks").status, 404);

    let (_server, addr) = Proc::http(&["--metrics"]);
    let mut c = Client::connect(addr);
    for _ in 0..5 {
        assert_hello(&c.get("/"));
    }
    let resp = c.get("/debug/metrics");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let body = resp.body_str();
    assert!(body.contains("workers: 2 "), "{body}");
    assert!(body.contains("worker 1: polls "), "{body}");
    assert!(body.contains("netpoll: wakeups "), "{body}");
    // This connection's task and the accept loop, at least.
    let alive: usize = body
        .split("alive ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("an alive count");
    assert!(alive >= 2, "{body}");

    let resp = c.get("/debug/tasks");
    assert_eq!(resp.status, 200);
    let body = resp.body_str();
    assert!(body.contains("live task(s) on 2 worker(s)"), "{body}");
    // The accept loop parks on the listener, this connection's task runs:
    // on a worker, or on the netpoll thread if the request found every
    // worker parked.
    assert!(body.contains("for read"), "{body}");
    assert!(
        body.contains("running on worker") || body.contains("running on the netpoll thread"),
        "{body}"
    );
    assert!(body.contains("examples/http/main.rs:"), "{body}");
}

#[test]
fn keep_alive_serves_100_sequential_requests_on_one_connection() {
    let (_server, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);
    for i in 0..100 {
        let resp = c.get(if i % 2 == 0 { "/" } else { "/json" });
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.header("connection"), None, "request {i}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_server, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);
    let paths = ["/", "/json", "/nope"];
    let batch: String = (0..50)
        .map(|i| format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", paths[i % 3]))
        .collect();
    c.send(batch.as_bytes()); // one write
    for i in 0..50 {
        let resp = c.response();
        match paths[i % 3] {
            "/" => assert_hello(&resp),
            "/json" => assert!(resp.body_str().starts_with('{'), "reply {i}: {resp:?}"),
            _ => assert_eq!(resp.status, 404, "reply {i}"),
        }
    }
    assert_hello(&c.get("/"));
}

#[test]
fn content_length_bodies_are_read_and_discarded() {
    let (_server, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);
    // A body that looks like a request must not be taken for one.
    let body = "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n";
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(format!("{head}{body}GET /json HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_hello(&c.response());
    assert_eq!(
        c.response().header("content-type"),
        Some("application/json")
    );

    // The same, with the body arriving in two reads: the server has read
    // its first 7 bytes before the rest is sent.
    c.send(head.as_bytes());
    c.send_split(body.as_bytes(), 7);
    assert_hello(&c.response());
    assert_hello(&c.get("/"));

    // Expect: 100-continue gets the interim reply before the body is sent.
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(c.response().status, 100);
    c.send(b"hello");
    assert_hello(&c.response());
}

#[test]
fn chunked_bodies_are_read_and_discarded() {
    let (_server, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);
    // A chunk that looks like a request, an extension, a trailer, and a
    // request pipelined behind.
    let chunk = "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n";
    let body = format!(
        "{:x};name=value\r\n{chunk}\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
        chunk.len()
    );
    let head = "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    c.send(format!("{head}{body}GET /json HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_hello(&c.response());
    assert_eq!(
        c.response().header("content-type"),
        Some("application/json")
    );

    // The same, one byte per write.
    c.send(head.as_bytes());
    for b in body.bytes() {
        c.send(&[b]);
    }
    assert_hello(&c.response());

    // Expect: 100-continue.
    c.send(
        b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(c.response().status, 100);
    c.send(b"5\r\nhello\r\n0\r\n\r\n");
    assert_hello(&c.response());
}

/// Sends `request` on a new connection and expects `status`, a
/// `Connection: close`, and then the end of the stream.
fn expect_rejected(addr: SocketAddr, request: &[u8], status: u16) {
    let mut c = Client::connect(addr);
    c.send(request);
    let resp = c.response();
    let shown = String::from_utf8_lossy(&request[..request.len().min(80)]).into_owned();
    assert_eq!(resp.status, status, "for {shown:?}");
    assert_eq!(resp.header("connection"), Some("close"), "for {shown:?}");
    c.expect_eof();
}

#[test]
fn bad_requests_get_the_right_status_and_a_close() {
    let (_server, addr) = Proc::http(&[]);
    let cases: &[(&[u8], u16)] = &[
        // Malformed request line or header.
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400), // no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        // Framing.
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            501,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\n\r\n",
            417,
        ),
    ];
    for &(request, status) in cases {
        expect_rejected(addr, request, status);
    }

    // Limits: a head over 8 KiB, more than 64 header fields.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    expect_rejected(addr, big.as_bytes(), 431);
    let many: String = (0..65).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    expect_rejected(addr, many.as_bytes(), 431);

    // Just under the limits is fine.
    let fits: String = (0..63).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut c = Client::connect(addr);
    c.send(format!("GET / HTTP/1.1\r\nHost: t\r\n{fits}\r\n").as_bytes());
    assert_hello(&c.response());
}

#[test]
fn connection_close_gets_its_reply_then_eof() {
    let (_server, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);
    assert_hello(&c.get("/"));
    // The request pipelined after the closing one is not answered.
    c.send(
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let resp = c.response();
    assert_hello(&resp);
    assert_eq!(resp.header("connection"), Some("close"));
    c.expect_eof();
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let (_server, addr) = Proc::http(&[]);
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let resp = c.response();
    assert_hello(&resp);
    assert_eq!(resp.header("connection"), Some("close"));
    c.expect_eof();

    let mut c = Client::connect(addr);
    for _ in 0..3 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = c.response();
        assert_hello(&resp);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
}

/// Reads until the server closes (end of stream or reset); returns what it
/// sent and when it closed.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Instant) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the server did not close the connection");
        stream.set_read_timeout(Some(left)).unwrap();
        match support::example::read(stream, &mut buf) {
            Ok(0) => return (got, Instant::now()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, Instant::now()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn slowloris_is_cut_off_by_the_header_deadline() {
    let (_server, addr) = Proc::http(&["--header-timeout", "1"]);

    // Sends nothing at all.
    let start = Instant::now();
    let mut silent = support::example::connect(addr);

    // Trickles a header line every 100 ms, forever.
    let mut slow = support::example::connect(addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    let trickle_start = Instant::now();
    let mut reader = slow.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        for i in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            if slow
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .is_err()
            {
                return;
            }
        }
    });
    let (got, closed) = wait_closed(&mut reader, Duration::from_secs(5));
    let took = closed - trickle_start;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408 "),
        "{got:?}"
    );
    trickler.join().unwrap();

    let (got, closed) = wait_closed(&mut silent, Duration::from_secs(5));
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let took = closed - start;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let (_server, addr) = Proc::http(&["--idle-timeout", "1"]);
    let mut c = Client::connect(addr);
    assert_hello(&c.get("/"));
    let start = Instant::now();
    let (got, closed) = wait_closed(&mut c.stream, Duration::from_secs(5));
    assert!(got.is_empty());
    let took = closed - start;
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight() {
    let (mut server, addr) = Proc::http(&[]);

    // An idle keep-alive connection.
    let mut idle = Client::connect(addr);
    assert_hello(&idle.get("/"));

    // A request in flight: its body has not all arrived. The interim reply
    // proves the server has read the head.
    let mut busy = Client::connect(addr);
    busy.send(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(busy.response().status, 100);
    busy.send(b"hello");

    server.signal(libc::SIGTERM);
    server.wait_stdout(|l| l.contains("shutting down"));

    // The idle connection is closed; new connections are refused.
    let (got, _) = wait_closed(&mut idle.stream, WAIT);
    assert!(got.is_empty());
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections");
        std::thread::sleep(Duration::from_millis(10));
    }

    // The request in flight is answered in full, and then the connection
    // closes.
    busy.send(b"world");
    let resp = busy.response();
    assert_hello(&resp);
    assert_eq!(resp.header("connection"), Some("close"));
    busy.expect_eof();

    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let rest = server.rest_of_stdout();
    assert!(
        rest.iter().any(|l| l == "served 2 requests"),
        "{rest:?}\n{}",
        server.log()
    );
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["--workers", "0"], "--workers"),
        (&["--workers", "many"], "--workers"),
        (&["--header-timeout", "-1"], "--header-timeout"),
        (&["--idle-timeout", "soon"], "--idle-timeout"),
        (&["--write-timeout", "0"], "--write-timeout"),
        (&["--send-buffer", "12"], "--send-buffer"),
        (&["--addr"], "needs a value"),
        (&["--addr", "nowhere"], "--addr"),
        (&["--bogus"], "unknown argument"),
    ];
    for &(args, message) in cases {
        let (status, _, proc) = support::example::run("http", args, WAIT);
        assert_eq!(status.code(), Some(2), "args {args:?}\n{}", proc.log());
        assert!(
            proc.log().contains(message),
            "args {args:?}: no {message:?} in\n{}",
            proc.log()
        );
    }
    let (status, out, _) = support::example::run("http", &["--help"], WAIT);
    assert!(status.success());
    assert!(out.iter().any(|l| l.contains("--header-timeout")));
}
