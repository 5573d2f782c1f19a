//! [`Listener`]: what [`serve`](super::serve()) accepts connections from.

use std::io;
use std::task::{Context, Poll};

use gopark_net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::hyper::Io;

/// A source of connections for [`serve`](super::serve()): gopark's
/// [`TcpListener`] and [`UnixListener`], a `TlsListener` (the `tls`
/// feature's `gopark::hyper::tls`), or a type of your own. axum 0.8's `serve::Listener`, in
/// poll form.
///
/// `poll_accept` is called from one task, the accept loop; a connection it
/// returns is served on a task of its own. It returns only the errors of
/// the listener itself: `serve` backs off from a lack of resources
/// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), skips a connection that died
/// in the queue, and stops on anything else. A listener that does work per
/// connection before it can hand it over (a TLS handshake) does it off the
/// accept loop, so that one slow client cannot hold the others up.
///
/// ```
/// use std::io;
/// use std::task::{Context, Poll};
///
/// use gopark::hyper::serve::Listener;
/// use gopark::hyper::Io;
/// use gopark::net::{TcpListener, TcpStream};
///
/// /// A listener that tells how many connections it handed out.
/// struct Counting {
///     inner: TcpListener,
///     accepted: u64,
/// }
///
/// impl Listener for Counting {
///     type Io = TcpStream;
///     type Addr = std::net::SocketAddr;
///
///     fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, Self::Addr)>> {
///         let conn = std::task::ready!(self.inner.poll_accept(cx))?;
///         self.accepted += 1;
///         Poll::Ready(Ok(conn))
///     }
///
///     fn local_addr(&self) -> io::Result<Self::Addr> {
///         self.inner.local_addr()
///     }
///
///     // A gopark socket: reads go straight into hyper's buffer.
///     fn hyper_io(&self, io: TcpStream) -> Io<TcpStream> {
///         Io::from_socket(io)
///     }
/// }
/// ```
pub trait Listener: Send + 'static {
    /// The stream of one connection.
    type Io: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static;
    /// The address of a peer, and of the listener.
    type Addr: Send + 'static;

    /// Polls for the next connection.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Io, Self::Addr)>>;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// Wraps a connection for hyper. By default [`Io::new`], which works
    /// for any stream and zeroes the part of hyper's buffer a read offers;
    /// gopark's [`TcpListener`] and [`UnixListener`] return
    /// [`Io::from_socket`], whose reads go straight into hyper's buffer. A
    /// listener of yours that hands out gopark sockets can do the same.
    fn hyper_io(&self, io: Self::Io) -> Io<Self::Io> {
        Io::new(io)
    }
}

impl Listener for TcpListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, Self::Addr)>> {
        TcpListener::poll_accept(self, cx)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        TcpListener::local_addr(self)
    }

    fn hyper_io(&self, io: TcpStream) -> Io<TcpStream> {
        Io::from_socket(io)
    }
}

impl Listener for UnixListener {
    type Io = UnixStream;
    type Addr = std::os::unix::net::SocketAddr;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, Self::Addr)>> {
        UnixListener::poll_accept(self, cx)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        UnixListener::local_addr(self)
    }

    fn hyper_io(&self, io: UnixStream) -> Io<UnixStream> {
        Io::from_socket(io)
    }
}
