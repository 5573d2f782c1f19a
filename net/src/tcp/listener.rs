use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use gopark_runtime::{Direction, PollDesc};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::TcpStream;
use crate::{sys, ToSocketAddrs};

/// A TCP socket server, listening for connections.
///
/// ```
/// use gopark_net::TcpListener;
///
/// gopark_runtime::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     println!("listening on {}", listener.local_addr()?);
///     # let addr = listener.local_addr()?;
///     # gopark_runtime::spawn(async move { gopark_net::TcpStream::connect(addr).await });
///     let (stream, peer) = listener.accept().await?;
///     # let _ = (stream, peer);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    pd: PollDesc,
}

/// Options for binding a [`TcpListener`]: backlog and `SO_REUSEPORT`.
///
/// ```
/// use gopark_net::ListenOptions;
///
/// gopark_runtime::block_on(async {
///     // Two listeners on one port; the kernel balances connections.
///     let a = ListenOptions::new().reuse_port(true).bind("127.0.0.1:0")?;
///     let b = ListenOptions::new().reuse_port(true).bind(a.local_addr()?)?;
///     assert_eq!(a.local_addr()?, b.local_addr()?);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ListenOptions {
    backlog: Option<i32>,
    reuse_port: bool,
    reuse_address: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions::new()
    }
}

impl ListenOptions {
    /// The defaults of [`TcpListener::bind`]: `SO_REUSEADDR` on,
    /// `SO_REUSEPORT` off, backlog from `/proc/sys/net/core/somaxconn`.
    pub fn new() -> ListenOptions {
        ListenOptions {
            backlog: None,
            reuse_port: false,
            reuse_address: true,
        }
    }

    /// Sets the accept queue length passed to `listen(2)`.
    pub fn backlog(&mut self, backlog: i32) -> &mut ListenOptions {
        self.backlog = Some(backlog);
        self
    }

    /// Sets `SO_REUSEPORT`, so several listeners can bind the same port and
    /// the kernel spreads connections over them.
    pub fn reuse_port(&mut self, on: bool) -> &mut ListenOptions {
        self.reuse_port = on;
        self
    }

    /// Sets `SO_REUSEADDR` (on by default).
    pub fn reuse_address(&mut self, on: bool) -> &mut ListenOptions {
        self.reuse_address = on;
        self
    }

    /// Binds a listener to the first address of `addr` that works. A host
    /// name is resolved on the calling thread, as std does (see
    /// [`TcpListener::bind`]).
    pub fn bind(&self, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addrs = crate::addr::resolve_inline(addr)?;
        crate::each_addr(&addrs, |a| self.bind_one(a))
    }

    fn bind_one(&self, addr: &SocketAddr) -> io::Result<TcpListener> {
        let ty = Type::STREAM.nonblocking().cloexec();
        let socket = Socket::new(Domain::for_address(*addr), ty, Some(Protocol::TCP))?;
        if self.reuse_address {
            socket.set_reuse_address(true)?;
        }
        if self.reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&(*addr).into())?;
        socket.listen(self.backlog.unwrap_or_else(sys::default_backlog))?;
        let pd = PollDesc::new_nonblocking(OwnedFd::from(socket))?;
        Ok(TcpListener { pd })
    }
}

impl TcpListener {
    /// Binds a listener to `addr` (the first of its addresses that works),
    /// with `SO_REUSEADDR` on and the system's default backlog. Bind to port
    /// 0 for an ephemeral port and read it back with
    /// [`local_addr`](TcpListener::local_addr).
    ///
    /// Like std's, `bind` is synchronous, so it cannot wait for the
    /// blocking pool: an IP literal is parsed inline, and a host name
    /// (`"localhost:0"`) goes to the system resolver on the calling thread.
    /// If that ever takes long, the runtime's monitor hands the worker's
    /// other tasks to a replacement thread after about 10 ms. To resolve a
    /// remote name off the workers first, use
    /// [`lookup_host`](crate::lookup_host) and bind the address it gives.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        ListenOptions::new().bind(addr)
    }

    /// Options for backlog and `SO_REUSEPORT`; see [`ListenOptions`].
    pub fn options() -> ListenOptions {
        ListenOptions::new()
    }

    /// Wraps a listener made by `std`, switching it to non-blocking mode.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            pd: PollDesc::new(OwnedFd::from(listener))?,
        })
    }

    /// Accepts a connection. Tries `accept4` first and parks only on
    /// `EAGAIN`. Connections that die in the queue (`ECONNABORTED`,
    /// `EPROTO`) are skipped. Running out of descriptors (`EMFILE`,
    /// `ENFILE`) is returned as an error: the listener stays usable, and a
    /// later `accept` succeeds once descriptors are free (back off before
    /// retrying, as Go's `net/http` does).
    ///
    /// The stream has `TCP_NODELAY` on, as in Go.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection; see [`accept`](TcpListener::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (fd, peer) = match self.pd.poll_io(cx, Direction::Read, sys::accept) {
            Poll::Ready(Ok(v)) => v,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        // Best effort: a connection the peer already reset may refuse it.
        let _ = SockRef::from(&fd).set_tcp_nodelay(true);
        let pd = self.pd.sibling(fd)?;
        Poll::Ready(Ok((TcpStream::from_poll_desc(pd), peer)))
    }

    /// Stops listening, like Go's `Listener.Close`: a task parked in
    /// [`accept`](TcpListener::accept) wakes with an error, later accepts
    /// fail, and the kernel stops queueing connections (new ones are
    /// refused). The descriptor itself is closed when the listener is
    /// dropped, so this works on a listener shared between tasks.
    pub fn close(&self) -> io::Result<()> {
        self.pd.close();
        // On Linux, shutting down a listening socket takes it out of the
        // LISTEN state. ENOTCONN means it was not listening any more.
        sys::shutdown(self.pd.fd(), std::net::Shutdown::Both)
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(SockRef::from(self.pd.fd()).local_addr()?)
    }

    /// The underlying [`PollDesc`].
    pub fn poll_desc(&self) -> &PollDesc {
        &self.pd
    }
}

pub(crate) fn sock_addr(addr: socket2::SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address"))
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.pd.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pd.as_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.pd.as_raw_fd()).finish()
    }
}
