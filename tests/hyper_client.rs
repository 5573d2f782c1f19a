//! gopark's pooled HTTP/1.1 client (`gopark::hyper::Client`) against real
//! servers on loopback: keep-alive reuse counted by the server, a connect
//! timeout against a listener whose queue is full, a server that closes
//! idle connections, names resolved on the blocking pool, and the errors
//! of bad URIs and refused connections, and no descriptor or task left
//! behind. The tests take turns (`serial`): one of them counts the
//! process's descriptors.

mod support;

use std::convert::Infallible;
use std::future::IntoFuture;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::StreamExt;
use gopark::hyper::serve::{self, Listener};
use gopark::hyper::{client, Client};
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use support::rt::{run_io, serial, LIMIT};

/// A TCP listener that counts the connections it accepted.
struct Counting {
    inner: TcpListener,
    accepted: Arc<AtomicUsize>,
}

impl Listener for Counting {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let conn = std::task::ready!(self.inner.poll_accept(cx))?;
        // Relaxed: read by the test after the requests it counts.
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Ok(conn))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A hyper server that answers with the request's path (repeated to 8 MiB
/// for a path under `/big`, more than socket buffers and hyper's read
/// buffer hold), and counts
/// its connections. It runs until the runtime ends.
fn counting_server() -> io::Result<(SocketAddr, Arc<AtomicUsize>)> {
    let inner = TcpListener::bind("127.0.0.1:0")?;
    let addr = inner.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = Counting {
        inner,
        accepted: accepted.clone(),
    };
    let echo_path = service_fn(|req: Request<Incoming>| async move {
        let path = req.uri().path();
        let body = if path.starts_with("/big") {
            path.repeat((8 << 20) / path.len())
        } else {
            path.to_string()
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    drop(runtime::spawn(
        serve::serve(listener, echo_path).into_future(),
    ));
    Ok((addr, accepted))
}

fn uri(addr: SocketAddr, path: &str) -> Uri {
    format!("http://{addr}{path}").parse().unwrap()
}

async fn body(resp: Response<client::Body>) -> io::Result<Bytes> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes())
}

#[test]
fn requests_in_turn_share_one_connection() {
    let _serial = serial();
    run_io(2, "client-reuse", LIMIT, || async {
        let (addr, accepted) = counting_server()?;
        let client: Client<Empty<Bytes>> = Client::new();
        for i in 0..5 {
            let path = format!("/request/{i}");
            let resp = client.get(uri(addr, &path)).await?;
            assert_eq!(resp.status(), 200);
            assert_eq!(body(resp).await?, path);
        }
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            1,
            "one connection for all"
        );
        assert_eq!(client.idle_connections(), 1);
        Ok(())
    });
}

#[test]
fn concurrent_requests_open_connections_that_are_then_reused() {
    let _serial = serial();
    run_io(2, "client-concurrent", LIMIT, || async {
        let (addr, accepted) = counting_server()?;
        let client: Client<Empty<Bytes>> = Client::new();
        // Two large responses held unread at once need two connections.
        let a = client.get(uri(addr, "/big/a")).await?;
        let b = client.get(uri(addr, "/big/b")).await?;
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
        let (a, b) = (body(a).await?, body(b).await?);
        assert!(a.starts_with(b"/big/a/big/a") && a.len() > 8_000_000);
        assert!(b.starts_with(b"/big/b/big/b") && b.len() > 8_000_000);
        // Both went back to the pool as their bodies were read.
        assert_eq!(client.idle_connections(), 2);
        for _ in 0..4 {
            assert_eq!(body(client.get(uri(addr, "/c")).await?).await?, "/c");
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 2, "no new connection");
        Ok(())
    });
}

