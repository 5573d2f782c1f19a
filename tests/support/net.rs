//! Sockets on loopback: pairs, closed ports, resets, buffer sizes, and
//! reading, echoing and verifying any of gopark's byte streams (TCP, Unix,
//! and their owned halves, through [`Read`] and [`Write`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use gopark::net::{tcp, unix, TcpListener, TcpStream, UnixStream};

use super::data::assert_bytes_eq;

/// A connected pair over loopback: `(client, server)`.
pub async fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    pair_on(&listener).await
}

/// A connected pair through an existing listener: `(client, server)`.
pub async fn pair_on(listener: &TcpListener) -> io::Result<(TcpStream, TcpStream)> {
    let addr = listener.local_addr()?;
    let (client, accepted) =
        futures_util::future::join(TcpStream::connect(addr), listener.accept()).await;
    let client = client?;
    let (server, peer) = accepted?;
    assert_eq!(
        peer,
        client.local_addr()?,
        "accept reports the client's address"
    );
    Ok((client, server))
}

/// A TCP address on loopback where nothing listens (bound, then released).
pub fn closed_port() -> io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(addr)
}

/// A UDP address on loopback where nothing listens (bound, then released).
pub fn closed_udp_port() -> io::Result<SocketAddr> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    s.local_addr()
}

/// Closes `stream` with a reset (`SO_LINGER` 0) instead of a FIN.
pub fn reset(stream: TcpStream) -> io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))?;
    drop(stream);
    Ok(())
}

/// Sets `SO_LINGER` 0 on any socket (a std one, say): closing it then
/// sends a reset.
pub fn linger_zero(socket: &impl AsRawFd) -> io::Result<()> {
    let lg = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(socket, libc::SOL_SOCKET, libc::SO_LINGER, lg)
}

/// Sets a socket buffer size (`SO_SNDBUF` or `SO_RCVBUF`) to `bytes`.
#[track_caller]
pub fn set_buf(socket: &impl AsRawFd, opt: libc::c_int, bytes: libc::c_int) {
    if let Err(e) = setsockopt(socket, libc::SOL_SOCKET, opt, bytes) {
        panic!("setsockopt({opt}, {bytes}): {e}");
    }
}

