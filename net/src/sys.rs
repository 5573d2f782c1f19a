//! The socket syscalls of the hot path, behind one boundary. Socket setup
//! and options go through `socket2`, which owns the `sockaddr` plumbing.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::SockAddr;

/// Calls a libc function, turning `-1` into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: each call site passes a live descriptor and buffers valid
        // for the lengths it passes; the kernel checks everything else.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub(crate) fn recv(fd: &OwnedFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    syscall!(recv(
        fd.as_raw_fd(),
        buf.as_mut_ptr().cast(),
        buf.len(),
        flags
    ))
    .map(|n| n as usize)
}

/// `send` with `MSG_NOSIGNAL`: a write to a reset connection fails with
/// `EPIPE` instead of raising `SIGPIPE`.
pub(crate) fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    syscall!(send(
        fd.as_raw_fd(),
        buf.as_ptr().cast(),
        buf.len(),
        libc::MSG_NOSIGNAL
    ))
    .map(|n| n as usize)
}

/// Most slices one `sendmsg` takes (Linux's `UIO_MAXIOV`).
pub(crate) const IOV_MAX: usize = 1024;

/// Vectored send (`sendmsg` with `MSG_NOSIGNAL`) of at most [`IOV_MAX`]
/// slices.
pub(crate) fn send_vectored(fd: &OwnedFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix (documented by std).
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(IOV_MAX) as _;
    syscall!(sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)).map(|n| n as usize)
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new descriptor needs
/// no further `fcntl`.
pub(crate) fn accept(fd: &OwnedFd) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: `try_init` hands us storage and a length for the kernel to
    // fill, exactly what accept4 expects.
    let (res, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            syscall!(accept4(
                fd.as_raw_fd(),
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
            ))
        })
    }?;
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    let stream = unsafe { OwnedFd::from_raw_fd(res) };
    let addr = addr
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP peer"))?;
    Ok((stream, addr))
}

pub(crate) fn recv_from(
    fd: &OwnedFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, SocketAddr)> {
    // SAFETY: as in `accept`: storage and length for the kernel to fill;
    // `buf` is live for its length.
    let (n, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            syscall!(recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
                storage.cast(),
                len
            ))
        })
    }?;
    let addr = addr
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP peer"))?;
    Ok((n as usize, addr))
}

pub(crate) fn send_to(fd: &OwnedFd, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
    let addr = SockAddr::from(*addr);
    syscall!(sendto(
        fd.as_raw_fd(),
        buf.as_ptr().cast(),
        buf.len(),
        libc::MSG_NOSIGNAL,
        addr.as_ptr().cast(),
        addr.len()
    ))
    .map(|n| n as usize)
}

/// `TCP_CLOSE` of the kernel's `include/net/tcp_states.h`: the state a
/// reset leaves a connection in (`tcpi_state` of `TCP_INFO`).
const TCP_CLOSE: u8 = 7;

/// Returns `true` if the TCP connection on `fd` is closed at the kernel's
/// level (`TCP_INFO` reports `TCP_CLOSE`), as a reset leaves it; a FIN from
/// the peer leaves it in `CLOSE_WAIT`.
pub(crate) fn tcp_closed(fd: &OwnedFd) -> io::Result<bool> {
    // SAFETY: an all-zero tcp_info is a valid value for the kernel to fill.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_INFO,
        (&mut info as *mut libc::tcp_info).cast(),
        &mut len
    ))?;
    Ok(info.tcpi_state == TCP_CLOSE)
}

/// Default listen backlog: the kernel's `somaxconn`, as Go reads it.
pub(crate) fn default_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}