#[test]
fn a_body_dropped_half_read_closes_its_connection() {
    let _serial = serial();
    run_io(2, "client-drop-body", LIMIT, || async {
        let (addr, accepted) = counting_server()?;
        let client: Client<Empty<Bytes>> = Client::new();
        // Dropped with most of its 8 MiB unread: the connection cannot
        // carry another request, and is never pooled.
        drop(client.get(uri(addr, "/big/dropped")).await?);
        let resp = client.get(uri(addr, "/big/read")).await?;
        assert!(body(resp).await?.len() > 8_000_000);
        assert_eq!(accepted.load(Ordering::Relaxed), 2, "a new connection");
        // The one read to its end is reused.
        assert_eq!(body(client.get(uri(addr, "/x")).await?).await?, "/x");
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
        Ok(())
    });
}

#[test]
fn a_connect_to_a_full_queue_times_out() {
    let _serial = serial();
    run_io(2, "client-connect-timeout", LIMIT, || async {
        // Backlog 0: the kernel queues one connection (backlog + 1) and
        // drops the SYNs after it, so a connect hangs in SYN retries. The
        // probe's bound is generous: a connect to a queue with room takes
        // microseconds, even on a busy machine.
        let listener = TcpListener::options().backlog(0).bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut held = Vec::new();
        let mut full = false;
        for _ in 0..16 {
            match timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
                Ok(stream) => held.push(stream?),
                Err(_) => {
                    full = true;
                    break;
                }
            }
        }
        assert!(full, "the queue never filled ({} connections)", held.len());

        let limit = Duration::from_millis(300);
        let client: Client<Empty<Bytes>> = Client::builder().connect_timeout(Some(limit)).build();
        let start = Instant::now();
        let err = client.get(uri(addr, "/")).await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(took >= limit, "gave up after {took:?}, before {limit:?}");
        assert!(took < Duration::from_secs(10), "gave up after {took:?}");
        drop(listener);
        Ok(())
    });
}

/// A server that answers one keep-alive request per connection, then
/// closes it, as a server with a short idle timeout does; it reports each
/// close on `closed`.
async fn closing_server(listener: TcpListener, closed: mpsc::UnboundedSender<()>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let closed = closed.clone();
        drop(runtime::spawn(async move {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            // No `Connection: close`: the client takes it for keep-alive.
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            drop(stream);
            let _ = closed.unbounded_send(());
        }));
    }
}

#[test]
fn a_server_that_closes_idle_connections_is_reconnected_to() {
    let _serial = serial();
    run_io(2, "client-reconnect", LIMIT, || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, mut closed) = mpsc::unbounded();
        drop(runtime::spawn(closing_server(listener, tx)));
        let client: Client<Empty<Bytes>> = Client::new();
        for i in 0..5 {
            let resp = client.get(uri(addr, "/")).await?;
            assert_eq!(body(resp).await?, "ok", "request {i}");
            // The server has closed this connection; the pool may not
            // know yet.
            closed.next().await.unwrap();
        }
        // And without waiting for the close: whichever way the race goes
        // (seen closed in the pool, handed back unsent, or written as the
        // close lands and sent again), it succeeds.
        for i in 0..20 {
            let resp = client.get(uri(addr, "/")).await?;
            assert_eq!(body(resp).await?, "ok", "quick request {i}");
        }
        Ok(())
    });
}

/// What [`scripted_server`] does with one request on a connection.
#[derive(Clone, Copy, Debug)]
enum Turn {
    /// Answers it; the connection stays open for the next one.
    Answer,
    /// Closes the connection unanswered: the race of a server's idle close
    /// with a request sent on that connection, made certain.
    Drop,
    /// Writes the start of an answer, then closes the connection.
    HalfAnswer,
}

