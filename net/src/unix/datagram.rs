use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};
use std::time::Instant;

use gopark_runtime::{Direction, PollDesc};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::addr::{self, Op};
use crate::sys;

/// A Unix domain datagram socket.
///
/// Datagrams keep their boundaries and, on one machine, are neither lost
/// nor reordered: a sender whose receiver's queue is full waits (parks)
/// until there is room, or until its write deadline passes. Linux tells an
/// *unconnected* sender about room only when the receiver takes one of
/// that sender's own datagrams; a socket sending to a receiver that many
/// others fill should [`connect`](UnixDatagram::connect) to it or set a
/// write deadline.
///
/// As with [`UnixListener`](crate::UnixListener), binding to a path
/// creates a socket file that stays until removed.
///
/// ```
/// use gopark_net::UnixDatagram;
///
/// gopark_runtime::block_on(async {
///     let dir = std::env::temp_dir();
///     let path = dir.join(format!("gopark-dgram-{}.sock", std::process::id()));
///     # let _ = std::fs::remove_file(&path); // left by an interrupted run
///     let server = UnixDatagram::bind(&path)?;
///     let client = UnixDatagram::unbound()?;
///     client.send_to(b"ping", &path).await?;
///     let mut buf = [0u8; 16];
///     let (n, from) = server.recv_from(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///     assert!(from.is_unnamed(), "an unbound sender has no address to reply to");
///     std::fs::remove_file(&path)?;
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct UnixDatagram {
    pd: PollDesc,
}

impl UnixDatagram {
    fn new_socket() -> io::Result<Socket> {
        Socket::new(Domain::UNIX, Type::DGRAM.nonblocking().cloexec(), None)
    }

    fn register(socket: Socket) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            pd: PollDesc::new_nonblocking(OwnedFd::from(socket))?,
        })
    }

    /// Creates a socket bound to `path` (a new socket file; `AddrInUse`,
    /// naming the path, if a file is there already). A path that starts
    /// with a NUL byte names an abstract address (Linux).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_sock_addr(&addr::from_path(path.as_ref())?)
    }

    /// Creates a socket bound to `addr`, a pathname or (Linux) an abstract
    /// address, like `std`'s `UnixDatagram::bind_addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_sock_addr(&addr::from_std(addr)?)
    }

    fn bind_sock_addr(addr: &SockAddr) -> io::Result<UnixDatagram> {
        let socket = UnixDatagram::new_socket()?;
        socket
            .bind(addr)
            .map_err(|e| addr::error(Op::Bind, addr, e))?;
        UnixDatagram::register(socket)
    }

    /// Creates a socket bound to no address. It can send, and receive
    /// replies from a socket it is connected to, but a receiver cannot
    /// answer its `send_to` by address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::register(UnixDatagram::new_socket()?)
    }

    /// A pair of sockets connected to each other (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = super::socket_pair(Type::DGRAM)?;
        Ok((UnixDatagram { pd: a }, UnixDatagram { pd: b }))
    }

    /// Wraps a socket made by `std`, switching it to non-blocking mode.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            pd: PollDesc::new(OwnedFd::from(socket))?,
        })
    }

    /// Sets the default peer for [`send`](UnixDatagram::send) and filters
    /// what [`recv`](UnixDatagram::recv) receives (sync, like `std`). Fails
    /// with `NotFound` if no socket file exists at `path`.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.connect_sock_addr(&addr::from_path(path.as_ref())?)
    }

    /// [`connect`](UnixDatagram::connect) to a pathname or abstract address.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.connect_sock_addr(&addr::from_std(addr)?)
    }

    fn connect_sock_addr(&self, addr: &SockAddr) -> io::Result<()> {
        SockRef::from(self.pd.fd())
            .connect(addr)
            .map_err(|e| addr::error(Op::Connect, addr, e))
    }

    /// Sends one datagram to the socket bound at `path`. No socket file
    /// there is `NotFound`; a file with no socket bound to it is
    /// `ConnectionRefused`; both errors name the path.
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let target = addr::from_path(path.as_ref())?;
        self.send_to_sock_addr(buf, &target).await
    }

    /// [`send_to`](UnixDatagram::send_to) a pathname or abstract address,
    /// such as the one [`recv_from`](UnixDatagram::recv_from) returned.
    pub async fn send_to_addr(&self, buf: &[u8], target: &SocketAddr) -> io::Result<usize> {
        let target = addr::from_std(target)?;
        self.send_to_sock_addr(buf, &target).await
    }

    async fn send_to_sock_addr(&self, buf: &[u8], target: &SockAddr) -> io::Result<usize> {
        self.pd
            .io(Direction::Write, |fd| sys::send_to_raw(fd, buf, target))
            .await
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT | libc::ECONNREFUSED | libc::EPROTOTYPE) => {
                    addr::error(Op::SendTo, target, e)
                }
                _ => e,
            })
    }

    /// Receives one datagram and its sender's address (unnamed if the
    /// sender is not bound). A datagram longer than `buf` is truncated.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Polls for a datagram; see [`recv_from`](UnixDatagram::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        match self
            .pd
            .poll_io(cx, Direction::Read, |fd| sys::recv_from_raw(fd, buf, 0))
        {
            Poll::Ready(Ok((n, from))) => Poll::Ready(addr::to_std(&from).map(|from| (n, from))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Sends one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls a send; see [`send`](UnixDatagram::send).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.pd
            .poll_io(cx, Direction::Write, |fd| sys::send(fd, buf))
    }

    /// Receives one datagram from the connected peer. A datagram longer
    /// than `buf` is truncated.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// Polls a receive; see [`recv`](UnixDatagram::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.pd
            .poll_io(cx, Direction::Read, |fd| sys::recv(fd, buf, 0))
    }

    /// The local address: unnamed unless the socket was bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::to_std(&SockRef::from(self.pd.fd()).local_addr()?)
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        addr::to_std(&SockRef::from(self.pd.fd()).peer_addr()?)
    }

    /// Shuts down receiving, sending, or both (like `std`). Shutting down
    /// a direction twice is not an error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        sys::shutdown(self.pd.fd(), how)
    }

    /// Returns and clears the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        SockRef::from(self.pd.fd()).take_error()
    }

    /// Sets the read deadline (Go's `SetReadDeadline`): a receive waiting
    /// when it passes, and every one after, fails with `TimedOut`; `None`
    /// clears it. It may be set from another task while a receive is
    /// parked.
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.pd.set_read_deadline(deadline)
    }

    /// Sets the write deadline; see
    /// [`set_read_deadline`](UnixDatagram::set_read_deadline).
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

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.pd.as_raw_fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pd.as_fd()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixDatagram");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        if let Ok(addr) = self.peer_addr() {
            d.field("peer", &addr);
        }
        d.field("fd", &self.pd.as_raw_fd()).finish()
    }
}
