use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};

use gopark_runtime::{Direction, PollDesc};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::addr::{self, Op};
use super::UnixStream;
use crate::sys;

/// A Unix domain socket server, listening for connections.
///
/// Binding creates a socket file at the path. As with `std`, the file stays
/// after the listener is dropped: remove it when done, and remove a stale
/// one before binding again (binding over any existing file fails with
/// `AddrInUse`). An abstract address (Linux) has no file and is released
/// with the socket.
///
/// ```
/// use gopark_net::{UnixListener, UnixStream};
///
/// gopark_runtime::block_on(async {
///     let path = std::env::temp_dir().join(format!("gopark-listener-{}.sock", std::process::id()));
///     # let _ = std::fs::remove_file(&path); // left by an interrupted run
///     let listener = UnixListener::bind(&path)?;
///     assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
///     let server = gopark_runtime::spawn(async move {
///         let (stream, _peer) = listener.accept().await?;
///         stream.write_all(b"hello").await
///     });
///     let client = UnixStream::connect(&path).await?;
///     let mut buf = [0u8; 5];
///     client.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hello");
///     server.await??;
///     std::fs::remove_file(&path)?;
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })
/// .unwrap();
/// ```
pub struct UnixListener {
    pd: PollDesc,
}

impl UnixListener {
    /// Creates a socket file at `path` and listens on it, with the
    /// system's default backlog. A path that starts with a NUL byte names
    /// an abstract address (Linux); see also
    /// [`bind_addr`](UnixListener::bind_addr).
    ///
    /// If a file already exists at `path` (for instance the socket file of
    /// an earlier run), this fails with `AddrInUse` and a message naming the
    /// path.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::bind_sock_addr(&addr::from_path(path.as_ref())?)
    }

    /// Listens on `addr`: a pathname, or (Linux) an abstract address made
    /// with
    /// [`SocketAddrExt::from_abstract_name`](std::os::linux::net::SocketAddrExt::from_abstract_name),
    /// like `std`'s `UnixListener::bind_addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::bind_sock_addr(&addr::from_std(addr)?)
    }

    fn bind_sock_addr(addr: &SockAddr) -> io::Result<UnixListener> {
        let ty = Type::STREAM.nonblocking().cloexec();
        let socket = Socket::new(Domain::UNIX, ty, None)?;
        socket
            .bind(addr)
            .map_err(|e| addr::error(Op::Bind, addr, e))?;
        socket.listen(sys::default_backlog())?;
        Ok(UnixListener {
            pd: PollDesc::new_nonblocking(OwnedFd::from(socket))?,
        })
    }

    /// Wraps a listener made by `std`, switching it to non-blocking mode.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            pd: PollDesc::new(OwnedFd::from(listener))?,
        })
    }

    /// Accepts a connection. Tries `accept4` first and parks only on
    /// `EAGAIN`. Running out of descriptors (`EMFILE`, `ENFILE`) is
    /// returned as an error: the listener stays usable.
    ///
    /// The peer's address is usually unnamed: clients seldom bind.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection; see [`accept`](UnixListener::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (fd, peer) = match self.pd.poll_io(cx, Direction::Read, sys::accept_raw) {
            Poll::Ready(Ok(v)) => v,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let peer = addr::to_std(&peer)?;
        let pd = self.pd.sibling(fd)?;
        Poll::Ready(Ok((UnixStream::from_poll_desc(pd), peer)))
    }

    /// Stops listening, like Go's `Listener.Close`: a task parked in
    /// [`accept`](UnixListener::accept) wakes with an error, later accepts
    /// fail, and new connections are refused. The descriptor is closed
    /// when the listener is dropped; the socket file stays until removed.
    pub fn close(&self) -> io::Result<()> {
        self.pd.close();
        // Shutting down the receive side of a Unix listener makes the
        // kernel refuse new connections to it.
        sys::shutdown(self.pd.fd(), std::net::Shutdown::Both)
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::to_std(&SockRef::from(self.pd.fd()).local_addr()?)
    }

    /// Returns and clears the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        SockRef::from(self.pd.fd()).take_error()
    }

    /// The underlying [`PollDesc`].
    pub fn poll_desc(&self) -> &PollDesc {
        &self.pd
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.pd.as_raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pd.as_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.pd.as_raw_fd()).finish()
    }
}
