//! `gopark::hyper::serve` against real clients on loopback: a graceful
//! shutdown that finishes the request in flight, closes idle connections
//! at once and refuses new ones; a deadline that closes what is left; hyper
//! and tower (axum) services over TCP and Unix sockets, HTTP/1.1 and
//! HTTP/2; a listener that fails for good; and accept out of descriptors
//! (`EMFILE`), backed off and logged once, in a child process.

mod support;

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use gopark::hyper::serve::{serve, Listener};
use gopark::hyper::{Executor, Io};
use gopark::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use gopark::runtime::{self, time::timeout};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use support::leak::Census;
use support::net::read_to_end;
use support::proc::{cpu_time, OutOfFiles};
use support::rt::{run_io, serial, LIMIT};
use support::unix::TempPath;
use support::{child, rt::join};

/// Bound on each wait of a test.
const WAIT: Duration = Duration::from_secs(10);

/// What the test's service tells the test, and what it waits for.
struct Gate {
    /// `/wait` reports here that its request has arrived...
    started: mpsc::UnboundedReceiver<()>,
    /// ...and answers once this is sent (never, if it is dropped).
    release: async_channel::Sender<()>,
}

/// A hyper service: `/wait` answers `done` once released, anything else
/// `hello` at once.
#[derive(Clone)]
struct Gated {
    started: mpsc::UnboundedSender<()>,
    released: async_channel::Receiver<()>,
}

impl hyper::service::Service<Request<Incoming>> for Gated {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let Gated { started, released } = self.clone();
        Box::pin(async move {
            if req.uri().path() == "/wait" {
                let _ = started.unbounded_send(());
                let _ = released.recv().await;
                return Ok(Response::new(Full::new(Bytes::from("done"))));
            }
            Ok(Response::new(Full::new(Bytes::from("hello"))))
        })
    }
}

fn gated() -> (Gated, Gate) {
    let (started_tx, started) = mpsc::unbounded();
    let (release, released) = async_channel::unbounded::<()>();
    let service = Gated {
        started: started_tx,
        released,
    };
    (service, Gate { started, release })
}

/// Sends a raw HTTP/1.1 GET.
async fn get(stream: &TcpStream, path: &str) -> io::Result<()> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(req.as_bytes()).await
}

/// Reads one response with a body of `len` bytes.
async fn read_response(stream: &TcpStream, len: usize) -> io::Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + len {
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "closed mid-response",
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn graceful_shutdown_finishes_in_flight_closes_idle_and_refuses_new() {
    let _serial = serial();
    run_io(2, "serve-graceful", LIMIT, || async {
        let census = Census::take();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (service, mut gate) = gated();
        let (stop, stopped) = oneshot::channel::<()>();
        let (open_tx, open_rx) = oneshot::channel();
        let server = runtime::spawn(
            serve(listener, service)
                .with_graceful_shutdown(stopped)
                .on_shutdown(move |open| open_tx.send(open).unwrap())
                .into_future(),
        );

        // An idle keep-alive connection, and one with a request in flight.
        let idle = TcpStream::connect(addr).await?;
        get(&idle, "/").await?;
        assert!(read_response(&idle, 5).await?.ends_with("hello"));
        let busy = TcpStream::connect(addr).await?;
        get(&busy, "/wait").await?;
        gate.started.next().await.unwrap();

        stop.send(()).unwrap();
        assert_eq!(
            open_rx.await.unwrap(),
            2,
            "open connections at the shutdown"
        );
        // The idle connection is closed at once...
        assert_eq!(timeout(WAIT, read_to_end(&idle)).await.unwrap()?, b"");
        // ...new ones are refused...
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        // ...and the request in flight is answered, then its connection
        // closes.
        assert!(!server.is_finished());
        gate.release.send(()).await.unwrap();
        let rest = String::from_utf8(timeout(WAIT, read_to_end(&busy)).await.unwrap()?).unwrap();
        assert!(rest.starts_with("HTTP/1.1 200 OK"), "{rest}");
        assert!(
            rest.to_ascii_lowercase().contains("connection: close"),
            "{rest}"
        );
        assert!(rest.ends_with("done"), "{rest}");
        timeout(WAIT, join(server)).await.unwrap()?;

        drop((idle, busy));
        census.assert_back("the server ended").await;
        Ok(())
    });
}

#[test]
fn the_shutdown_timeout_closes_what_is_left() {
    let _serial = serial();
    run_io(2, "serve-deadline", LIMIT, || async {
        let census = Census::take();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (service, mut gate) = gated();
        let (stop, stopped) = oneshot::channel::<()>();
        let grace = Duration::from_millis(200);
        let server = runtime::spawn(
            serve(listener, service)
                .with_graceful_shutdown(stopped)
                .shutdown_timeout(grace)
                .into_future(),
        );
        let stuck = TcpStream::connect(addr).await?;
        get(&stuck, "/wait").await?;
        gate.started.next().await.unwrap();

        let start = Instant::now();
        stop.send(()).unwrap();
        let err = timeout(WAIT, join(server)).await.unwrap().unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("1 connection(s)"), "{err}");
        assert!(took >= grace, "gave up after {took:?}");
        // The connection was closed without an answer.
        assert_eq!(timeout(WAIT, read_to_end(&stuck)).await.unwrap()?, b"");

        drop((stuck, gate));
        census.assert_back("the server gave up").await;
        Ok(())
    });
}

