//! Every `libc` call of the netpoller, behind one boundary.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

/// Turns a libc return value of `-1` into `io::Error::last_os_error()`.
/// Each call site makes its own `unsafe` call and says why it is sound.
fn cvt(res: libc::c_int) -> io::Result<libc::c_int> {
    if res == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

pub(crate) type Event = libc::epoll_event;

/// The interest every descriptor is registered with, once, for its life:
/// both directions, peer half-close, urgent data (TCP's `MSG_OOB`, see
/// `Netpoller::poll`), edge-triggered.
const INTEREST: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: takes no pointers.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, INTEREST, token)
    }

    pub(crate) fn add_level(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is a live epoll_event (ignored for DEL, but old
        // kernels want a valid pointer); the kernel checks the descriptors.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) })
            .map(drop)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event the kernel only reads; it
        // checks the descriptors.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Waits for events; `None` blocks until one arrives. Replaces the
    /// contents of `events` with what the kernel reported, at most its
    /// capacity. `EINTR` reports no events.
    pub(crate) fn wait(
        &self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let ms = match timeout {
            None => -1,
            // Round up, so a timer never fires early.
            Some(d) => d
                .as_nanos()
                .div_ceil(1_000_000)
                .min(libc::c_int::MAX as u128) as libc::c_int,
        };
        events.clear();
        let spare = events.spare_capacity_mut();
        let max = spare.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: `spare` is writable room for `max` epoll_events (plain
        // data, so uninitialised memory is fine to hand the kernel, which
        // only writes entries).
        let n = match cvt(unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                spare.as_mut_ptr().cast::<Event>(),
                max,
                ms,
            )
        }) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        // SAFETY: epoll_wait initialised the first `n` entries (n <= max,
        // which is at most the spare capacity).
        unsafe { events.set_len(n) };
        Ok(())
    }
}

/// An eventfd used as the netpoller's wake pipe.
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: takes no pointers.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: eventfd returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live u64.
            let r = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // EAGAIN means the counter is saturated: a wake-up is pending anyway.
                return;
            }
        }
    }

    pub(crate) fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
    }
}

/// Puts a descriptor in non-blocking mode.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer; the kernel checks the descriptor.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: F_SETFL takes an int, no pointer.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// A one-shot `timerfd` on the monotonic clock: the netpoll thread's
/// watchdog sleeps in [`TimerFd::wait`] and wakes only if the timer fires.
/// (The loom models use a model timer instead.)
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct TimerFd {
    fd: OwnedFd,
}

#[cfg_attr(loom, allow(dead_code))]
impl TimerFd {
    pub(crate) fn new() -> io::Result<TimerFd> {
        TimerFd::with_flags(libc::TFD_CLOEXEC)
    }

    /// A timer whose reads never block, for an epoll instance to watch
    /// ([`TimerFd::drain`] after it fires).
    pub(crate) fn new_nonblocking() -> io::Result<TimerFd> {
        TimerFd::with_flags(libc::TFD_CLOEXEC | libc::TFD_NONBLOCK)
    }

    fn with_flags(flags: libc::c_int) -> io::Result<TimerFd> {
        // SAFETY: takes no pointers.
        let fd = cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) })?;
        // SAFETY: timerfd_create returned a fresh descriptor that nothing
        // else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(TimerFd { fd })
    }

    /// Fires once, `after` from now (at least a nanosecond); `None`
    /// disarms it.
    pub(crate) fn set(&self, after: Option<Duration>) {
        let value = match after {
            // A zero `it_value` would disarm it.
            Some(d) => libc::timespec {
                tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos().max(u32::from(d.as_secs() == 0)) as libc::c_long,
            },
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a live itimerspec the kernel only reads; the
        // old value is not asked for (null). It cannot fail on a valid
        // timerfd with a normalised value.
        let _ = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, ptr::null_mut()) };
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Takes the expirations of a non-blocking timer, so that a
    /// level-triggered watch of it stops reporting them.
    pub(crate) fn drain(&self) {
        let mut expirations: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                8,
            )
        };
    }

    /// Blocks until the timer fires (a disarmed timer blocks until it is
    /// armed and fires).
    pub(crate) fn wait(&self) {
        let mut expirations: u64 = 0;
        loop {
            // SAFETY: reads at most 8 bytes into a live u64.
            let r = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut expirations as *mut u64).cast(),
                    8,
                )
            };
            // EINTR: wait again. Any other error cannot happen on a
            // blocking timerfd read with an 8-byte buffer; returning on it
            // only makes the caller look at its state once too often.
            if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }
}
