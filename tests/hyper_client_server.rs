//! hyper's server and client, both on gopark through `gopark::hyper`:
//! bytes echoed and compared over HTTP/1.1 and HTTP/2, 100 concurrent
//! HTTP/2 streams on one connection, one port for both protocols, hyper's
//! header timeout on gopark's timers, the adapter in both directions, a
//! graceful shutdown that finishes the request in flight, and no
//! descriptor left behind.

mod support;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::future::{select, Either};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use gopark::hyper::{Executor, Io, Timer};
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::server::conn::auto;
use support::data::{assert_bytes_eq, pattern};
use support::proc::fd_count;

type Body = BoxBody<Bytes, hyper::Error>;

/// Runs `body` as a task on a fresh runtime of `workers` workers, bounded
/// in time, with no other test of this file running (one of them counts
/// this process's descriptors).
fn run<F, Fut>(workers: usize, body: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _serial = support::rt::serial();
    support::rt::run(workers, "hyper-test", body);
}

fn full(bytes: impl Into<Bytes>) -> Full<Bytes> {
    Full::new(bytes.into())
}

/// `POST /echo`: the body back, streamed. `GET /hello`: a greeting.
/// `GET /header`: the value of the `x-big` header.
async fn echo(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(match req.uri().path() {
        "/echo" => Response::new(req.into_body().boxed()),
        "/hello" => Response::new(full("hello").map_err(|never| match never {}).boxed()),
        "/header" => {
            let value = req.headers().get("x-big").map(|v| v.as_bytes().to_vec());
            Response::new(
                full(value.unwrap_or_default())
                    .map_err(|never| match never {})
                    .boxed(),
            )
        }
        _ => {
            let mut resp = Response::new(full("").map_err(|never| match never {}).boxed());
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        }
    })
}

/// What `serve_echo`'s accept loop counts.
#[derive(Default)]
struct Conns {
    accepted: AtomicUsize,
    open: AtomicUsize,
}

/// Serves `echo` with hyper-util's `auto` builder (HTTP/1.1 and HTTP/2) on
/// a new listener until the test ends.
fn serve_echo() -> (SocketAddr, Arc<Conns>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(Conns::default());
    let counts = conns.clone();
    runtime::spawn(async move {
        let builder = auto::Builder::new(Executor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            counts.open.fetch_add(1, Ordering::SeqCst);
            let builder = builder.clone();
            let counts = counts.clone();
            runtime::spawn(async move {
                let _ = builder
                    .serve_connection(Io::new(stream), service_fn(echo))
                    .await;
                counts.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, conns)
}

/// Waits (bounded) until `cond` holds, checking every few milliseconds:
/// for effects that nothing can be awaited for, such as a peer's task
/// noticing a close.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        runtime::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn h1_client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(Io::new(stream))
        .await
        .unwrap();
    runtime::spawn(conn);
    sender
}

async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(Executor::new(), Io::new(stream))
        .await
        .unwrap();
    runtime::spawn(conn);
    sender
}

fn post(path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(format!("http://localhost{path}"))
        .header("host", "localhost")
        .body(full(body))
        .unwrap()
}

async fn body_bytes(resp: Response<Incoming>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

#[test]
fn http1_echoes_every_byte_on_one_keep_alive_connection() {
    for workers in [1, 4] {
        run(workers, move || async move {
            let (addr, conns) = serve_echo();
            let mut client = h1_client(addr).await;
            for (i, len) in [0, 1, 1000, 64 * 1024 + 3, 1 << 20].into_iter().enumerate() {
                let sent = pattern(i as u64, len);
                client.ready().await.unwrap();
                let resp = client
                    .send_request(post("/echo", sent.clone()))
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.version(), Version::HTTP_11);
                let got = body_bytes(resp).await;
                assert_bytes_eq(&got, &sent, &format!("{workers} workers, {len} bytes"));
            }
            assert_eq!(
                conns.accepted.load(Ordering::SeqCst),
                1,
                "one keep-alive connection"
            );
        });
    }
}

#[test]
fn a_request_head_larger_than_one_read_arrives_whole() {
    // `Io` offers a read 1 KiB at first and grows the offer only when a
    // read fills it: a 60 KiB head takes several reads, each larger.
    run(1, || async {
        let (addr, _) = serve_echo();
        let mut client = h1_client(addr).await;
        for len in [100, 1023, 1024, 1025, 4000, 60_000] {
            let value: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let req = Request::get("http://localhost/header")
                .header("host", "localhost")
                .header("x-big", &value)
                .body(full(""))
                .unwrap();
            client.ready().await.unwrap();
            let resp = client.send_request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{len}-byte header");
            assert_bytes_eq(&body_bytes(resp).await, value.as_bytes(), "header value");
        }
    });
}

#[test]
fn http2_carries_100_concurrent_streams_on_one_connection() {
    const STREAMS: usize = 100;
    run(4, || async {
        // Every request waits until all 100 have arrived: they are open at
        // the same time, on one connection.
        let barrier = Arc::new(tokio::sync::Barrier::new(STREAMS));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = runtime::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |req: Request<Incoming>| {
                let barrier = barrier.clone();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    barrier.wait().await;
                    Ok::<_, hyper::Error>(Response::new(full(body)))
                }
            });
            hyper::server::conn::http2::Builder::new(Executor::new())
                .timer(Timer::new())
                .serve_connection(Io::new(stream), service)
                .await
                .unwrap();
        });

        let client = h2_client(addr).await;
        let requests: Vec<_> = (0..STREAMS)
            .map(|i| {
                let mut client = client.clone();
                runtime::spawn(async move {
                    let sent = pattern(i as u64 + 1000, 100 + i * 97);
                    let resp = client.send_request(post("/", sent.clone())).await.unwrap();
                    assert_eq!(resp.version(), Version::HTTP_2);
                    assert_bytes_eq(&body_bytes(resp).await, &sent, &format!("stream {i}"));
                })
            })
            .collect();
        for request in requests {
            request.await.unwrap();
        }
        drop(client); // the connection ends; so does the server
        server.await.unwrap();
    });
}

