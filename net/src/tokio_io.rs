//! tokio's I/O traits, without tokio's runtime (feature `tokio-io`).
//!
//! Much of the Rust ecosystem is written against `tokio::io::AsyncRead`
//! and `AsyncWrite` rather than the futures-io traits: tokio-rustls,
//! tokio-util's codecs, tokio-postgres. The traits themselves live in
//! tokio with no feature turned on, and nothing in them needs tokio's
//! reactor or clock; so with `default-features = false` tokio is a crate of
//! traits here, and gopark's netpoller stays the only reactor in the
//! process.
//!
//! [`TcpStream`], [`UnixStream`] (and references to them) and the owned
//! halves of both implement the traits through the same `poll_*` path as
//! the futures-io ones: a read tries `recv` first and parks on the
//! socket's `PollDesc` only on `EAGAIN`.
//!
//! * `poll_read` receives straight into the unfilled part of tokio's
//!   `ReadBuf`, initialized or not, so a codec's fresh buffer is not zeroed
//!   before every read.
//! * `poll_write_vectored` is one `sendmsg`, and `is_write_vectored` says
//!   so.
//! * `poll_flush` has nothing to do: writes go straight to the kernel.
//! * `poll_shutdown` shuts down the write direction (`shutdown(2)` with
//!   `SHUT_WR`), as tokio's `TcpStream` does: the peer reads end of stream,
//!   and this side can go on reading.
//!
//! ```
//! use gopark_net::{TcpListener, TcpStream};
//! use tokio::io::{AsyncRead, AsyncWrite};
//!
//! fn takes_tokio_io(_: impl AsyncRead + AsyncWrite + Unpin) {}
//!
//! gopark_runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let stream = TcpStream::connect(listener.local_addr()?).await?;
//!     takes_tokio_io(stream);
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stream::StreamSocket;
use crate::{tcp, unix, TcpStream, UnixStream};

fn poll_read(
    sock: &StreamSocket,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the slice goes only to `recv`, which writes bytes into it and
    // never de-initializes any.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = ready!(sock.poll_read_uninit(cx, unfilled))?;
    // SAFETY: `recv` returned `n`: the kernel wrote the first `n` bytes of
    // the unfilled part.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// `AsyncRead` for each `$ty`, whose socket `$this` gives as `$sock`.
macro_rules! tokio_read {
    ($($ty:ty, $this:ident => $sock:expr;)*) => {$(
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                poll_read($sock, cx, buf)
            }
        }
    )*};
}

/// `AsyncWrite` for each `$ty`, whose socket `$this` gives as `$sock`.
macro_rules! tokio_write {
    ($($ty:ty, $this:ident => $sock:expr;)*) => {$(
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $sock.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $sock.poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes go straight to the kernel: nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $this = &*self;
                Poll::Ready($sock.shutdown(Shutdown::Write))
            }
        }
    )*};
}

tokio_read! {
    TcpStream, s => s.socket();
    &TcpStream, s => s.socket();
    tcp::OwnedReadHalf, s => s.as_ref().socket();
    UnixStream, s => s.socket();
    &UnixStream, s => s.socket();
    unix::OwnedReadHalf, s => s.as_ref().socket();
}

tokio_write! {
    TcpStream, s => s.socket();
    &TcpStream, s => s.socket();
    tcp::OwnedWriteHalf, s => s.as_ref().socket();
    UnixStream, s => s.socket();
    &UnixStream, s => s.socket();
    unix::OwnedWriteHalf, s => s.as_ref().socket();
}
