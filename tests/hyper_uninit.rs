//! hyper reading gopark's sockets straight into its uninitialized buffer
//! (`Io::from_socket`, what `serve` and the pooled `Client` use): large
//! seeded bodies cross `serve` and the `Client` over TCP, and `serve` and
//! hyper's HTTP/1.1 and HTTP/2 clients over a Unix socket, byte for byte
//! in both directions; and a read that gets fewer bytes than hyper offered
//! reports exactly those, on every socket type `Io::from_socket` takes.

mod support;

use std::convert::Infallible;
use std::future::{poll_fn, IntoFuture};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::AsyncWriteExt;
use gopark::hyper::{serve, Client, Executor, Io, ReadUninit};
use gopark::net::{TcpListener, UnixListener, UnixStream};
use gopark::runtime;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::ReadBuf;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use support::data::{assert_bytes_eq, first_difference, pattern};
use support::net::pair;
use support::rt::{run_io, LIMIT};
use support::unix::TempPath;

/// The size of every request and response body: larger than socket
/// buffers and hyper's read buffer, and no multiple of any buffer size.
const LEN: usize = (3 << 20) + 17;

/// The seed of the answer to a request whose body has seed `seed`.
fn answer_seed(seed: u64) -> u64 {
    seed + 1000
}

/// `POST /SEED`: checks that the body is `pattern(SEED, LEN)` and answers
/// `pattern(answer_seed(SEED), LEN)`; a body that differs gets a 400 that
/// says where.
async fn check_and_answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let seed: u64 = req.uri().path()[1..].parse().expect("a seed as the path");
    let got = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(status(StatusCode::BAD_REQUEST, format!("body: {e}"))),
    };
    if let Some(at) = first_difference(&got, &pattern(seed, LEN)) {
        let msg = format!("{} bytes received; first difference at {at}", got.len());
        return Ok(status(StatusCode::BAD_REQUEST, msg));
    }
    let answer = pattern(answer_seed(seed), LEN);
    Ok(Response::new(Full::new(Bytes::from(answer))))
}

fn status(code: StatusCode, msg: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(msg)));
    *resp.status_mut() = code;
    resp
}

/// The request that [`check_and_answer`] expects for `seed`.
fn request(authority: &str, seed: u64) -> Request<Full<Bytes>> {
    Request::post(format!("http://{authority}/{seed}"))
        .body(Full::new(Bytes::from(pattern(seed, LEN))))
        .unwrap()
}

/// Checks an answer of [`check_and_answer`] to `seed`.
async fn check_answer(resp: Response<Incoming>, seed: u64, what: &str) -> io::Result<()> {
    let code = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    assert_eq!(code, 200, "{what}: {}", String::from_utf8_lossy(&body));
    assert_bytes_eq(&body, &pattern(answer_seed(seed), LEN), what);
    Ok(())
}

#[test]
fn large_bodies_cross_serve_and_the_client_byte_for_byte() {
    run_io(2, "uninit-tcp", LIMIT, || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        drop(runtime::spawn(
            serve(listener, service_fn(check_and_answer)).into_future(),
        ));
        let client: Client<Full<Bytes>> = Client::new();
        // The later requests reuse the connection: their bytes land in
        // buffers that earlier reads filled, and must show none of them.
        for seed in 1..=3 {
            let resp = client.request(request(&addr.to_string(), seed)).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
            assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
            assert_bytes_eq(
                &body,
                &pattern(answer_seed(seed), LEN),
                &format!("answer {seed}"),
            );
        }
        assert_eq!(client.idle_connections(), 1, "one connection for all");
        Ok(())
    });
}