#[test]
fn one_port_speaks_http1_and_http2() {
    run(2, || async {
        let (addr, conns) = serve_echo();
        let mut h1 = h1_client(addr).await;
        let mut h2 = h2_client(addr).await;
        for (i, len) in [10, 100_000].into_iter().enumerate() {
            let sent = pattern(i as u64 + 7, len);
            let resp = h1.send_request(post("/echo", sent.clone())).await.unwrap();
            assert_eq!(resp.version(), Version::HTTP_11);
            assert_bytes_eq(&body_bytes(resp).await, &sent, "HTTP/1.1");
            let resp = h2.send_request(post("/echo", sent.clone())).await.unwrap();
            assert_eq!(resp.version(), Version::HTTP_2);
            assert_bytes_eq(&body_bytes(resp).await, &sent, "HTTP/2");
        }
        let resp = h2
            .send_request(
                Request::get("http://localhost/hello")
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(body_bytes(resp).await, "hello");
        assert_eq!(conns.accepted.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn header_read_timeout_runs_on_gopark_timers() {
    run(2, || async {
        const HEADER_TIMEOUT: Duration = Duration::from_millis(300);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = runtime::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .timer(Timer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(Io::new(stream), service_fn(echo))
                .await
        });
        // Before the connection exists, so before the server's timer starts.
        let start = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        // Half a request head, and then nothing. (On a machine so busy that
        // the timeout passed already, the write may find the connection
        // closed; the checks below still hold.)
        let _ = stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
            .await;
        let mut reply = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        let waited = start.elapsed();
        assert!(waited >= HEADER_TIMEOUT, "closed after {waited:?}");
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
            "reply: {reply:?}"
        );
        let err = server.await.unwrap().expect_err("the connection timed out");
        assert!(err.is_timeout(), "{err}");
    });
}

#[test]
fn timer_reset_moves_a_sleep_later_and_earlier() {
    use hyper::rt::Timer as _;
    run(1, || async {
        let timer = Timer::new();
        let ms = Duration::from_millis;

        // Later, before the first poll and while parked: never early.
        for poll_first in [false, true] {
            let start = Instant::now();
            let mut sleep = timer.sleep(ms(50));
            if poll_first {
                let polled = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
                assert!(polled.is_pending());
            }
            timer.reset(&mut sleep, start + ms(300));
            sleep.as_mut().await;
            assert!(start.elapsed() >= ms(300), "{:?}", start.elapsed());
        }

        // Earlier: an hour becomes 20 ms (the test's 30 s limit would
        // catch an hour).
        let start = Instant::now();
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        timer.reset(&mut sleep, start + ms(20));
        sleep.as_mut().await;
        assert!(start.elapsed() >= ms(20));

        // After it completed: armed again.
        let start = Instant::now();
        timer.reset(&mut sleep, start + ms(100));
        sleep.as_mut().await;
        assert!(start.elapsed() >= ms(100));

        // Many moves later, as hyper makes per request: one completion, at
        // the last deadline.
        let start = Instant::now();
        let mut sleep = timer.sleep(ms(10));
        for i in 1..=20u64 {
            timer.reset(&mut sleep, start + ms(10 * i));
        }
        sleep.as_mut().await;
        assert!(start.elapsed() >= ms(200));
    });
}

#[test]
fn io_adapts_both_ways() {
    run(2, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = runtime::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..n]);
                stream.write_all(&buf[..n]).await.unwrap();
            }
        });
        // futures-io -> hyper -> futures-io: every call crosses both
        // directions of the adapter.
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut io = Io::new(Io::new(stream));
        let sent = pattern(42, 1 << 20);
        let mut reader = Vec::new();
        for chunk in sent.chunks(100_000) {
            io.write_all(chunk).await.unwrap();
            let mut back = vec![0u8; chunk.len()];
            io.read_exact(&mut back).await.unwrap();
            reader.extend_from_slice(&back);
        }
        io.close().await.unwrap(); // shuts the write half: the peer sees EOF
        assert_bytes_eq(&reader, &sent, "read back through Io<Io<TcpStream>>");
        assert_bytes_eq(&peer.await.unwrap(), &sent, "what the peer received");
        let mut rest = [0u8; 8];
        assert_eq!(io.read(&mut rest).await.unwrap(), 0, "the peer closed");
    });
}

