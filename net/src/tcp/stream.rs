use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gopark_runtime::{Direction, PollDesc};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::listener::sock_addr;
use crate::sys;

/// A TCP connection.
///
/// Methods take `&self`: one task may read while another writes (share the
/// stream with an `Arc`). Reads and writes try the syscall first and park
/// on the socket's [`PollDesc`] only when the kernel answers `EAGAIN`.
///
/// * `read` into an empty buffer returns `Ok(0)` at once; end of stream is
///   `Ok(0)`; a reset by the peer is `ConnectionReset`, never `Ok(0)`.
/// * Writes use `MSG_NOSIGNAL`: writing to a closed connection fails with
///   `BrokenPipe` (or `ConnectionReset`) and never raises `SIGPIPE`.
/// * Deadlines follow Go: once a read (write) deadline passes, the read
///   (write) waiting and every later one fail with `TimedOut`, until a new
///   deadline is set.
/// * `TCP_NODELAY` is on by default, as in Go.
pub struct TcpStream {
    pd: PollDesc,
    /// Set once any call saw `ECONNRESET`. The kernel reports a reset to
    /// the first call only; a read after a write that took it would see
    /// end of stream, so the read half remembers it here.
    reset: AtomicBool,
    /// Set once this side sent its FIN (`shutdown` of the write half): a
    /// graceful close then also ends in the kernel's `CLOSE` state.
    ///
    /// Both flags are read and written `Relaxed`: each is checked after a
    /// syscall on the same socket, and publishes nothing else.
    fin_sent: AtomicBool,
}

impl TcpStream {
    pub(crate) fn from_poll_desc(pd: PollDesc) -> TcpStream {
        TcpStream::with_pd(pd)
    }

    fn with_pd(pd: PollDesc) -> TcpStream {
        TcpStream {
            pd,
            reset: AtomicBool::new(false),
            fin_sent: AtomicBool::new(false),
        }
    }

    /// Records a reset seen by any operation, and turns the end of stream
    /// a read reports after it into the reset it really is.
    ///
    /// The flag alone leaves a window: a write in another task may have
    /// taken the reset from the kernel and not recorded it yet when the
    /// read sees end of stream. So an end of stream is checked once more
    /// against the connection's state: after a reset it is `CLOSE`, after
    /// the peer's FIN `CLOSE_WAIT` (unless this side sent its own FIN,
    /// after which a graceful close ends in `CLOSE` too).
    fn check_reset(&self, res: Poll<io::Result<usize>>, reading: bool) -> Poll<io::Result<usize>> {
        match res {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
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

    /// Whether the connection was reset, for a read that saw end of stream.
    fn was_reset(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
            || (!self.fin_sent.load(Ordering::Relaxed)
                && sys::tcp_closed(self.pd.fd()).unwrap_or(false))
    }

    /// Opens a connection to `addr`, trying each of its addresses in turn
    /// and returning the last error if none accepts. A closed port fails
    /// with `ConnectionRefused`.
    ///
    /// Resolving a host name (not an IP literal) calls the system resolver
    /// on the calling thread.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = crate::resolve(addr)?;
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect_one(*a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Like [`connect`](TcpStream::connect) for one address, giving up with
    /// `TimedOut` after `timeout`.
    pub async fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        gopark_runtime::time::timeout(timeout, TcpStream::connect_one(*addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let ty = Type::STREAM.nonblocking().cloexec();
        let socket = Socket::new(Domain::for_address(addr), ty, Some(Protocol::TCP))?;
        socket.set_tcp_nodelay(true)?;
        let res = socket.connect(&addr.into());
        let pd = PollDesc::new_nonblocking(OwnedFd::from(socket))?;
        match res {
            Ok(()) => return Ok(TcpStream::with_pd(pd)),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        // The write half starts "ready" so that writes try first; here we
        // need a real edge, so check the outcome and wait again while the
        // handshake is still in flight.
        loop {
            let ev = pd.ready(Direction::Write).await?;
            let sock = SockRef::from(pd.fd());
            if let Some(e) = sock.take_error()? {
                return Err(e);
            }
            match sock.peer_addr() {
                Ok(_) => return Ok(TcpStream::with_pd(pd)),
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => pd.clear_ready(ev),
                Err(e) => return Err(e),
            }
        }
    }

    /// Wraps a stream made by `std`, switching it to non-blocking mode.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream::with_pd(PollDesc::new(OwnedFd::from(stream))?))
    }

    /// Reads into `buf`; returns how many bytes were read, `0` at end of
    /// stream (or for an empty `buf`).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Polls a read; see [`read`](TcpStream::read).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
        let res = self
            .pd
            .poll_stream_io(cx, Direction::Read, len, |fd| sys::recv(fd, buf, 0));
        self.check_reset(res, true)
    }

    /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends
    /// first.
    pub async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
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

    /// Reads without consuming: the same bytes are returned by the next read.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.pd
            .io(Direction::Read, |fd| sys::recv(fd, buf, libc::MSG_PEEK))
            .await
    }

    /// Writes some of `buf`; returns how many bytes were written.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    /// Polls a write; see [`write`](TcpStream::write).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let res = self
            .pd
            .poll_stream_io(cx, Direction::Write, buf.len(), |fd| sys::send(fd, buf));
        self.check_reset(res, false)
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Writes from several buffers with one `sendmsg` (gather write);
    /// returns how many bytes were written.
    pub async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write_vectored(cx, bufs)).await
    }

