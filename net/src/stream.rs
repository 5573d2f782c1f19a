//! What every connected byte-stream socket does the same way, TCP or Unix:
//! reads and writes through the runtime's `poll_stream_io`, the loops of
//! `read_exact` and `write_all`, the memory of a reset, half-close and
//! deadlines. [`TcpStream`](crate::TcpStream) and
//! [`UnixStream`](crate::UnixStream) wrap a [`StreamSocket`] and add what
//! belongs to their family (addresses, options, credentials).

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use gopark_runtime::{Direction, PollDesc};
use socket2::SockRef;

use crate::sys;

/// A connected stream socket registered with the netpoller.
pub(crate) struct StreamSocket {
    pd: PollDesc,
    /// Set once any call saw `ECONNRESET`. The kernel reports a reset to
    /// the first call only; a read after a write that took it would see
    /// end of stream, so the read half remembers it here.
    reset: AtomicBool,
    /// A TCP socket, whose state tells a reset from an orderly close.
    tcp: bool,
    /// Set by `shutdown(Write | Both)`: from then on a connection closed in
    /// order can reach `TCP_CLOSE` too, so the state no longer tells a
    /// reset (see `check_reset`).
    shut_write: AtomicBool,
}

impl StreamSocket {
    /// Wraps a Unix stream socket.
    pub(crate) fn new(pd: PollDesc) -> StreamSocket {
        StreamSocket {
            pd,
            reset: AtomicBool::new(false),
            tcp: false,
            shut_write: AtomicBool::new(false),
        }
    }

    /// Wraps a TCP socket.
    pub(crate) fn new_tcp(pd: PollDesc) -> StreamSocket {
        StreamSocket {
            tcp: true,
            ..StreamSocket::new(pd)
        }
    }

    pub(crate) fn poll_desc(&self) -> &PollDesc {
        &self.pd
    }

    /// Records a reset seen by any operation, and turns the end of stream
    /// a read reports after it into the reset it really is.
    ///
    /// The flag alone is not enough when a read and a write run at once on
    /// two workers: the write may take the reset from the kernel while the
    /// read, a moment later but before the write stored the flag, gets end
    /// of stream. So on TCP an end of stream is checked against the
    /// socket's state (one `getsockopt` per end-of-stream read): a reset
    /// leaves it `TCP_CLOSE`, while a peer's FIN leaves it `CLOSE_WAIT` —
    /// unless we shut down our side as well, after which an orderly close
    /// may reach `TCP_CLOSE` too and the state tells nothing.
    fn check_reset(&self, res: Poll<io::Result<usize>>, reading: bool) -> Poll<io::Result<usize>> {
        match res {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                // Relaxed: the flag guards no other memory; the syscalls on
                // the same descriptor order what the kernel reports.
                self.reset.store(true, Ordering::Relaxed);
                Poll::Ready(Err(e))
            }
            Poll::Ready(Ok(0)) if reading && self.was_reset() => {
                self.reset.store(true, Ordering::Relaxed);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                )))
            }
            res => res,
        }
    }

    /// Whether the connection that just reported end of stream was reset.
    fn was_reset(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
            || (self.tcp
                && !self.shut_write.load(Ordering::Relaxed)
                && sys::tcp_state(self.pd.fd()).is_ok_and(|s| s == sys::TCP_CLOSE))
    }

    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
        let res = self
            .pd
            .poll_stream_io(cx, Direction::Read, len, |fd| sys::recv(fd, buf, 0));
        self.check_reset(res, true)
    }

    /// [`poll_read`](StreamSocket::poll_read) into memory that may be
    /// uninitialized: hyper's and tokio's read buffers hand out such memory,
    /// and zeroing it first would cost a pass over every buffer. On
    /// `Ready(Ok(n))` the kernel wrote the first `n` bytes, `n <= buf.len()`.
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
        let res = self
            .pd
            .poll_stream_io(cx, Direction::Read, len, |fd| sys::recv_uninit(fd, buf, 0));
        self.check_reset(res, true)
    }

    pub(crate) async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf).await? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ended before the buffer was filled",
                    ))
                }
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.pd
            .io(Direction::Read, |fd| sys::recv(fd, buf, libc::MSG_PEEK))
            .await
    }

    pub(crate) async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let res = self
            .pd
            .poll_stream_io(cx, Direction::Write, buf.len(), |fd| sys::send(fd, buf));
        self.check_reset(res, false)
    }

    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    pub(crate) async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write_vectored(cx, bufs)).await
    }

    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // The kernel takes at most IOV_MAX slices per call; a transfer is
        // "short" only against what was offered.
        let bufs = &bufs[..bufs.len().min(sys::IOV_MAX)];
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        let res = self
            .pd
            .poll_stream_io(cx, Direction::Write, len, |fd| sys::send_vectored(fd, bufs));
        self.check_reset(res, false)
    }

    pub(crate) async fn write_all_vectored(&self, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            match self.write_vectored(bufs).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => IoSlice::advance_slices(&mut bufs, n),
            }
        }
        Ok(())
    }

    /// Shuts down one or both directions; a direction already shut down
    /// (or a peer already gone: `ENOTCONN`) is not an error.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            self.shut_write.store(true, Ordering::Relaxed);
        }
        sys::shutdown(self.pd.fd(), how)
    }

    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        SockRef::from(self.pd.fd()).take_error()
    }

    pub(crate) fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.pd.set_read_deadline(deadline)
    }

    pub(crate) fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.pd.set_write_deadline(deadline)
    }
}

/// Implements `futures_io::AsyncRead`/`AsyncWrite` for `$ty` (a stream
/// type or a reference to one) through the inherent `poll_*` methods of
/// `$stream`. `poll_close` shuts down the write direction.
macro_rules! impl_async_io {
    ($ty:ty, $stream:ty) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                <$stream>::poll_read(&self, cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                <$stream>::poll_write(&self, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                <$stream>::poll_write_vectored(&self, cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // Writes go straight to the kernel: nothing is buffered here.
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(<$stream>::shutdown(&self, std::net::Shutdown::Write))
            }
        }
    };
}

pub(crate) use impl_async_io;