#[test]
fn graceful_shutdown_finishes_the_request_in_flight() {
    for http2 in [false, true] {
        run(2, || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client_stream = TcpStream::connect(addr).await.unwrap();
            let (server_stream, _) = listener.accept().await.unwrap();

            // The handler tells the test it has the request, then waits
            // for the gate before it answers.
            let (started_tx, started) = oneshot::channel::<()>();
            let (open_gate, gate) = oneshot::channel::<()>();
            let slot = Arc::new(std::sync::Mutex::new(Some((started_tx, gate))));
            let service = service_fn(move |req: Request<Incoming>| {
                let slot = slot.lock().unwrap().take();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    if let Some((started, gate)) = slot {
                        started.send(()).unwrap();
                        gate.await.unwrap();
                    }
                    Ok::<_, hyper::Error>(Response::new(full(body)))
                }
            });
            // The connection's task calls hyper's `graceful_shutdown` when
            // told to, and says when it has.
            let (begin, begin_rx) = oneshot::channel::<()>();
            let (begun_tx, begun) = oneshot::channel::<()>();
            let conn = runtime::spawn(async move {
                let builder = auto::Builder::new(Executor::new());
                let mut conn = pin!(builder.serve_connection(Io::new(server_stream), service));
                match select(conn.as_mut(), begin_rx).await {
                    Either::Left((done, _)) => panic!("ended before the shutdown: {done:?}"),
                    Either::Right((_, _)) => conn.as_mut().graceful_shutdown(),
                }
                begun_tx.send(()).unwrap();
                conn.await
            });

            let client = runtime::spawn(async move {
                let sent = pattern(9, 10_000);
                let resp = if http2 {
                    let io = Io::new(client_stream);
                    let (mut sender, conn) =
                        hyper::client::conn::http2::handshake(Executor::new(), io)
                            .await
                            .unwrap();
                    runtime::spawn(conn);
                    sender.send_request(post("/", sent.clone())).await.unwrap()
                } else {
                    let io = Io::new(client_stream);
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(io).await.unwrap();
                    runtime::spawn(conn);
                    sender.send_request(post("/", sent.clone())).await.unwrap()
                };
                assert_eq!(resp.status(), StatusCode::OK);
                let connection = resp.headers().get("connection").cloned();
                assert_bytes_eq(&body_bytes(resp).await, &sent, "the request in flight");
                connection
            });

            started.await.unwrap();
            // The request is in the handler: begin the shutdown now, and
            // answer only once hyper knows.
            begin.send(()).unwrap();
            begun.await.unwrap();
            open_gate.send(()).unwrap();
            let connection = client.await.unwrap();
            if !http2 {
                assert_eq!(
                    connection.as_ref().map(|v| v.to_str().unwrap()),
                    Some("close"),
                    "HTTP/1.1 says the connection closes"
                );
            }
            // The connection ends after the answer, without another request.
            timeout(Duration::from_secs(20), conn)
                .await
                .expect("the connection closes after the request in flight")
                .unwrap()
                .unwrap();
        });
    }
}

#[test]
fn connections_leave_no_descriptor_behind() {
    run(2, || async {
        let (addr, conns) = serve_echo();
        let before = fd_count();
        for i in 0..25 {
            let mut h1 = h1_client(addr).await;
            let resp = h1
                .send_request(post("/echo", pattern(i, 100)))
                .await
                .unwrap();
            assert_eq!(body_bytes(resp).await.len(), 100);
            let mut h2 = h2_client(addr).await;
            let resp = h2
                .send_request(post("/echo", pattern(i, 100)))
                .await
                .unwrap();
            assert_eq!(body_bytes(resp).await.len(), 100);
        }
        assert_eq!(conns.accepted.load(Ordering::SeqCst), 50);
        // The clients are dropped; each side's task ends when it sees the
        // other close.
        eventually("every server connection ends", || {
            conns.open.load(Ordering::SeqCst) == 0
        })
        .await;
        eventually("the descriptor count comes back", || fd_count() == before).await;
    });
}