#[test]
fn large_bodies_cross_serve_over_a_unix_socket_in_http1_and_http2() {
    run_io(2, "uninit-unix", LIMIT, || async {
        let path = TempPath::new("uninit");
        let listener = UnixListener::bind(&*path)?;
        drop(runtime::spawn(
            serve(listener, service_fn(check_and_answer)).into_future(),
        ));

        let io = Io::from_socket(UnixStream::connect(&*path).await?);
        let (mut h1, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(io::Error::other)?;
        drop(runtime::spawn(conn));
        for seed in 11..=12 {
            let resp = h1
                .send_request(request("x", seed))
                .await
                .map_err(io::Error::other)?;
            check_answer(resp, seed, &format!("HTTP/1.1 answer {seed}")).await?;
        }

        let io = Io::from_socket(UnixStream::connect(&*path).await?);
        let (mut h2, conn) = hyper::client::conn::http2::handshake(Executor::new(), io)
            .await
            .map_err(io::Error::other)?;
        drop(runtime::spawn(conn));
        // Two streams at once: their frames interleave on the connection.
        let a = h2.send_request(request("x", 21));
        let b = h2.send_request(request("x", 22));
        let (a, b) = futures_util::future::join(a, b).await;
        check_answer(a.map_err(io::Error::other)?, 21, "HTTP/2 answer 21").await?;
        check_answer(b.map_err(io::Error::other)?, 22, "HTTP/2 answer 22").await?;
        Ok(())
    });
}

/// The byte a read buffer holds before any read: a byte a read reported
/// without receiving it would show as this.
const BLANK: u8 = 0xA5;

/// Sends chunks of growing size through `writer`, one at a time, and reads
/// each through `Io::from_socket(reader)` into one hyper `ReadBuf` until it
/// has arrived: after every read, the filled part is exactly the bytes sent
/// so far, never more. Then end of stream adds nothing, and the buffer past
/// the filled part still holds what it held before (no read wrote there,
/// nor zeroed it).
async fn short_reads<R, W>(reader: R, mut writer: W, what: &str) -> io::Result<()>
where
    R: ReadUninit + futures_io::AsyncRead + Unpin,
    W: futures_io::AsyncWrite + Unpin,
{
    const SIZES: [usize; 15] = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987];
    let total: usize = SIZES.iter().sum();
    let sent = pattern(7, total);
    let mut io = Io::from_socket(reader);
    // Offered to hyper as uninitialized memory (as hyper's own buffers
    // are): the zeroing path of `Io::new` would overwrite it.
    let mut storage = [MaybeUninit::new(BLANK); 4096];
    let mut buf = ReadBuf::uninit(&mut storage);
    let mut written = 0;
    for size in SIZES {
        writer.write_all(&sent[written..written + size]).await?;
        written += size;
        // Each read gets at least a byte, so `size` reads are enough.
        for _ in 0..size {
            if buf.filled().len() == written {
                break;
            }
            let before = buf.filled().len();
            poll_fn(|cx| hyper::rt::Read::poll_read(Pin::new(&mut io), cx, buf.unfilled())).await?;
            let filled = buf.filled();
            assert!(filled.len() > before, "{what}: a read got nothing");
            assert!(
                filled.len() <= written,
                "{what}: {} bytes filled, {written} sent",
                filled.len()
            );
            assert_bytes_eq(filled, &sent[..filled.len()], what);
        }
        assert_eq!(buf.filled().len(), written, "{what}: chunk of {size}");
    }

    writer.close().await?;
    drop(writer);
    poll_fn(|cx| hyper::rt::Read::poll_read(Pin::new(&mut io), cx, buf.unfilled())).await?;
    assert_eq!(buf.filled().len(), total, "{what}: end of stream");
    // `buf` is done with, and `storage` is ours again.
    // SAFETY: every element was made with `MaybeUninit::new`, and reads
    // only write bytes into it: all of it is initialized.
    let storage: Vec<u8> = storage.iter().map(|b| unsafe { b.assume_init() }).collect();
    assert_bytes_eq(&storage[..total], &sent, what);
    assert!(
        storage[total..].iter().all(|&b| b == BLANK),
        "{what}: a read wrote past what it reported"
    );
    Ok(())
}

#[test]
fn a_short_read_reports_exactly_the_bytes_that_arrived() {
    run_io(1, "uninit-short", LIMIT, || async {
        let (client, server) = pair().await?;
        short_reads(server, client, "TcpStream").await?;

        let (client, server) = pair().await?;
        let (read, _write) = server.into_split();
        short_reads(read, client, "tcp::OwnedReadHalf").await?;

        let (client, server) = UnixStream::pair()?;
        short_reads(server, client, "UnixStream").await?;

        let (client, server) = UnixStream::pair()?;
        short_reads(&server, client, "&UnixStream").await?;

        let (client, server) = UnixStream::pair()?;
        let (read, _write) = server.into_split();
        short_reads(read, client, "unix::OwnedReadHalf").await?;
        Ok(())
    });
}
