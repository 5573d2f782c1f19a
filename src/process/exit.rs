//! A child from spawn until it is reaped: how the parent learns that it
//! exited, reaps it exactly once, and signals it without ever hitting a
//! recycled pid.
//!
//! # One reaper, one status
//!
//! Every reap goes through [`std::process::Child::try_wait`] (one
//! `waitpid(pid, WNOHANG)`), and std's `Child` remembers the status it
//! reaped; [`Process`] keeps it too, so a second wait returns it again
//! instead of waiting on a pid that may already name another process. A
//! pid is only recycled after its zombie is reaped, and gopark reaps its
//! children only through std's `Child` (here, and in the orphan queue), so
//! while the reaped status is unset the pid is still ours (a running child
//! or its zombie) and signalling it is safe. Once it is set,
//! [`Process::start_kill`] refuses, as tokio's does. (A program that reaps
//! behind gopark's back — `waitpid(-1)`, or SIGCHLD set to `SIG_IGN` —
//! breaks this for `kill`; with a pidfd the signal still reaches no other
//! process, and the wait fails with the `ECHILD` the kernel reports.)
//!
//! # Two ways to hear of the exit
//!
//! * **A pidfd in the netpoller.** `pidfd_open(2)` gives a descriptor that
//!   becomes readable when the child exits. It is a [`PollDesc`] like any
//!   socket: [`poll_wait`](Process::poll_wait) runs the EAGAIN loop with
//!   `waitpid(WNOHANG)` as the "syscall" — a child still running is
//!   `WouldBlock` — so the task parks until the netpoll thread sees the
//!   edge. Signals go through `pidfd_send_signal(2)`.
//! * **SIGCHLD**, where there is no pidfd (a kernel before 5.3, a seccomp
//!   filter that forbids `pidfd_open`, `GOPARK_NO_PIDFD=1`, or no
//!   descriptor to spare at spawn). The first wait makes a
//!   [`signal`](crate::signal::unix::signal) listener for SIGCHLD — one
//!   eventfd in the netpoller — *then* looks with `waitpid(WNOHANG)`, so an
//!   exit between the look and the listening is not missed; every SIGCHLD
//!   (deliveries coalesce) means look again. A SIGCHLD says that *some*
//!   child changed state, so each waiting child makes one `waitpid` per
//!   delivery: n children waited on at once cost n syscalls per exit.
//!   Bounded — no thread, one eventfd per waiting child — and the reason
//!   the pidfd comes first.
//!
//! A pidfd whose runtime has shut down can no longer be waited on; the
//! wait then falls back to SIGCHLD on the runtime it is polled from.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitStatus;
use std::task::{Context, Poll};

use gopark_runtime::{Direction, PollDesc};

use super::sys;
use crate::signal::unix::{signal, Signal, SignalKind};

/// A spawned child, until and after it is reaped.
pub(super) struct Process {
    child: std::process::Child,
    /// Set by the reap; the pid may name another process from then on.
    status: Option<ExitStatus>,
    watch: Watch,
}

/// How the exit is heard of.
enum Watch {
    /// A pidfd registered with the netpoller.
    Pidfd(PollDesc),
    /// SIGCHLD: the listener is made on the first wait and kept across
    /// waits, so a delivery between two polls is not lost.
    Sigchld(Option<Signal>),
    /// Reaped: nothing left to hear.
    Reaped,
}

impl Process {
    /// Takes over a child std just spawned, and opens its pidfd if it can.
    pub(super) fn new(child: std::process::Child) -> Process {
        let pidfd = sys::pidfd_open(child.id()).and_then(|fd| PollDesc::new_nonblocking(fd).ok());
        let watch = match pidfd {
            Some(pd) => Watch::Pidfd(pd),
            None => Watch::Sigchld(None),
        };
        Process {
            child,
            status: None,
            watch,
        }
    }

