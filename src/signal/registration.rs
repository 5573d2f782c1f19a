//! One listener's line from the signal handler to its task: an eventfd
//! that the handler writes and a [`PollDesc`] that the task parks on.
//!
//! # Who touches the eventfd when
//!
//! * [`Registration::new`] creates the eventfd, registers it with the
//!   current runtime's netpoller, and only then adds the handler action
//!   that writes to it. From that moment every delivery of the signal, on
//!   whatever thread the kernel picks, adds 1 to the eventfd's counter.
//! * The task reads the counter (which resets it to 0) when the netpoller
//!   reports it readable: one `recv` for every batch of deliveries since the
//!   last read — deliveries coalesce, as they do in the kernel and in tokio.
//! * [`Drop`] removes the action *before* the eventfd is closed.
//!   `signal_hook_registry::unregister` swaps the action table and waits
//!   until no handler still reads the old one, so once it returns no
//!   handler can write to the descriptor number, and closing it cannot make
//!   a handler write to a file opened later under the same number.
//!
//! The action is async-signal-safe: one `write(2)` of 8 bytes from the
//! handler's stack (signal-hook-registry saves and restores `errno` around
//! it). If the counter were ever about to overflow, the write fails with
//! `EAGAIN` and the delivery coalesces with the ones already counted.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::task::{Context, Poll};

use gopark_runtime::{Direction, PollDesc};
use signal_hook_registry::SigId;

use super::unix::SignalKind;

/// The signals no listener may take: SIGKILL and SIGSTOP cannot be caught,
/// and a handler that returns from a SIGSEGV, SIGBUS, SIGILL or SIGFPE
/// raised by a faulting instruction re-runs that instruction forever.
const FORBIDDEN: [libc::c_int; 6] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
];

/// A listener's registration: dropping it stops the deliveries and closes
/// the eventfd.
pub(super) struct Registration {
    // Field order does not matter: `Drop` unregisters first, by hand.
    id: SigId,
    pd: PollDesc,
    kind: SignalKind,
}

impl Registration {
    /// Installs the process-wide handler for `kind` if no listener did yet,
    /// and starts counting its deliveries for this listener.
    pub(super) fn new(kind: SignalKind) -> io::Result<Registration> {
        let signum = kind.as_raw_value();
        check(kind)?;

        let flags = libc::EFD_NONBLOCK | libc::EFD_CLOEXEC;
        // SAFETY: eventfd takes no pointers; it returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, flags) };
        if fd == -1 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot listen for {kind}: eventfd: {e}"),
            ));
        }
        // SAFETY: eventfd returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let pd = PollDesc::new_nonblocking(fd).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for {kind}: registering its eventfd: {e}"),
            )
        })?;

        let raw = pd.as_raw_fd();
        let action = move || {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to the eventfd. `raw`
            // stays open while this action can run: `Drop` unregisters the
            // action, which waits for running handlers, before the
            // PollDesc closes the descriptor. write(2) is async-signal-safe.
            unsafe { libc::write(raw, (&one as *const u64).cast(), 8) };
        };
        // SAFETY: (1) the action is async-signal-safe: it only calls
        // write(2), allocates nothing, takes no lock and cannot panic;
        // (2) `check` refused the signals signal-hook-registry would panic
        // on (its FORBIDDEN list is a subset of ours).
        let id = unsafe { signal_hook_registry::register(signum, action) }.map_err(|e| {
            let kind_of = match e.raw_os_error() {
                Some(libc::EINVAL) => io::ErrorKind::InvalidInput,
                _ => e.kind(),
            };
            io::Error::new(kind_of, format!("cannot listen for {kind}: sigaction: {e}"))
        })?;
        Ok(Registration { id, pd, kind })
    }

    /// Ready with `Some(())` once the signal was delivered since the last
    /// time this returned ready (or since the registration); `None` once the
    /// runtime the registration belongs to has shut down.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let read = self.pd.poll_io(cx, Direction::Read, |fd| {
            let mut count: u64 = 0;
            // SAFETY: reads at most 8 bytes into a live u64.
            let n = unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
            if n == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(count)
            }
        });
        match read {
            Poll::Ready(Ok(_count)) => Poll::Ready(Some(())),
            // The PollDesc was closed: its runtime shut down. An eventfd
            // read fails in no other way once the descriptor is readable.
            Poll::Ready(Err(_)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Refuses numbers that are not signals and the [`FORBIDDEN`] ones, with a
/// message that names them.
fn check(kind: SignalKind) -> io::Result<()> {
    let signum = kind.as_raw_value();
    if signum <= 0 || signum > libc::SIGRTMAX() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot listen for {kind}: not a signal number on this system"),
        ));
    }
    if FORBIDDEN.contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot listen for {kind}: SIGKILL and SIGSTOP cannot be caught, and \
                 SIGSEGV, SIGBUS, SIGILL and SIGFPE must keep their default action"
            ),
        ));
    }
    Ok(())
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Before the PollDesc (and so the eventfd) goes: see the module doc.
        signal_hook_registry::unregister(self.id);
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("signal", &self.kind)
            .field("eventfd", &self.pd.as_raw_fd())
            .finish()
    }
}
