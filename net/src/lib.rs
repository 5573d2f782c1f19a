//! gopark's sockets: [`TcpListener`], [`TcpStream`] and [`UdpSocket`], and
//! for Unix domain sockets [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`] (module [`unix`]).
//!
//! Every socket is created non-blocking and registered once with the
//! runtime's netpoller through a public [`PollDesc`](gopark_runtime::PollDesc).
//! An operation tries its syscall first; only if the kernel answers
//! `EAGAIN` does the task park, until the netpoll thread sees the next
//! readiness edge. Methods take `&self`, so one task can read while another
//! writes the same connection (share it with an `Arc`, as in Go).
//!
//! ```
//! use gopark_net::{TcpListener, TcpStream};
//!
//! gopark_runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let server = gopark_runtime::spawn(async move {
//!         let (stream, _) = listener.accept().await?;
//!         let mut buf = [0u8; 64];
//!         let n = stream.read(&mut buf).await?;
//!         stream.write_all(&buf[..n]).await
//!     });
//!     let client = TcpStream::connect(addr).await?;
//!     client.write_all(b"ping").await?;
//!     let mut reply = [0u8; 4];
//!     client.read_exact(&mut reply).await?;
//!     assert_eq!(&reply, b"ping");
//!     server.await?
//! })
//! .unwrap();
//! ```
//!
//! # Names
//!
//! Host names are resolved off the workers: [`lookup_host`] and the
//! asynchronous [`TcpStream::connect`], [`UdpSocket::connect`] and
//! [`UdpSocket::send_to`] hand a name (`"localhost:80"`, `("example.com",
//! 443)`) to the system resolver on the blocking pool, so a slow DNS server
//! holds up only the task that asked. IP literals and [`std::net::SocketAddr`]s
//! are used inline, with no thread hop. The synchronous binds
//! ([`TcpListener::bind`], [`UdpSocket::bind`]) resolve a name on the
//! calling thread, as std's do. Addresses are given through gopark's own
//! [`ToSocketAddrs`], implemented for the same types as std's.
//!
//! # tokio's I/O traits
//!
//! The streams implement the futures-io traits always. With the feature
//! `tokio-io`, [`TcpStream`], [`UnixStream`] and their owned halves also
//! implement `tokio::io::AsyncRead` and `AsyncWrite`, with tokio as a
//! trait-only dependency (no default features: no runtime, reactor or
//! clock), so crates written against tokio's traits (tokio-util's codecs,
//! tokio-rustls, tokio-postgres) run on gopark's netpoller. Shutting down
//! through `poll_shutdown` shuts down the write direction.
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

mod addr;
mod backoff;
mod split;
mod stream;
mod sys;
pub mod tcp;
#[cfg(feature = "tokio-io")]
mod tokio_io;
mod udp;
pub mod unix;

pub use addr::{lookup_host, ToSocketAddrs};
pub use backoff::{AcceptBackoff, AcceptError};
pub use std::net::Shutdown;
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io;
use std::net::SocketAddr;

/// Tries `f` on each address in turn; returns the first success or the
/// last error.
pub(crate) fn each_addr<T>(
    addrs: &[SocketAddr],
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addrs {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}