/// `setsockopt(2)` with a plain-data option value.
fn setsockopt<T: Copy>(
    socket: &impl AsRawFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: the descriptor is live for the call (`socket` borrows its
    // owner); the option value is a plain-data `T` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            opt,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A byte stream the helpers below read from, with its own `read`.
pub trait Read {
    fn read<'a>(&'a self, buf: &'a mut [u8])
        -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

/// A byte stream the helpers below write to, with its own `write_all`.
pub trait Write {
    fn write_all<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a;
}

macro_rules! impl_read {
    ($($ty:ty),*) => {$(
        impl Read for $ty {
            fn read<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + Send + 'a {
                <$ty>::read(self, buf)
            }
        }
    )*};
}

macro_rules! impl_write {
    ($($ty:ty),*) => {$(
        impl Write for $ty {
            fn write_all<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a {
                <$ty>::write_all(self, buf)
            }
        }
    )*};
}

impl_read!(
    TcpStream,
    UnixStream,
    tcp::OwnedReadHalf,
    unix::OwnedReadHalf
);
impl_write!(
    TcpStream,
    UnixStream,
    tcp::OwnedWriteHalf,
    unix::OwnedWriteHalf
);

// A stream shared between tasks (gopark's way) reads and writes as itself.
impl<T: Read> Read for Arc<T> {
    fn read<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        T::read(self, buf)
    }
}

impl<T: Write> Write for Arc<T> {
    fn write_all<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a {
        T::write_all(self, buf)
    }
}

/// The server of DESIGN.md: reads into a fixed buffer (64 KiB) and echoes
/// until end of stream. Returns how many bytes it echoed.
pub async fn echo<S: Read + Write>(stream: S) -> io::Result<u64> {
    echo_in(stream, 64 * 1024).await
}

/// [`echo`] through a buffer of `len` bytes (DESIGN.md's example uses 4 KiB).
pub async fn echo_in<S: Read + Write>(stream: S, len: usize) -> io::Result<u64> {
    let mut buf = vec![0u8; len];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Reads until end of stream, bounded by the caller's deadline/timeout.
pub async fn read_to_end(stream: &impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads exactly `want.len()` bytes in chunks of `chunk` and checks each
/// against `want` as it arrives.
pub async fn read_and_verify(stream: &impl Read, want: &[u8], chunk: usize) -> io::Result<()> {
    let mut buf = vec![0u8; chunk];
    let mut off = 0;
    while off < want.len() {
        let end = (want.len() - off).min(chunk);
        let n = stream.read(&mut buf[..end]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("stream ended after {off} of {} bytes", want.len()),
            ));
        }
        assert_bytes_eq(&buf[..n], &want[off..off + n], &format!("bytes at {off}"));
        off += n;
    }
    Ok(())
}

/// Asserts `res` is an error of `kind`.
#[track_caller]
pub fn assert_err_kind<T: std::fmt::Debug>(res: io::Result<T>, kind: io::ErrorKind, what: &str) {
    match res {
        Err(e) if e.kind() == kind => {}
        other => panic!("{what}: expected an error of kind {kind:?}, got {other:?}"),
    }
}

/// One TCP socket's queues as the kernel's socket diagnostics (the netlink
/// interface `ss` uses) report them: `(bytes sent and not yet acknowledged,
/// bytes received and not yet read)`, or `None` if no open socket has these
/// addresses (closed, gone or in `TIME_WAIT`). One exact lookup, however
/// many sockets the machine holds (`/proc/net/tcp` lists them all, which
/// takes seconds on a busy machine with thousands of them).
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u32, u32)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const TCP_TIME_WAIT: u8 = 6;
    /// `struct inet_diag_req_v2` after its `nlmsghdr`.
    #[repr(C)]
    struct Request {
        len: u32,
        kind: u16,
        flags: u16,
        seq: u32,
        pid: u32,
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        interface: u32,
        cookie: [u32; 2],
    }
    fn ip(addr: SocketAddr) -> [u8; 16] {
        let mut out = [0u8; 16];
        match addr.ip() {
            std::net::IpAddr::V4(ip) => out[..4].copy_from_slice(&ip.octets()),
            std::net::IpAddr::V6(ip) => out = ip.octets(),
        }
        out
    }
    let req = Request {
        len: std::mem::size_of::<Request>() as u32,
        kind: SOCK_DIAG_BY_FAMILY,
        flags: libc::NLM_F_REQUEST as u16,
        seq: 1,
        pid: 0,
        family: if local.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        } as u8,
        protocol: libc::IPPROTO_TCP as u8,
        ext: 0,
        pad: 0,
        states: !0,
        sport: local.port().to_be_bytes(),
        dport: remote.port().to_be_bytes(),
        src: ip(local),
        dst: ip(remote),
        interface: 0,
        cookie: [!0, !0], // INET_DIAG_NOCOOKIE
    };
    // SAFETY: socket(2) takes no pointers; a descriptor it returns is ours.
    let fd = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        assert!(fd >= 0, "netlink socket: {}", io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    };
    // SAFETY: `req` is a plain `repr(C)` value of `req.len` bytes; an
    // unconnected netlink socket sends to the kernel.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&req as *const Request).cast(),
            std::mem::size_of::<Request>(),
            0,
        )
    };
    assert!(sent >= 0, "sock_diag send: {}", io::Error::last_os_error());
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert!(n >= 0, "sock_diag recv: {}", io::Error::last_os_error());
    let reply = &buf[..n as usize];
    let u32_at = |at: usize| u32::from_ne_bytes(reply[at..at + 4].try_into().unwrap());
    let kind = u16::from_ne_bytes(reply[4..6].try_into().unwrap());
    if kind == libc::NLMSG_ERROR as u16 {
        // No such socket: ENOENT.
        return None;
    }
    assert_eq!(kind, SOCK_DIAG_BY_FAMILY, "sock_diag reply");
    // `struct inet_diag_msg` after the 16-byte header: state at 1, the
    // 48-byte socket id at 4, then expires, rqueue, wqueue.
    let msg = 16;
    if reply[msg + 1] == TCP_TIME_WAIT {
        return None;
    }
    Some((u32_at(msg + 60), u32_at(msg + 56)))
}

/// Waits (bounded by `limit`) until the peer of `stream` — another process
/// on this machine, which `stream` only talks to — has read every byte
/// written on `stream` so far: the kernel acknowledged them (nothing left
/// in this side's send queue) and the peer's receive queue is empty, or
/// the peer's socket is gone. A write after this one reaches the peer in
/// a read of its own, however busy the machine.
///
/// Panics if that does not happen within `limit`, naming the queues.
pub fn wait_peer_read(stream: &std::net::TcpStream, limit: Duration) {
    let local = stream.local_addr().expect("local addr");
    let peer = stream.peer_addr().expect("peer addr");
    let start = std::time::Instant::now();
    loop {
        let ours = tcp_queues(local, peer);
        let theirs = tcp_queues(peer, local);
        let sent = matches!(ours, Some((0, _)));
        let read = matches!(theirs, None | Some((_, 0)));
        if sent && read {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "the peer did not read what {local} sent within {limit:?}: \
             ours (unacked, unread) {ours:?}, theirs {theirs:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
