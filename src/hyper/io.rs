//! [`Io`]: hyper's `Read`/`Write` for a futures-io stream, and the other
//! way round.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// The least and the most a single read offers the stream.
///
/// futures-io reads into initialized memory, so the part of hyper's buffer
/// that a read offers is zeroed first. Offering all of it would zero
/// hyper's whole spare capacity (8 KiB for a small request, hundreds of
/// KiB during a large upload) on every read, for a request of a hundred
/// bytes: that memset was the largest single cost of a hello-world
/// request. So a read offers what the last reads suggest: a read that
/// fills the offer quadruples the next one (up to `MAX_READ`); one that
/// does not shrinks it to twice what it got (down to `MIN_READ`). A full
/// read does not lose data, it only means one more call for the rest.
const MIN_READ: usize = 1024;
const MAX_READ: usize = 64 * 1024;

pin_project! {
    /// A gopark stream (any [`futures_io::AsyncRead`] +
    /// [`futures_io::AsyncWrite`], such as
    /// [`TcpStream`](crate::net::TcpStream)) seen through hyper's
    /// [`Read`](hyper::rt::Read) and [`Write`](hyper::rt::Write): hand it to
    /// hyper's `serve_connection` or `handshake`. hyper-util's `TokioIo`,
    /// for gopark.
    ///
    /// It also works the other way round: wrapped around one of hyper's
    /// streams (an upgraded connection, [`hyper::upgrade::Upgraded`]), it
    /// implements futures-io's traits.
    ///
    /// ```
    /// use gopark::hyper::Io;
    /// use gopark::net::{TcpListener, TcpStream};
    ///
    /// gopark::runtime::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = TcpStream::connect(listener.local_addr()?).await?;
    ///     let io = Io::new(stream);
    ///     // Now `io` is what hyper's builders take.
    ///     assert!(hyper::rt::Write::is_write_vectored(&io));
    ///     let _stream: TcpStream = io.into_inner();
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    #[derive(Debug)]
    pub struct Io<T> {
        #[pin]
        inner: T,
        write_vectored: bool,
        // How many bytes the next read offers; see `MIN_READ`.
        read_hint: usize,
    }
}

impl<T> Io<T> {
    /// Wraps `inner`.
    ///
    /// hyper is told that `inner` writes several buffers in one call (the
    /// head and the body of a response go out in one `sendmsg`), which is
    /// true of gopark's sockets. For a stream whose
    /// `poll_write_vectored` only writes the first buffer (futures-io's
    /// default), say otherwise with
    /// [`set_write_vectored(false)`](Io::set_write_vectored): hyper then
    /// copies the body behind the head instead of making a call per buffer.
    pub fn new(inner: T) -> Io<T> {
        Io {
            inner,
            write_vectored: true,
            read_hint: MIN_READ,
        }
    }

    /// Sets what [`is_write_vectored`](hyper::rt::Write::is_write_vectored)
    /// tells hyper; see [`new`](Io::new).
    pub fn set_write_vectored(&mut self, on: bool) {
        self.write_vectored = on;
    }

    /// The wrapped stream.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> hyper::rt::Read for Io<T>
where
    T: futures_io::AsyncRead,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let len = buf.remaining().min(*this.read_hint);
        let unfilled = buf.initialize_unfilled_to(len);
        let n = match futures_io::AsyncRead::poll_read(this.inner, cx, unfilled) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        *this.read_hint = if n >= len {
            (len * 4).clamp(MIN_READ, MAX_READ)
        } else {
            (n * 2).clamp(MIN_READ, MAX_READ)
        };
        // A reader that claims more than it was given breaks its contract;
        // refuse it rather than let `advance` run past the initialized part.
        if n > len {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "poll_read reported more bytes than the buffer holds",
            )));
        }
        // SAFETY: `initialize_unfilled_to(len)` initialized the first `len`
        // bytes of the unfilled part, and `n <= len`.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T> hyper::rt::Write for Io<T>
where
    T: futures_io::AsyncWrite,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(self.project().inner, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write_vectored(self.project().inner, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.write_vectored
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(self.project().inner, cx)
    }

    /// Shuts the write half down (futures-io's `poll_close`): the peer
    /// reads end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(self.project().inner, cx)
    }
}

impl<T> futures_io::AsyncRead for Io<T>
where
    T: hyper::rt::Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = hyper::rt::ReadBuf::new(buf);
        match hyper::rt::Read::poll_read(self.project().inner, cx, buf.unfilled()) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> futures_io::AsyncWrite for Io<T>
where
    T: hyper::rt::Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(self.project().inner, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(self.project().inner, cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(self.project().inner, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(self.project().inner, cx)
    }
}
