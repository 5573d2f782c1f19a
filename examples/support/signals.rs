//! SIGINT and SIGTERM as something a task can await: a `signalfd`
//! registered with gopark's public [`PollDesc`] API.
//!
//! A signalfd only receives signals that are blocked, and a signal is
//! delivered to any thread that does not block it. So [`block`] must run
//! first thing in `main`, before the runtime starts its threads: they
//! inherit the calling thread's mask, and then no thread takes the signal's
//! default action (terminating the process); the kernel queues it for the
//! signalfd instead.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;

use gopark::runtime::{Direction, PollDesc};

/// A set of signals blocked in the calling thread (and in every thread it
/// starts afterwards).
pub struct Blocked {
    set: libc::sigset_t,
}

/// Blocks `signals` in the calling thread. Call it in `main` before the
/// runtime starts: threads started later inherit the mask.
pub fn block(signals: &[libc::c_int]) -> io::Result<Blocked> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given a pointer to.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: initialised by sigemptyset just above.
    let mut set = unsafe { set.assume_init() };
    for &signal in signals {
        // SAFETY: `set` is an initialised sigset_t; the kernel checks the number.
        if unsafe { libc::sigaddset(&mut set, signal) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(Blocked { set })
}

/// Delivery of the blocked signals, one at a time.
pub struct Signals {
    pd: PollDesc,
}

impl Signals {
    /// Opens a signalfd for the signals of `blocked` and registers it with
    /// the current runtime's netpoller. Call it inside the runtime.
    pub fn new(blocked: &Blocked) -> io::Result<Signals> {
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: -1 asks for a new descriptor; `blocked.set` is initialised.
        let fd = unsafe { libc::signalfd(-1, &blocked.set, flags) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals {
            pd: PollDesc::new_nonblocking(fd)?,
        })
    }

    /// Waits for the next signal and returns its number. Parks the task on
    /// the PollDesc until the netpoller sees the signalfd become readable.
    pub async fn recv(&self) -> io::Result<libc::c_int> {
        self.pd
            .io(Direction::Read, |fd| {
                let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
                let len = size_of::<libc::signalfd_siginfo>();
                // SAFETY: reads at most `len` bytes into `info`, which has room for them.
                let n = unsafe { libc::read(fd.as_raw_fd(), info.as_mut_ptr().cast(), len) };
                if n == -1 {
                    return Err(io::Error::last_os_error());
                }
                if n as usize != len {
                    return Err(io::Error::other("short read from signalfd"));
                }
                // SAFETY: the kernel filled all `len` bytes.
                let info = unsafe { info.assume_init() };
                Ok(info.ssi_signo as libc::c_int)
            })
            .await
    }
}

/// The conventional name of a signal, for messages.
pub fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        _ => "signal",
    }
}
