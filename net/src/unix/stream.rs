use std::fmt;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gopark_runtime::PollDesc;
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::addr::{self, Op};
use super::split::{split_owned, OwnedReadHalf, OwnedWriteHalf};
use super::UCred;
use crate::stream::{impl_async_io, StreamSocket};
use crate::sys;

/// A Unix domain stream socket: a connection to another process (or task)
/// on the same machine.
///
/// It behaves as [`TcpStream`](crate::TcpStream) does: methods take
/// `&self`, so one task may read while another writes (share it with an
/// `Arc`, or split it with [`into_split`](UnixStream::into_split));
/// reads and writes park on the socket's [`PollDesc`] only on `EAGAIN`.
///
/// * End of stream is `Ok(0)`. A peer that closes while data we sent is
///   still unread makes our next read fail with `ConnectionReset`; writing
///   to a peer that has closed fails with `BrokenPipe` (never `SIGPIPE`).
/// * Deadlines follow Go: once a read (write) deadline passes, the read
///   (write) waiting and every later one fail with `TimedOut`, until a new
///   deadline is set.
///
/// ```
/// use gopark_net::UnixStream;
///
/// gopark_runtime::block_on(async {
///     let (a, b) = UnixStream::pair()?;
///     a.write_all(b"ping").await?;
///     let mut buf = [0u8; 4];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct UnixStream {
    io: StreamSocket,
}

/// First and longest pause between `connect` attempts while the
/// listener's accept queue is full.
const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(64));

impl UnixStream {
    pub(crate) fn from_poll_desc(pd: PollDesc) -> UnixStream {
        UnixStream {
            io: StreamSocket::new(pd),
        }
    }

