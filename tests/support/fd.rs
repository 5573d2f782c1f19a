//! Plain descriptors made async by hand, the way a user would with the
//! public `PollDesc`: pipes, and one `read(2)` or `write(2)` through the
//! EAGAIN loop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use gopark::runtime::{Direction, PollDesc};

/// A non-blocking pipe: `(read end, write end)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// One `read(2)` of `fd` into `buf`.
pub fn read(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads into a live buffer of the length given; the kernel
    // checks the descriptor.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `write(2)` of `buf` to `fd`.
pub fn write(fd: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writes from a live buffer of the length given; the kernel
    // checks the descriptor.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Writes all of `buf` to a descriptor that has room for it (a pipe or
/// FIFO with a free buffer): one `write(2)`, which must take it all.
#[track_caller]
pub fn write_now(fd: &impl AsRawFd, buf: &[u8]) {
    match write(fd, buf) {
        Ok(n) if n == buf.len() => {}
        other => panic!("write of {} bytes: {other:?}", buf.len()),
    }
}

/// Reads from the descriptor of `pd` through its EAGAIN loop.
pub async fn pd_read(pd: &PollDesc, buf: &mut [u8]) -> io::Result<usize> {
    pd.io(Direction::Read, |fd| read(fd, buf)).await
}

/// Writes to the descriptor of `pd` through its EAGAIN loop.
pub async fn pd_write(pd: &PollDesc, buf: &[u8]) -> io::Result<usize> {
    pd.io(Direction::Write, |fd| write(fd, buf)).await
}
