use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use gopark_runtime::{Direction, PollDesc};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::tcp::sock_addr_of as sock_addr;
use crate::{sys, ToSocketAddrs};

/// A UDP socket.
///
/// ```
/// use gopark_net::UdpSocket;
///
/// gopark_runtime::block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"hi", b.local_addr()?).await?;
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr()?));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    pd: PollDesc,
}

impl UdpSocket {
    /// Binds a socket to the first address of `addr` that works.
    ///
    /// Synchronous, like std's: a host name is resolved on the calling
    /// thread (see [`TcpListener::bind`](crate::TcpListener::bind)); an IP
    /// literal is parsed inline.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addrs = crate::addr::resolve_inline(addr)?;
        crate::each_addr(&addrs, |a| {
            let ty = Type::DGRAM.nonblocking().cloexec();
            let socket = Socket::new(Domain::for_address(*a), ty, Some(Protocol::UDP))?;
            socket.bind(&(*a).into())?;
            Ok(UdpSocket {
                pd: PollDesc::new_nonblocking(OwnedFd::from(socket))?,
            })
        })
    }

    /// Wraps a socket made by `std`, switching it to non-blocking mode.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            pd: PollDesc::new(OwnedFd::from(socket))?,
        })
    }

    /// Sets the default peer for [`send`](UdpSocket::send) and filters what
    /// [`recv`](UdpSocket::recv) receives. Async, as tokio's is: a host
    /// name is resolved on the blocking pool (an IP literal inline), and
    /// the first address that `connect(2)` accepts is taken.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addrs = crate::addr::resolve(addr).await?;
        let sock = SockRef::from(self.pd.fd());
        crate::each_addr(&addrs, |a| sock.connect(&(*a).into()))
    }

    /// Sends one datagram to `target` (its first address). A host name is
    /// resolved on the blocking pool, an IP literal inline.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let target = crate::addr::resolve(target).await?[0];
        self.pd
            .io(Direction::Write, |fd| sys::send_to(fd, buf, &target))
            .await
    }

    /// Receives one datagram and its sender. A datagram longer than `buf`
    /// is truncated.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Polls for a datagram; see [`recv_from`](UdpSocket::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.pd
            .poll_io(cx, Direction::Read, |fd| sys::recv_from(fd, buf, 0))
    }

    /// Sends one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.pd.io(Direction::Write, |fd| sys::send(fd, buf)).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.pd
            .io(Direction::Read, |fd| sys::recv(fd, buf, 0))
            .await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(SockRef::from(self.pd.fd()).local_addr()?)
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(SockRef::from(self.pd.fd()).peer_addr()?)
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        SockRef::from(self.pd.fd()).set_broadcast(on)
    }

    /// The underlying [`PollDesc`].
    pub fn poll_desc(&self) -> &PollDesc {
        &self.pd
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.pd.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pd.as_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        d.field("fd", &self.pd.as_raw_fd()).finish()
    }
}
