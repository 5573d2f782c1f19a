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

/// One TCP socket's queues as `/proc/net/tcp` shows them: `(bytes sent and
/// not yet acknowledged, bytes received and not yet read)`, or `None` if
/// no socket has these addresses (closed and gone).
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    // The kernel prints each address as the 32-bit words of its network
    // order bytes in host order, the port as a 16-bit number.
    fn hex(addr: SocketAddr) -> String {
        let ip: String = match addr.ip() {
            std::net::IpAddr::V4(ip) => format!("{:08X}", u32::from_ne_bytes(ip.octets())),
            std::net::IpAddr::V6(ip) => ip
                .octets()
                .chunks(4)
                .map(|w| format!("{:08X}", u32::from_ne_bytes(w.try_into().unwrap())))
                .collect(),
        };
        format!("{ip}:{:04X}", addr.port())
    }
    let table = if local.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let (local, remote) = (hex(local), hex(remote));
    let text = std::fs::read_to_string(table).expect(table);
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[1] != local || f[2] != remote {
            return None;
        }
        let (tx, rx) = f[4].split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
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