    /// The pid, until the child is reaped.
    pub(super) fn id(&self) -> Option<u32> {
        self.status.is_none().then(|| self.child.id())
    }

    /// Whether the child was reaped.
    pub(super) fn is_reaped(&self) -> bool {
        self.status.is_some()
    }

    /// Reaps the child if it has exited, without waiting.
    pub(super) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let status = self.child.try_wait()?;
        if let Some(status) = status {
            self.reaped(status);
        }
        Ok(status)
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // Closes the pidfd (or the SIGCHLD listener's eventfd) at once.
        self.watch = Watch::Reaped;
    }

    /// Ready with the exit status once the child has exited and is reaped.
    /// Cancel-safe: an exit heard while no one polls is seen at the next
    /// poll.
    pub(super) fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        loop {
            if let Some(status) = self.status {
                return Poll::Ready(Ok(status));
            }
            let child = &mut self.child;
            let res = match &mut self.watch {
                Watch::Pidfd(pd) => {
                    let res = pd.poll_io(cx, Direction::Read, |_| match child.try_wait() {
                        Ok(Some(status)) => Ok(status),
                        Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                        Err(e) => Err(e),
                    });
                    if matches!(res, Poll::Ready(Err(_))) && pd.is_closed() {
                        // The pidfd's runtime shut down: listen for SIGCHLD
                        // on the runtime polling us instead.
                        self.watch = Watch::Sigchld(None);
                        continue;
                    }
                    res
                }
                Watch::Sigchld(listener) => poll_sigchld(child, listener, cx),
                Watch::Reaped => unreachable!("a reaped child has its status"),
            };
            if let Poll::Ready(Ok(status)) = res {
                self.reaped(status);
            }
            return res;
        }
    }

    /// Sends SIGKILL, unless the child was reaped. A child that exited but
    /// was not reaped yet is a zombie, still ours: killing it is a no-op
    /// that succeeds.
    pub(super) fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid argument: can't kill an exited process",
            ));
        }
        match &self.watch {
            Watch::Pidfd(pd) => match sys::pidfd_send_signal(pd.fd().as_fd(), libc::SIGKILL) {
                // Gone already: reaped behind our back (a `waitpid(-1)`
                // elsewhere in the process). It is dead, as asked.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                res => res,
            },
            // Safe by the argument of the module docs: not reaped, so the
            // pid is still this child's.
            _ => self.child.kill(),
        }
    }

    /// Hands back std's child, for the orphan queue, if it still needs
    /// reaping.
    pub(super) fn into_unreaped(self) -> Option<std::process::Child> {
        self.status.is_none().then_some(self.child)
    }
}

/// The SIGCHLD path of [`Process::poll_wait`].
fn poll_sigchld(
    child: &mut std::process::Child,
    listener: &mut Option<Signal>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<ExitStatus>> {
    loop {
        // Listen first, then look: an exit after the look is a delivery the
        // listener has counted.
        let sigchld = match listener {
            Some(sigchld) => sigchld,
            None => listener.insert(signal(SignalKind::child())?),
        };
        if let Some(status) = child.try_wait()? {
            return Poll::Ready(Ok(status));
        }
        match sigchld.poll_recv(cx) {
            Poll::Ready(Some(())) => continue,
            Poll::Ready(None) => {
                *listener = None;
                return Poll::Ready(Err(io::Error::other(
                    "cannot wait for the child: the runtime it was waited on has shut down",
                )));
            }
            Poll::Pending => return Poll::Pending,
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let watch = match &self.watch {
            Watch::Pidfd(pd) => format!("pidfd {}", pd.as_raw_fd()),
            Watch::Sigchld(_) => "SIGCHLD".to_string(),
            Watch::Reaped => "reaped".to_string(),
        };
        f.debug_struct("Process")
            .field("pid", &self.child.id())
            .field("status", &self.status)
            .field("watch", &watch)
            .finish()
    }
}
