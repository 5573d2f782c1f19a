//! The socket syscalls of the hot path, behind one boundary. Socket setup
//! and options go through `socket2`, which owns the `sockaddr` plumbing,
//! except `TCP_INFO` and `SO_PEERCRED`, which it does not offer.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::SockAddr;

/// Turns a libc return value of `-1` into `io::Error::last_os_error()`.
/// Each call site makes its own `unsafe` call and says why it is sound.
fn cvt<T: PartialEq + From<i8>>(res: T) -> io::Result<T> {
    if res == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

pub(crate) fn recv(fd: &OwnedFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for `buf.len()` bytes; the kernel
    // checks the descriptor.
    cvt(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })
        .map(|n| n as usize)
}

/// `recv` into memory that may be uninitialized (hyper's and tokio's read
/// buffers). On success the first `n` bytes of `buf` are initialized, and
/// `n <= buf.len()`.
pub(crate) fn recv_uninit(
    fd: &OwnedFd,
    buf: &mut [std::mem::MaybeUninit<u8>],
    flags: libc::c_int,
) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for `buf.len()` bytes; the kernel
    // only writes to it, so uninitialized bytes are fine; it checks the
    // descriptor.
    cvt(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })
        .map(|n| n as usize)
}

/// `send` with `MSG_NOSIGNAL`: a write to a reset connection fails with
/// `EPIPE` instead of raising `SIGPIPE`.
pub(crate) fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is live and readable for `buf.len()` bytes; the kernel
    // checks the descriptor.
    cvt(unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    })
    .map(|n| n as usize)
}

/// Linux's `TCP_CLOSE` state (`include/net/tcp_states.h`), which `libc`
/// does not export: the connection is gone (reset, or closed in order
/// after our own FIN was acknowledged).
pub(crate) const TCP_CLOSE: u8 = 7;

/// The TCP state of a socket (`TCP_INFO`'s `tcpi_state`, e.g.
/// [`TCP_CLOSE`]).
pub(crate) fn tcp_state(fd: &OwnedFd) -> io::Result<u8> {
    // SAFETY: tcp_info is plain data, valid when zeroed.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a live tcp_info of the size `len` says; the
    // kernel writes at most that much.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    })?;
    Ok(info.tcpi_state)
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
    // SAFETY: `msg` points at `bufs`, live `iovec`-compatible slices for
    // the count it gives, and at no address.
    cvt(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) }).map(|n| n as usize)
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new descriptor needs
/// no further `fcntl`. A connection that was aborted while it waited in the
/// queue (`ECONNABORTED`, or `EPROTO` on some protocols) is skipped, as Go
/// does: the caller sees the next one, or `EAGAIN`.
pub(crate) fn accept_raw(fd: &OwnedFd) -> io::Result<(OwnedFd, SockAddr)> {
    loop {
        match accept4(fd) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EPROTO)) => {}
            res => return res,
        }
    }
}

fn accept4(fd: &OwnedFd) -> io::Result<(OwnedFd, SockAddr)> {
    // SAFETY: `try_init` hands us storage and a length for the kernel to
    // fill, exactly what accept4 expects.
    let (res, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            cvt(libc::accept4(
                fd.as_raw_fd(),
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ))
        })
    }?;
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    let stream = unsafe { OwnedFd::from_raw_fd(res) };
    Ok((stream, addr))
}

/// [`accept_raw`] for IP sockets.
pub(crate) fn accept(fd: &OwnedFd) -> io::Result<(OwnedFd, SocketAddr)> {
    let (stream, addr) = accept_raw(fd)?;
    let addr = addr
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP peer"))?;
    Ok((stream, addr))
}

pub(crate) fn recv_from_raw(
    fd: &OwnedFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, SockAddr)> {
    // SAFETY: as in `accept_raw`: storage and length for the kernel to
    // fill; `buf` is live for its length.
    let (n, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            cvt(libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
                storage.cast(),
                len,
            ))
        })
    }?;
    Ok((n as usize, addr))
}

/// [`recv_from_raw`] for IP sockets.
pub(crate) fn recv_from(
    fd: &OwnedFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, SocketAddr)> {
    let (n, addr) = recv_from_raw(fd, buf, flags)?;
    let addr = addr
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP peer"))?;
    Ok((n, addr))
}

/// `sendto` with `MSG_NOSIGNAL`.
pub(crate) fn send_to_raw(fd: &OwnedFd, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
    // SAFETY: `buf` is live for its length, and `addr` is a valid sockaddr
    // of the length it reports.
    cvt(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            addr.as_ptr().cast(),
            addr.len(),
        )
    })
    .map(|n| n as usize)
}

/// [`send_to_raw`] for IP sockets.
pub(crate) fn send_to(fd: &OwnedFd, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
    send_to_raw(fd, buf, &SockAddr::from(*addr))
}

/// The credentials of a Unix socket's peer (`SO_PEERCRED`): the process
/// that connected (or created the pair), as of `connect`/`socketpair`.
pub(crate) fn peer_cred(fd: &OwnedFd) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live ucred of the size `len` says; the kernel
    // writes at most that much.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred)
}

/// Default listen backlog: the kernel's `somaxconn`, as Go reads it.
pub(crate) fn default_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}

/// `shutdown(2)`, where a socket that is not connected (`ENOTCONN`: the
/// peer already gone, or a listener no longer listening) counts as shut
/// down already.
pub(crate) fn shutdown(fd: &OwnedFd, how: std::net::Shutdown) -> io::Result<()> {
    match socket2::SockRef::from(fd).shutdown(how) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
        res => res,
    }
}
