//! A 100 MiB request body streamed through a hyper echo server on gopark
//! and back, over HTTP/1.1 and over HTTP/2, with bounded memory: neither
//! side ever holds the body. The client makes the body as it is sent and
//! checks what comes back as it arrives, and the process's resident memory
//! (sampled from `/proc/self/statm` while the bytes flow) must stay far
//! below the body's size.
//!
//! `GOPARK_BODY_MIB` sets the size (default 100). This file is its own test
//! binary so that no other test's memory moves the figures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gopark::hyper::{Executor, Io};
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout, Builder};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::server::conn::auto;

const MIB: usize = 1 << 20;
/// What the body generator sends per frame.
const CHUNK: usize = 64 * 1024;
/// The pattern repeats with this period, which no frame size divides, so a
/// byte out of place shows.
const PERIOD: usize = MIB + 7;
/// Growth of resident memory allowed while the body flows.
const MEMORY_BOUND: usize = 32 * MIB;
const LIMIT: Duration = Duration::from_secs(300);

fn body_size() -> usize {
    std::env::var("GOPARK_BODY_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100)
        * MIB
}

/// The pattern, one period plus a megabyte so that any frame up to that
/// size is one slice of it.
fn table() -> Bytes {
    (0..PERIOD + MIB)
        .map(|i| {
            let i = i % PERIOD;
            (i as u8).wrapping_mul(31) ^ (i >> 9) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

/// A request body of `len` bytes of the pattern, made frame by frame
/// (slices of the shared table: nothing is copied or kept).
struct Generated {
    table: Bytes,
    sent: usize,
    len: usize,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.sent == this.len {
            return Poll::Ready(None);
        }
        let n = CHUNK.min(this.len - this.sent);
        let start = this.sent % PERIOD;
        this.sent += n;
        Poll::Ready(Some(Ok(Frame::data(this.table.slice(start..start + n)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.len - self.sent) as u64)
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Incoming>, Infallible> {
    Ok(Response::new(req.into_body()))
}

fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    runtime::spawn(async move {
        let builder = auto::Builder::new(Executor::new());
        while let Ok((stream, _)) = listener.accept().await {
            let builder = builder.clone();
            runtime::spawn(async move {
                let _ = builder
                    .serve_connection(Io::new(stream), service_fn(echo))
                    .await;
            });
        }
    });
    addr
}

/// Sends the generated body to the echo server and checks every byte that
/// comes back; returns the largest growth of resident memory seen.
async fn round_trip(addr: SocketAddr, http2: bool, table: Bytes, len: usize) -> usize {
    let stream = TcpStream::connect(addr).await.unwrap();
    let req = Request::post("http://localhost/echo")
        .header("host", "localhost")
        .body(Generated {
            table: table.clone(),
            sent: 0,
            len,
        })
        .unwrap();
    let baseline = rss();
    let resp = if http2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(Executor::new(), Io::new(stream))
                .await
                .unwrap();
        runtime::spawn(conn);
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(Io::new(stream))
            .await
            .unwrap();
        runtime::spawn(conn);
        sender.send_request(req).await.unwrap()
    };
    assert_eq!(resp.status(), StatusCode::OK);

    let mut body = resp.into_body();
    let (mut received, mut frames, mut peak) = (0usize, 0u64, 0usize);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        let mut data = &data[..];
        while !data.is_empty() {
            let start = received % PERIOD;
            let n = data.len().min(table.len() - start);
            assert!(
                data[..n] == table[start..start + n],
                "bytes {received}..{} differ from what was sent",
                received + n
            );
            received += n;
            data = &data[n..];
        }
        frames += 1;
        if frames % 16 == 0 {
            peak = peak.max(rss().saturating_sub(baseline));
        }
    }
    assert_eq!(received, len, "bytes echoed");
    peak.max(rss().saturating_sub(baseline))
}

#[test]
fn a_100_mib_body_streams_through_with_bounded_memory() {
    let len = body_size();
    let rt = Builder::new().worker_threads(2).build().unwrap();
    rt.block_on(async {
        let table = table();
        let addr = serve();
        for http2 in [false, true] {
            let protocol = if http2 { "HTTP/2" } else { "HTTP/1.1" };
            let start = Instant::now();
            let growth = timeout(LIMIT, round_trip(addr, http2, table.clone(), len))
                .await
                .unwrap_or_else(|_| panic!("{protocol}: not done within {LIMIT:?}"));
            eprintln!(
                "{protocol}: {} MiB there and back in {:?}, resident memory grew by at most {:.1} MiB",
                len / MIB,
                start.elapsed(),
                growth as f64 / MIB as f64
            );
            assert!(
                growth < MEMORY_BOUND,
                "{protocol}: resident memory grew by {growth} bytes while a {len}-byte body streamed"
            );
        }
    });
}