    /// Connects to the socket bound at `path`. A path that starts with a
    /// NUL byte names an abstract address (Linux); see also
    /// [`connect_addr`](UnixStream::connect_addr).
    ///
    /// Errors name the path and say what went wrong: no file at `path`
    /// (never created, or removed) is `NotFound`; a file with no listener
    /// behind it (a socket file left by a listener that has gone) is
    /// `ConnectionRefused`.
    ///
    /// While the listener's accept queue is full, Linux refuses a
    /// non-blocking connect with `EAGAIN` and gives the connecting socket no
    /// readiness event for when room appears. This waits and retries
    /// (backing off from 1 ms to 64 ms), as a blocking connect would wait;
    /// wrap it in [`timeout`](gopark_runtime::time::timeout) to bound it.
    ///
    /// ```
    /// use gopark_net::{UnixListener, UnixStream};
    ///
    /// gopark_runtime::block_on(async {
    ///     let path = std::env::temp_dir().join(format!("gopark-doc-{}.sock", std::process::id()));
    ///     # let _ = std::fs::remove_file(&path); // left by an interrupted run
    ///     let listener = UnixListener::bind(&path)?;
    ///     let client = UnixStream::connect(&path).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     client.write_all(b"hi").await?;
    ///     let mut buf = [0u8; 2];
    ///     server.read_exact(&mut buf).await?;
    ///     assert_eq!(&buf, b"hi");
    ///     // The socket file stays until removed (as with std).
    ///     std::fs::remove_file(&path)?;
    ///     let err = UnixStream::connect(&path).await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = addr::from_path(path.as_ref())?;
        UnixStream::connect_sock_addr(&addr).await
    }

    /// Connects to `addr`, which may be a pathname or (Linux) an abstract
    /// address made with
    /// [`SocketAddrExt::from_abstract_name`](std::os::linux::net::SocketAddrExt::from_abstract_name),
    /// like `std`'s `UnixStream::connect_addr`.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// use gopark_net::{UnixListener, UnixStream};
    ///
    /// gopark_runtime::block_on(async {
    ///     let name = format!("gopark-doc-{}", std::process::id());
    ///     let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    ///     let listener = UnixListener::bind_addr(&addr)?;
    ///     let client = UnixStream::connect_addr(&addr).await?;
    ///     let (_server, _) = listener.accept().await?;
    ///     assert_eq!(client.peer_addr()?.as_abstract_name(), Some(name.as_bytes()));
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let addr = addr::from_std(addr)?;
        UnixStream::connect_sock_addr(&addr).await
    }

    async fn connect_sock_addr(addr: &SockAddr) -> io::Result<UnixStream> {
        let ty = Type::STREAM.nonblocking().cloexec();
        let socket = Socket::new(Domain::UNIX, ty, None)?;
        let mut pause = CONNECT_BACKOFF.0;
        loop {
            // A Unix connect completes at once or fails: it never answers
            // EINPROGRESS, so there is no readiness to wait for.
            match socket.connect(addr) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    gopark_runtime::time::sleep(pause).await;
                    pause = (pause * 2).min(CONNECT_BACKOFF.1);
                }
                Err(e) => return Err(addr::error(Op::Connect, addr, e)),
            }
        }
        let pd = PollDesc::new_nonblocking(OwnedFd::from(socket))?;
        Ok(UnixStream::from_poll_desc(pd))
    }

    /// A connected pair of streams (`socketpair(2)`), both registered with
    /// the current runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = super::socket_pair(Type::STREAM)?;
        Ok((UnixStream::from_poll_desc(a), UnixStream::from_poll_desc(b)))
    }

    /// Wraps a stream made by `std`, switching it to non-blocking mode.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream::from_poll_desc(PollDesc::new(OwnedFd::from(
            stream,
        ))?))
    }

    /// Reads into `buf`; returns how many bytes were read, `0` at end of
    /// stream (or for an empty `buf`).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read(buf).await
    }

    /// Polls a read; see [`read`](UnixStream::read).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }

    /// Polls a read into memory that may be uninitialized: the spare
    /// capacity of a `Vec`, or the unfilled part of hyper's or tokio's read
    /// buffer, is received into without being zeroed first.
    ///
    /// It reads as [`poll_read`](UnixStream::poll_read) does (`0` at end of
    /// stream or for an empty `buf`). On `Poll::Ready(Ok(n))` the kernel has
    /// written the first `n` bytes of `buf`, and `n <= buf.len()`: unsafe
    /// code may rely on that to treat those bytes as initialized. The rest
    /// of `buf` is left as it was.
    ///
    /// ```
    /// use std::future::poll_fn;
    ///
    /// use gopark_net::UnixStream;
    ///
    /// gopark_runtime::block_on(async {
    ///     let (client, server) = UnixStream::pair()?;
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

    /// Polls a write; see [`write`](UnixStream::write).
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

    /// Polls a vectored write; see [`write_vectored`](UnixStream::write_vectored).
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
    /// use gopark_net::UnixStream;
    ///
    /// gopark_runtime::block_on(async {
    ///     let (a, b) = UnixStream::pair()?;
    ///     let (read, write) = a.into_split();
    ///     let writer = gopark_runtime::spawn(async move { write.write_all(b"hello").await });
    ///     let mut buf = [0u8; 5];
    ///     b.read_exact(&mut buf).await?;
    ///     b.write_all(&buf).await?;
    ///     read.read_exact(&mut buf).await?;
    ///     assert_eq!(&buf, b"hello");
    ///     writer.await??;
    ///     // The write half is gone, so the peer sees end of stream.
    ///     assert_eq!(b.read(&mut buf).await?, 0);
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }

    /// The local address: unnamed unless the socket was bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::to_std(&SockRef::from(self.io.poll_desc().fd()).local_addr()?)
    }

    /// The peer's address: the path or abstract name of the listener for a
    /// client, unnamed for most accepted streams and both ends of a pair.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        addr::to_std(&SockRef::from(self.io.poll_desc().fd()).peer_addr()?)
    }

    /// The credentials of the peer process (`SO_PEERCRED`): its pid, uid
    /// and gid as they were when it connected (or created the pair).
    ///
    /// ```
    /// use gopark_net::UnixStream;
    ///
    /// gopark_runtime::block_on(async {
    ///     let (a, _b) = UnixStream::pair()?;
    ///     let cred = a.peer_cred()?;
    ///     assert_eq!(cred.pid(), Some(std::process::id() as i32));
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn peer_cred(&self) -> io::Result<UCred> {
        sys::peer_cred(self.io.poll_desc().fd()).map(UCred::from_raw)
    }

    /// Returns and clears the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.take_error()
    }

    /// Sets the read deadline (Go's `SetReadDeadline`): a read waiting when
    /// it passes, and every read after, fails with `TimedOut`; a deadline in
    /// the past fails them at once; `None` clears it. It may be set from
    /// another task while a read is parked.
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.io.set_read_deadline(deadline)
    }

    /// Sets the write deadline; see [`set_read_deadline`](UnixStream::set_read_deadline).
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

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.poll_desc().as_raw_fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.poll_desc().as_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixStream");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        if let Ok(addr) = self.peer_addr() {
            d.field("peer", &addr);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}

impl_async_io!(UnixStream, UnixStream);
impl_async_io!(&UnixStream, UnixStream);
