use std::fmt;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gopark_runtime::{Direction, PollDesc};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::listener::sock_addr;
use super::split::{split_owned, OwnedReadHalf, OwnedWriteHalf};
use crate::stream::{impl_async_io, StreamSocket};
use crate::ToSocketAddrs;

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
    io: StreamSocket,
}

impl TcpStream {
    pub(crate) fn from_poll_desc(pd: PollDesc) -> TcpStream {
        TcpStream::with_pd(pd)
    }

    fn with_pd(pd: PollDesc) -> TcpStream {
        TcpStream {
            io: StreamSocket::new_tcp(pd),
        }
    }

    /// Opens a connection to `addr`, trying each of its addresses in turn
    /// and returning the last error if none accepts. A closed port fails
    /// with `ConnectionRefused`.
    ///
    /// A host name (`"localhost:8080"`, `("example.com", 443)`) is
    /// resolved on the blocking pool, so a slow resolver holds up only this
    /// task; an IP literal or a [`SocketAddr`] is used as is, with no
    /// thread hop (see [`lookup_host`](crate::lookup_host)).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = crate::addr::resolve(addr).await?;
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
        self.io.read(buf).await
    }

    /// Polls a read; see [`read`](TcpStream::read).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }

    /// Polls a read into memory that may be uninitialized: the spare
    /// capacity of a `Vec`, or the unfilled part of hyper's or tokio's read
    /// buffer, is received into without being zeroed first.
    ///
    /// It reads as [`poll_read`](TcpStream::poll_read) does (`0` at end of
    /// stream or for an empty `buf`). On `Poll::Ready(Ok(n))` the kernel has
    /// written the first `n` bytes of `buf`, and `n <= buf.len()`: unsafe
    /// code may rely on that to treat those bytes as initialized. The rest
    /// of `buf` is left as it was.
    ///
    /// ```
    /// use std::future::poll_fn;
    ///
    /// use gopark_net::{TcpListener, TcpStream};
    ///
    /// gopark_runtime::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     client.write_all(b"hello").await?;
    ///
    ///     let mut buf: Vec<u8> = Vec::with_capacity(4096);
    ///     while buf.len() < 5 {
    ///         let n = poll_fn(|cx| server.poll_read_uninit(cx, buf.spare_capacity_mut())).await?;
    ///         assert!(n > 0, "the stream ended early");
    ///         // SAFETY: the read wrote the first `n` bytes of the spare
    ///         // capacity.
    ///         unsafe { buf.set_len(buf.len() + n) };
    ///     }
    ///     assert_eq!(buf, b"hello");
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read_uninit(cx, buf)
    }

    /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends
    /// first.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        self.io.read_exact(buf).await
    }

    /// Reads without consuming: the same bytes are returned by the next read.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.peek(buf).await
    }

    /// Writes some of `buf`; returns how many bytes were written.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write(buf).await
    }

    /// Polls a write; see [`write`](TcpStream::write).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.io.write_all(buf).await
    }

    /// Writes from several buffers with one `sendmsg` (gather write);
    /// returns how many bytes were written.
    pub async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io.write_vectored(bufs).await
    }

    /// Polls a vectored write; see [`write_vectored`](TcpStream::write_vectored).
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write_vectored(cx, bufs)
    }

    /// Writes every byte of every buffer, with as few `sendmsg` calls as
    /// the kernel allows.
    pub async fn write_all_vectored(&self, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        self.io.write_all_vectored(bufs).await
    }

    /// Shuts down the read half, the write half, or both (like `std`). The
    /// peer reads end of stream after `Shutdown::Write`. Shutting down a
    /// half twice is not an error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how)
    }

    /// Splits the stream into an owned read half and an owned write half,
    /// for two tasks (tokio's `into_split`). Dropping the write half shuts
    /// down the write direction; see [`OwnedWriteHalf`]. The halves can be
    /// put back together with [`OwnedReadHalf::reunite`].
    ///
    /// Splitting is optional: every method takes `&self`, so sharing one
    /// stream through an `Arc` (the Go way) works as well.
    ///
    /// ```
    /// # use gopark_net::{TcpListener, TcpStream};
    /// gopark_runtime::block_on(async {
    /// #   let listener = TcpListener::bind("127.0.0.1:0")?;
    /// #   let addr = listener.local_addr()?;
    /// #   let echo = gopark_runtime::spawn(async move {
    /// #       let (s, _) = listener.accept().await?;
    /// #       let mut buf = [0u8; 64];
    /// #       loop {
    /// #           let n = s.read(&mut buf).await?;
    /// #           if n == 0 { return Ok::<_, std::io::Error>(()); }
    /// #           s.write_all(&buf[..n]).await?;
    /// #       }
    /// #   });
    ///     let stream = TcpStream::connect(addr).await?;
    ///     let (read, write) = stream.into_split();
    ///     let writer = gopark_runtime::spawn(async move {
    ///         write.write_all(b"hello").await
    ///         // `write` is dropped here: the echo server reads end of stream.
    ///     });
    ///     let mut reply = Vec::new();
    ///     let mut buf = [0u8; 64];
    ///     loop {
    ///         match read.read(&mut buf).await? {
    ///             0 => break,
    ///             n => reply.extend_from_slice(&buf[..n]),
    ///         }
    ///     }
    ///     assert_eq!(reply, b"hello");
    ///     writer.await??;
    /// #   echo.await??;
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }

    /// Sets `TCP_NODELAY` (on by default).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        SockRef::from(self.io.poll_desc().fd()).set_tcp_nodelay(on)
    }

    /// Returns `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        SockRef::from(self.io.poll_desc().fd()).tcp_nodelay()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes closing the stream
    /// send a reset instead of a FIN.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self.io.poll_desc().fd()).set_linger(linger)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(SockRef::from(self.io.poll_desc().fd()).peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(SockRef::from(self.io.poll_desc().fd()).local_addr()?)
    }

    /// Returns and clears the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.take_error()
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
        self.io.set_read_deadline(deadline)
    }

    /// Sets the write deadline; see [`set_read_deadline`](TcpStream::set_read_deadline).
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.io.set_write_deadline(deadline)
    }

    /// Sets both deadlines.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.set_read_deadline(deadline)?;
        self.set_write_deadline(deadline)
    }

    /// The socket under the stream, for the trait implementations.
    #[cfg(feature = "tokio-io")]
    pub(crate) fn socket(&self) -> &StreamSocket {
        &self.io
    }

    /// The underlying [`PollDesc`].
    pub fn poll_desc(&self) -> &PollDesc {
        self.io.poll_desc()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.poll_desc().as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.poll_desc().as_fd()
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
        d.field("fd", &self.io.poll_desc().as_raw_fd()).finish()
    }
}

impl_async_io!(TcpStream, TcpStream);
impl_async_io!(&TcpStream, TcpStream);
