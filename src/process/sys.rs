//! The process module's system calls, behind one boundary: `pidfd_open`,
//! `pidfd_send_signal`, `read` and `write` on a pipe, and the switch
//! between the pidfd path and the SIGCHLD fallback.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Turns the `-1` of a failed call into the thread's `errno`.
fn cvt(res: libc::c_long) -> io::Result<libc::c_long> {
    if res == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// The environment variable that turns the pidfd path off for the whole
/// process (read once, at the first spawn): `GOPARK_NO_PIDFD=1`.
pub(super) const NO_PIDFD_VAR: &str = "GOPARK_NO_PIDFD";

/// Set once `pidfd_open` answered `ENOSYS` (a kernel older than 5.3) or
/// `EPERM` (a seccomp filter that forbids it): from then on no spawn tries
/// it again.
static PIDFD_MISSING: AtomicBool = AtomicBool::new(false);

/// Whether children get a pidfd: the kernel has `pidfd_open` (as far as
/// we know) and [`NO_PIDFD_VAR`] does not turn it off.
fn pidfd_enabled() -> bool {
    static TURNED_OFF: OnceLock<bool> = OnceLock::new();
    let off = *TURNED_OFF
        .get_or_init(|| std::env::var_os(NO_PIDFD_VAR).is_some_and(|v| !v.is_empty() && v != "0"));
    // Relaxed: a hint that only saves a failing syscall; nothing else is
    // published through it.
    !off && !PIDFD_MISSING.load(Ordering::Relaxed)
}

/// Opens a pidfd for `pid`, a child of ours not yet reaped (so the number
/// still names it, alive or a zombie). `None` when pidfds are off, missing
/// from the kernel, or cannot be had right now (out of descriptors): the
/// child is then watched through SIGCHLD.
pub(super) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    if !pidfd_enabled() {
        return None;
    }
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags, no pointer; it returns a
    // new descriptor (always close-on-exec) or -1.
    match cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) }) {
        Ok(fd) => {
            let fd = RawFd::try_from(fd).expect("a descriptor fits an int");
            // SAFETY: a fresh descriptor that nothing else owns.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        Err(e) => {
            if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                PIDFD_MISSING.store(true, Ordering::Relaxed);
            }
            None
        }
    }
}

/// Sends `signal` to the process `pidfd` refers to. The pidfd names that
/// process and no other, so a pid recycled after the child was reaped (by
/// anyone) can never be hit: the kernel answers `ESRCH` instead.
pub(super) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null
    // siginfo (the kernel fills in a SI_USER one) and flags.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    })
    .map(drop)
}

/// `read(2)` on a pipe.
pub(super) fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads into a live buffer of the length given.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    cvt(n as libc::c_long).map(|n| n as usize)
}

/// `write(2)` on a pipe. A pipe whose reader is gone fails with
/// `BrokenPipe` (Rust programs ignore `SIGPIPE` from the start).
pub(super) fn write(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writes from a live buffer of the length given.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    cvt(n as libc::c_long).map(|n| n as usize)
}

/// `writev(2)` on a pipe.
pub(super) fn write_vectored(fd: &OwnedFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let count = bufs.len().min(IOV_MAX) as libc::c_int;
    // SAFETY: `IoSlice` is ABI-compatible with `iovec`; `count` slices are
    // live for the call.
    let n = unsafe { libc::writev(fd.as_raw_fd(), bufs.as_ptr().cast(), count) };
    cvt(n as libc::c_long).map(|n| n as usize)
}

/// The most slices one `writev` takes.
pub(super) const IOV_MAX: usize = 1024;

/// Clears `O_NONBLOCK`: for a pipe end handed to another child as its
/// stdio, which expects the blocking descriptor every program starts with.
pub(super) fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFL takes no pointer; the kernel checks the descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let flags = cvt(flags.into())? as libc::c_int;
    if flags & libc::O_NONBLOCK != 0 {
        // SAFETY: F_SETFL takes an int, no pointer.
        let res = unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) };
        cvt(res.into())?;
    }
    Ok(())
}