/// A server that plays `scripts[n]` on its `n`th connection (`[Answer,
/// Drop]` past the end of `scripts`), one turn per request it reads, and
/// closes the connection after the last turn. It logs each request it
/// read as `"{connection} {method} {path} {body}"`, before it answers or
/// closes: by the time the client has its answer or its error, the log
/// has the request.
async fn scripted_server(
    listener: TcpListener,
    scripts: Vec<Vec<Turn>>,
    log: Arc<Mutex<Vec<String>>>,
) {
    for n in 0.. {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let script = scripts
            .get(n)
            .cloned()
            .unwrap_or(vec![Turn::Answer, Turn::Drop]);
        let log = log.clone();
        drop(runtime::spawn(async move {
            let mut buf = Vec::new();
            for turn in script {
                let Ok(Some(req)) = read_request(&stream, &mut buf).await else {
                    return;
                };
                log.lock().unwrap().push(format!("{n} {req}"));
                let reply: &[u8] = match turn {
                    // An answer to a HEAD has no body.
                    Turn::Answer if req.starts_with("HEAD ") => {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                    }
                    Turn::Answer => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                    Turn::Drop => return,
                    Turn::HalfAnswer => b"HTTP/1.1 200 OK\r\nContent-Le",
                };
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
        }));
    }
}

/// Reads one request from `stream` (`buf` keeps what came after it) and
/// gives it as `"{method} {path} {body}"`; `None` at end of stream.
async fn read_request(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
    let mut chunk = [0u8; 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = req.parse(buf).map_err(io::Error::other)? {
            let len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| {
                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                });
            let line = format!("{} {}", req.method.unwrap(), req.path.unwrap());
            while buf.len() < head + len {
                match stream.read(&mut chunk).await? {
                    0 => return Ok(None),
                    n => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8_lossy(&buf[head..head + len]).into_owned();
            buf.drain(..head + len);
            return Ok(Some(format!("{line} {body}")));
        }
        match stream.read(&mut chunk).await? {
            0 => return Ok(None),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A [`scripted_server`] on loopback, and its log.
fn start_scripted(scripts: Vec<Vec<Turn>>) -> io::Result<(SocketAddr, Arc<Mutex<Vec<String>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let log = Arc::new(Mutex::new(Vec::new()));
    drop(runtime::spawn(scripted_server(
        listener,
        scripts,
        log.clone(),
    )));
    Ok((addr, log))
}

fn request(method: &str, addr: SocketAddr, path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri(addr, path))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// The log's entries, and the log emptied.
fn drain(log: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn an_idempotent_request_on_a_reused_connection_closed_under_it_is_sent_again() {
    let _serial = serial();
    run_io(2, "client-replay", LIMIT, || async {
        // Each connection answers one request and drops the next.
        let (addr, log) = start_scripted(Vec::new())?;
        let client: Client<Full<Bytes>> = Client::new();
        assert_eq!(body(client.get(uri(addr, "/first")).await?).await?, "ok");
        assert_eq!(drain(&log), ["0 GET /first "]);
        // Each with an empty body: none, or an empty `Full`.
        let methods = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];
        for (next, method) in methods.into_iter().enumerate() {
            let resp = client.request(request(method, addr, "/again", "")).await?;
            assert_eq!(resp.status(), 200, "{method}");
            if method != "HEAD" {
                assert_eq!(body(resp).await?, "ok", "{method}");
            } else {
                drop(resp);
            }
            // Written on the pooled connection, which the server closed
            // unanswered, then once more on a new one.
            assert_eq!(
                drain(&log),
                [
                    format!("{next} {method} /again "),
                    format!("{} {method} /again ", next + 1)
                ],
                "{method}",
            );
        }
        Ok(())
    });
}

#[test]
fn a_request_that_cannot_be_sent_twice_fails_with_its_connection() {
    let _serial = serial();
    run_io(2, "client-no-replay", LIMIT, || async {
        let (addr, log) = start_scripted(Vec::new())?;
        let client: Client<Full<Bytes>> = Client::new();
        let requests = [
            ("POST", "data"),
            ("POST", ""),
            ("PUT", "data"),
            ("DELETE", "x"),
        ];
        for (conn, (method, body_sent)) in requests.into_iter().enumerate() {
            // A request on a new connection, answered: the connection goes
            // back to the pool.
            assert_eq!(body(client.get(uri(addr, "/first")).await?).await?, "ok");
            // The next one takes it, and the server closes it unanswered.
            let err = client
                .request(request(method, addr, "/once", body_sent))
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Other,
                "{method} {body_sent:?}: {err}"
            );
            assert_eq!(
                drain(&log),
                [
                    format!("{conn} GET /first "),
                    format!("{conn} {method} /once {body_sent}")
                ],
                "{method} {body_sent:?}: sent once",
            );
        }
        Ok(())
    });
}

#[test]
fn a_request_is_sent_again_once_and_only_before_an_answer_begins() {
    let _serial = serial();
    run_io(2, "client-replay-once", LIMIT, || async {
        use Turn::*;
        let (addr, log) = start_scripted(vec![
            vec![Answer, Drop],
            // The new connection of the second try drops it too.
            vec![Drop],
            vec![Answer, HalfAnswer],
        ])?;
        let client: Client<Empty<Bytes>> = Client::new();
        assert_eq!(body(client.get(uri(addr, "/a")).await?).await?, "ok");
        let err = client.get(uri(addr, "/b")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other, "{err}");
        assert_eq!(
            drain(&log),
            ["0 GET /a ", "0 GET /b ", "1 GET /b "],
            "two tries"
        );

        // An answer begun, then the connection closed: not sent again.
        assert_eq!(body(client.get(uri(addr, "/c")).await?).await?, "ok");
        let err = client.get(uri(addr, "/d")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other, "{err}");
        assert_eq!(drain(&log), ["2 GET /c ", "2 GET /d "], "one try");

        // A new connection's own failure is not retried either.
        let fresh: Client<Empty<Bytes>> = Client::new();
        let (addr, log) = start_scripted(vec![vec![Drop]])?;
        let err = fresh.get(uri(addr, "/e")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other, "{err}");
        assert_eq!(drain(&log), ["0 GET /e "], "one try");
        Ok(())
    });
}

#[test]
fn names_are_resolved_and_bad_uris_are_refused() {
    let _serial = serial();
    run_io(2, "client-names", LIMIT, || async {
        let (addr, _) = counting_server()?;
        let client: Client<Empty<Bytes>> = Client::new();
        let by_name: Uri = format!("http://localhost:{}/named", addr.port())
            .parse()
            .unwrap();
        assert_eq!(body(client.get(by_name).await?).await?, "/named");

        let https: Uri = "https://localhost/".parse().unwrap();
        assert_eq!(
            client.get(https).await.unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        let relative: Uri = "/no/host".parse().unwrap();
        assert_eq!(
            client.get(relative).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let unknown: Uri = "http://no-such-host.invalid/".parse().unwrap();
        assert!(client.get(unknown).await.is_err());

        // A closed port: refused, with its kind.
        let closed = TcpListener::bind("127.0.0.1:0")?;
        let closed_addr = closed.local_addr()?;
        drop(closed);
        let err = client.get(uri(closed_addr, "/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        Ok(())
    });
}

#[test]
fn nothing_is_left_behind_once_client_and_server_are_gone() {
    let _serial = serial();
    run_io(2, "client-census", LIMIT, || async {
        let census = support::leak::Census::take();
        let fds_before = support::proc::fd_count();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let hello = service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
        });
        let (stop, stopped) = futures_channel::oneshot::channel::<()>();
        let server = runtime::spawn(
            serve::serve(listener, hello)
                .with_graceful_shutdown(stopped)
                .into_future(),
        );
        let client: Client<Empty<Bytes>> = Client::new();
        // Two connections (the first body held while the second request
        // goes), one body dropped unread, the rest read.
        let held = client.get(uri(addr, "/")).await?;
        assert_eq!(body(client.get(uri(addr, "/")).await?).await?, "hello");
        drop(held);
        drop(client);
        stop.send(()).unwrap();
        support::rt::join(server).await?;
        // The client's connection drivers run detached and close their
        // sockets once they see the server's close: nothing to await.
        support::rt::eventually("the client's sockets closed", || {
            support::proc::fd_count() <= fds_before
        })
        .await;
        census
            .assert_back("the client and the server are gone")
            .await;
        Ok(())
    });
}