    /// Polls a vectored write; see [`write_vectored`](TcpStream::write_vectored).
    pub fn poll_write_vectored(
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

    /// Writes every byte of every buffer, with as few `sendmsg` calls as
    /// the kernel allows.
    pub async fn write_all_vectored(&self, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            match self.write_vectored(bufs).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => IoSlice::advance_slices(&mut bufs, n),
            }
        }
        Ok(())
    }

    /// Shuts down the read half, the write half, or both (like `std`). The
    /// peer reads end of stream after `Shutdown::Write`. Shutting down a
    /// half twice is not an error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            self.fin_sent.store(true, Ordering::Relaxed);
        }
        match SockRef::from(self.pd.fd()).shutdown(how) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            res => res,
        }
    }

    /// Sets `TCP_NODELAY` (on by default).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        SockRef::from(self.pd.fd()).set_tcp_nodelay(on)
    }

    /// Returns `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        SockRef::from(self.pd.fd()).tcp_nodelay()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes closing the stream
    /// send a reset instead of a FIN.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self.pd.fd()).set_linger(linger)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(SockRef::from(self.pd.fd()).peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(SockRef::from(self.pd.fd()).local_addr()?)
    }

    /// Returns and clears the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        SockRef::from(self.pd.fd()).take_error()
    }

    /// Sets the read deadline (Go's `SetReadDeadline`): a read waiting when
    /// it passes, and every read after, fails with `TimedOut`; a deadline in
    /// the past fails them at once; `None` clears it. It may be set from
    /// another task while a read is parked.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// # use gopark_net::{TcpListener, TcpStream};
    /// # gopark_runtime::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// stream.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))?;
    /// let err = stream.read(&mut [0u8; 16]).await.unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.pd.set_read_deadline(deadline)
    }

    /// Sets the write deadline; see [`set_read_deadline`](TcpStream::set_read_deadline).
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.pd.set_write_deadline(deadline)
    }

    /// Sets both deadlines.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.set_read_deadline(deadline)?;
        self.set_write_deadline(deadline)
    }

    /// The underlying [`PollDesc`].
    pub fn poll_desc(&self) -> &PollDesc {
        &self.pd
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.pd.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pd.as_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        if let Ok(addr) = self.peer_addr() {
            d.field("peer", &addr);
        }
        d.field("fd", &self.pd.as_raw_fd()).finish()
    }
}

macro_rules! impl_async_io {
    ($ty:ty) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                TcpStream::poll_read(&self, cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                TcpStream::poll_write(&self, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                TcpStream::poll_write_vectored(&self, cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes go straight to the kernel: nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }
    };
}

impl_async_io!(TcpStream);
impl_async_io!(&TcpStream);