#[test]
fn an_axum_router_over_a_unix_socket_speaks_http1_and_http2() {
    let _serial = serial();
    run_io(2, "serve-unix-axum", LIMIT, || async {
        let path = TempPath::new("serve-axum");
        let listener = UnixListener::bind(&*path)?;
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|req: axum::extract::Request| async move {
                format!("{:?}", req.version())
            }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let server = runtime::spawn(
            serve(listener, app)
                .with_graceful_shutdown(stopped)
                .into_future(),
        );

        let io = Io::new(UnixStream::connect(&*path).await?);
        let (mut h1, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(io::Error::other)?;
        drop(runtime::spawn(conn));
        let req = Request::get("/")
            .header("host", "x")
            .body(Full::<Bytes>::default())
            .unwrap();
        let body = h1
            .send_request(req)
            .await
            .map_err(io::Error::other)?
            .into_body();
        assert_eq!(
            body.collect().await.map_err(io::Error::other)?.to_bytes(),
            "HTTP/1.1"
        );

        let io = Io::new(UnixStream::connect(&*path).await?);
        let (mut h2, conn) = hyper::client::conn::http2::handshake(Executor::new(), io)
            .await
            .map_err(io::Error::other)?;
        let conn = runtime::spawn(conn);
        let req = Request::get("http://x/")
            .body(Full::<Bytes>::default())
            .unwrap();
        let body = h2
            .send_request(req)
            .await
            .map_err(io::Error::other)?
            .into_body();
        assert_eq!(
            body.collect().await.map_err(io::Error::other)?.to_bytes(),
            "HTTP/2.0"
        );

        // The shutdown sends the HTTP/2 client a GOAWAY; its connection
        // ends cleanly.
        stop.send(()).unwrap();
        timeout(WAIT, join(conn))
            .await
            .unwrap()
            .map_err(io::Error::other)?;
        timeout(WAIT, join(server)).await.unwrap()?;
        Ok(())
    });
}

/// A listener whose descriptor has gone bad.
struct Broken;

impl Listener for Broken {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn poll_accept(&mut self, _: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        Poll::Ready(Err(io::Error::from_raw_os_error(libc::EBADF)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(io::Error::from_raw_os_error(libc::EBADF))
    }
}

#[test]
fn a_listener_that_fails_for_good_ends_serve_with_its_error() {
    let _serial = serial();
    run_io(1, "serve-broken", LIMIT, || async {
        let (service, _gate) = gated();
        let err = timeout(WAIT, serve(Broken, service).into_future())
            .await
            .expect("serve ends")
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        Ok(())
    });
}

const CHILD_ENV: &str = "GOPARK_TEST_SERVE_EMFILE_CHILD";
const CLIENTS: usize = 8;
/// The window over which CPU time is measured while accept keeps failing,
/// and the CPU time allowed in it: a loop that spins uses all of it.
const WINDOW: Duration = Duration::from_millis(500);
const CPU_BUDGET: Duration = Duration::from_millis(150);

#[test]
fn out_of_descriptors_serve_backs_off_logs_once_and_recovers() {
    // The child's pipes are descriptors of this process: not while another
    // test counts them.
    let _serial = serial();
    let out = child::run(
        child::command("emfile_child", &[(CHILD_ENV, "1".to_string())]),
        Duration::from_secs(60),
    );
    out.assert_passed("serve's EMFILE child");
    let logged = out.stderr.matches("gopark::hyper::serve: accept:").count();
    assert_eq!(logged, 1, "logged once:\n{}", out.stderr);
    assert!(out.stderr.contains("Too many open files"), "{}", out.stderr);
}

/// The child's side. Returns at once unless re-executed by the test above.
#[test]
fn emfile_child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    run_io(2, "serve emfile child", Duration::from_secs(20), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (service, _gate) = gated();
        drop(runtime::spawn(serve(listener, service).into_future()));
        // Clients connect (the kernel completes the handshakes in its
        // queue) and send their requests.
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let stream = TcpStream::connect(addr).await?;
            get(&stream, "/").await?;
            clients.push(stream);
        }
        let no_files = OutOfFiles::take(4)?;
        let cpu_before = cpu_time();
        runtime::time::sleep(WINDOW).await;
        let cpu = cpu_time() - cpu_before;
        assert!(
            cpu < CPU_BUDGET,
            "{cpu:?} of CPU in {WINDOW:?} while accept failed with EMFILE"
        );
        // Descriptors come back: every client is answered.
        drop(no_files);
        for stream in &clients {
            let resp = timeout(WAIT, read_response(stream, 5))
                .await
                .expect("answered")?;
            assert!(resp.ends_with("hello"), "{resp}");
        }
        Ok(())
    });
}
