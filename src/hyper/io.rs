//! [`Io`]: hyper's `Read`/`Write` for a futures-io stream, and the other
//! way round.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use gopark_net::{tcp, unix, TcpStream, UnixStream};
use pin_project_lite::pin_project;

/// The least and the most a single read through futures-io offers the
/// stream ([`Io::new`]; [`Io::from_socket`] offers all of hyper's buffer).
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

/// A socket's read into hyper's unfilled buffer; see [`Io::from_socket`].
type ReadUninitFn<T> =
    fn(Pin<&mut T>, &mut Context<'_>, &mut [MaybeUninit<u8>]) -> Poll<io::Result<usize>>;

pin_project! {
    /// A gopark stream (any [`futures_io::AsyncRead`] +
    /// [`futures_io::AsyncWrite`], such as
    /// [`TcpStream`](crate::net::TcpStream)) seen through hyper's
    /// [`Read`](hyper::rt::Read) and [`Write`](hyper::rt::Write): hand it to
    /// hyper's `serve_connection` or `handshake`. hyper-util's `TokioIo`,
    /// for gopark.
    ///
    /// Two constructors, which differ in how a read fills hyper's buffer:
    ///
    /// * [`Io::from_socket`], for gopark's own sockets ([`ReadUninit`]):
    ///   the kernel receives straight into hyper's uninitialized buffer, as
    ///   with hyper-util's `TokioIo` over tokio's `TcpStream`. What
    ///   [`serve`](super::serve()) uses over a `TcpListener` or a
    ///   `UnixListener` (see `serve::Listener::hyper_io`), and the
    ///   [`Client`](super::Client).
    /// * [`Io::new`], for any futures-io stream (a TLS stream, a stream of
    ///   your own): futures-io reads into initialized memory, so the part of
    ///   hyper's buffer a read offers is zeroed first.
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
    ///     let io = Io::from_socket(stream);
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
        // Set by `from_socket`: reads go straight into hyper's buffer.
        read_uninit: Option<ReadUninitFn<T>>,
    }
}

/// A stream that [`Io::from_socket`] reads from straight into hyper's
/// buffer, without zeroing it first: gopark's own sockets,
/// [`TcpStream`](crate::net::TcpStream) and
/// [`UnixStream`](crate::net::UnixStream), references to them, and their
/// owned read halves.
///
/// Reading into uninitialized memory is sound only if every byte a read
/// reports was written, which these sockets guarantee (the kernel's `recv`
/// writes them; see
/// [`TcpStream::poll_read_uninit`](crate::net::TcpStream::poll_read_uninit)).
/// So the trait is sealed; any other stream goes through [`Io::new`].
pub trait ReadUninit: sealed::Sealed {}

pub(crate) mod sealed {
    use std::io;
    use std::mem::MaybeUninit;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// The read behind [`ReadUninit`](super::ReadUninit).
    pub trait Sealed {
        /// Reads into `buf`, which may be uninitialized. On
        /// `Ready(Ok(n))` the first `n` bytes of `buf` have been written
        /// and `n <= buf.len()`; no byte of `buf` is ever de-initialized.
        fn poll_read_uninit(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [MaybeUninit<u8>],
        ) -> Poll<io::Result<usize>>;
    }
}

/// [`ReadUninit`] for each gopark socket type `$ty`.
macro_rules! read_uninit {
    ($($ty:ty),* $(,)?) => {$(
        impl sealed::Sealed for $ty {
            fn poll_read_uninit(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [MaybeUninit<u8>],
            ) -> Poll<io::Result<usize>> {
                (*self).poll_read_uninit(cx, buf)
            }
        }

        impl ReadUninit for $ty {}
    )*};
}

read_uninit!(
    TcpStream,
    &TcpStream,
    tcp::OwnedReadHalf,
    UnixStream,
    &UnixStream,
    unix::OwnedReadHalf,
);

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
    ///
    /// A read goes through [`futures_io::AsyncRead`], into memory that must
    /// be initialized, so `Io` zeroes the part of hyper's buffer it offers
    /// before each read. For gopark's own sockets,
    /// [`from_socket`](Io::from_socket) skips that.
    pub fn new(inner: T) -> Io<T> {
        Io {
            inner,
            write_vectored: true,
            read_hint: MIN_READ,
            read_uninit: None,
        }
    }

    /// Wraps a gopark socket ([`ReadUninit`]: a
    /// [`TcpStream`](crate::net::TcpStream), a
    /// [`UnixStream`](crate::net::UnixStream), ...), whose reads go
    /// straight into hyper's buffer: the kernel writes into its
    /// uninitialized part, which is not zeroed first. Otherwise as
    /// [`new`](Io::new).
    ///
    /// ```
    /// use gopark::hyper::Io;
    /// use gopark::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let io = Io::from_socket(a);
    /// assert!(hyper::rt::Write::is_write_vectored(&io));
    /// # Ok::<_, std::io::Error>(())
    /// ```
    pub fn from_socket(inner: T) -> Io<T>
    where
        T: ReadUninit,
    {
        Io {
            read_uninit: Some(<T as sealed::Sealed>::poll_read_uninit),
            ..Io::new(inner)
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
        if let Some(read) = *this.read_uninit {
            // SAFETY: the slice goes only to a `ReadUninit` socket's read,
            // which writes bytes into it and never de-initializes any.
            let unfilled = unsafe { buf.as_mut() };
            let len = unfilled.len();
            let n = ready!(read(this.inner, cx, unfilled))?;
            if n > len {
                return Poll::Ready(Err(overlong_read()));
            }
            // SAFETY: a `ReadUninit` read that returns `n` wrote the first
            // `n` bytes of the unfilled part, and `n <= len`.
            unsafe { buf.advance(n) };
            return Poll::Ready(Ok(()));
        }
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
            return Poll::Ready(Err(overlong_read()));
        }
        // SAFETY: `initialize_unfilled_to(len)` initialized the first `len`
        // bytes of the unfilled part, and `n <= len`.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

/// The error of a read that claims more bytes than it was offered.
fn overlong_read() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "poll_read reported more bytes than the buffer holds",
    )
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
