//! `PollDesc`: one registered descriptor, its two [`Half`]s (read and
//! write, whose state machine lives in `half.rs`), its deadlines, and the
//! one EAGAIN loop every operation on it goes through.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::half::{Half, HalfError};
use super::Netpoller;
use crate::task::Wait;
use crate::time::heap::{Action, Expire};

/// Which half of a descriptor an operation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Reading, receiving, accepting.
    Read,
    /// Writing, sending, connecting.
    Write,
}

/// Proof that a half was ready at a given readiness edge; hand it back to
/// [`PollDesc::clear_ready`] after an operation returned `WouldBlock`.
/// (A short transfer on a byte stream also proves the queue drained;
/// [`PollDesc::poll_stream_io`] handles that case, hang-ups included.)
#[derive(Clone, Copy, Debug)]
#[must_use = "pass it to `clear_ready` once the operation would block"]
pub struct ReadyEvent {
    dir: Direction,
    tick: usize,
}

/// The shared part of a PollDesc: what the netpoll thread and deadline
/// timers reach through the registry.
pub struct PdInner {
    pub(crate) token: u64,
    pub(crate) read: Half,
    pub(crate) write: Half,
}

impl PdInner {
    pub(crate) fn half(&self, dir: Direction) -> &Half {
        match dir {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }
}

/// A deadline timer's tag: the half in the low bit, its deadline sequence
/// number above.
fn deadline_tag(dir: Direction, seq: u64) -> u64 {
    (seq << 1) | u64::from(dir == Direction::Write)
}

impl Expire for PdInner {
    /// A deadline timer fired: times the half out if its deadline is still
    /// the one the timer was armed for.
    fn expire(&self, tag: u64, wakers: &mut Vec<Waker>) {
        let dir = if tag & 1 == 1 {
            Direction::Write
        } else {
            Direction::Read
        };
        self.half(dir).fire_deadline(tag >> 1, wakers);
    }
}

impl fmt::Debug for PdInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdInner")
            .field("token", &self.token)
            .finish()
    }
}

/// A non-blocking file descriptor registered with the netpoller.
///
/// `PollDesc` is how gopark makes any descriptor async: sockets, pipes, a
/// tty, a signalfd, an inotify fd. It owns the descriptor, registers it once
/// with the runtime's epoll instance (both directions, edge-triggered), and
/// lets a task wait until a direction is ready, with optional deadlines.
/// Dropping it wakes any waiting task with an error, deregisters the
/// descriptor, and closes it — in that order.
///
/// The usual way to use it is [`PollDesc::io`]: it tries the syscall, and
/// only if the kernel answers `EAGAIN` parks the task until the next edge.
///
/// ```
/// use std::os::fd::{FromRawFd, OwnedFd};
/// use gopark_runtime::{Direction, PollDesc};
///
/// gopark_runtime::block_on(async {
///     let mut fds = [0; 2];
///     // SAFETY: `fds` has room for the two descriptors pipe2 writes.
///     assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) }, 0);
///     // SAFETY: pipe2 returned two fresh descriptors we now own.
///     let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
///     let (r, w) = (PollDesc::new(r)?, PollDesc::new(w)?);
///
///     let reader = gopark_runtime::spawn(async move {
///         let mut buf = [0u8; 5];
///         let n = r.io(Direction::Read, |fd| {
///             // SAFETY: reads into a live buffer of the length given.
///             let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
///             if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
///         }).await?;
///         Ok::<_, std::io::Error>(buf[..n].to_vec())
///     });
///     w.io(Direction::Write, |fd| {
///         // SAFETY: writes from a live 5-byte buffer.
///         let n = unsafe { libc::write(fd.as_raw_fd(), b"hello".as_ptr().cast(), 5) };
///         if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
///     }).await?;
///     assert_eq!(reader.await??, b"hello");
///     Ok::<_, std::io::Error>(())
/// }).unwrap();
/// # use std::os::fd::AsRawFd;
/// ```
pub struct PollDesc {
    inner: Arc<PdInner>,
    driver: Arc<Netpoller>,
    fd: OwnedFd,
}

impl PollDesc {
    // `new` and `new_nonblocking`, which find the calling thread's runtime,
    // are defined by the runtime layer (`rt/poll_desc.rs`).

    /// Registers `fd`, already non-blocking, with `driver`.
    pub(crate) fn with_netpoller(fd: OwnedFd, driver: Arc<Netpoller>) -> io::Result<PollDesc> {
        let inner = driver.register(fd.as_raw_fd())?;
        Ok(PollDesc { inner, driver, fd })
    }

    /// Registers `fd`, which must already be non-blocking, with the same
    /// netpoller as `self` — for descriptors born of this one, such as the
    /// connections a listener accepts with `SOCK_NONBLOCK` — so they stay on
    /// the runtime the listener was created on.
    pub fn sibling(&self, fd: OwnedFd) -> io::Result<PollDesc> {
        PollDesc::with_netpoller(fd, self.driver.clone())
    }

    /// The descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Waits until `dir` is ready (or was, since it last cleared). Errors
    /// with `TimedOut` past the half's deadline, and with an error of kind
    /// `Other` after [`close`](PollDesc::close) or runtime shutdown.
    pub fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<ReadyEvent>> {
        let mut deadline = None;
        match self
            .inner
            .half(dir)
            .poll_ready_noting(cx.waker(), &mut deadline)
        {
            Poll::Ready(Ok(tick)) => Poll::Ready(Ok(ReadyEvent { dir, tick })),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into_io(self.driver.is_shutdown()))),
            Poll::Pending => {
                crate::task::record_wait(cx.waker(), || Wait::Io {
                    fd: self.fd.as_raw_fd(),
                    write: dir == Direction::Write,
                    deadline,
                });
                Poll::Pending
            }
        }
    }

    /// Waits until `dir` is ready. See [`poll_ready`](PollDesc::poll_ready).
    pub async fn ready(&self, dir: Direction) -> io::Result<ReadyEvent> {
        poll_fn(|cx| self.poll_ready(cx, dir)).await
    }

    /// Records that the readiness `ev` was used up (the operation returned
    /// `WouldBlock`), unless a newer edge has arrived since `ev` was taken.
    pub fn clear_ready(&self, ev: ReadyEvent) {
        self.inner.half(ev.dir).clear_ready(ev.tick);
    }

    /// The EAGAIN loop: waits until `dir` is ready, runs `f`, and if `f`
    /// fails with `WouldBlock`, clears readiness and waits for the next
    /// edge. `EINTR` is retried. Spends one unit of the task's cooperative
    /// budget.
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        f: impl FnMut(&OwnedFd) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_until_drained(cx, dir, f, |_| false)
    }

    /// Like [`poll_io`](PollDesc::poll_io), for byte-stream descriptors
    /// (TCP sockets, pipes): a transfer that moves fewer than `len` bytes
    /// (but more than zero) proves the kernel queue was drained, or the send
    /// buffer filled, so readiness is cleared at once and the next call
    /// waits for the next edge instead of making a syscall that would only
    /// return `EAGAIN`.
    pub fn poll_stream_io(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        f: impl FnMut(&OwnedFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_io_until_drained(cx, dir, f, |&n| n > 0 && n < len)
    }

    /// The EAGAIN loop behind `poll_io` and `poll_stream_io`: `drained`
    /// says whether a successful result proves the queue empty (or full).
    fn poll_io_until_drained<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut f: impl FnMut(&OwnedFd) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        if !crate::coop::poll_proceed(cx) {
            return Poll::Pending;
        }
        loop {
            let ev = match self.poll_ready(cx, dir) {
                Poll::Ready(Ok(ev)) => ev,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match f(&self.fd) {
                Ok(v) => {
                    if drained(&v) {
                        self.inner.half(dir).clear_ready_drained(ev.tick);
                    }
                    return Poll::Ready(Ok(v));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_ready(ev),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Async form of [`poll_io`](PollDesc::poll_io).
    pub async fn io<R>(
        &self,
        dir: Direction,
        mut f: impl FnMut(&OwnedFd) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_io(cx, dir, &mut f)).await
    }

    /// Sets the deadline of one direction, with Go's semantics: once it
    /// passes, the operation waiting in that direction and every later one
    /// fail with [`io::ErrorKind::TimedOut`]; a deadline already past fails
    /// them at once; `None` removes it. A new deadline after a timeout makes
    /// the direction usable again.
    pub fn set_deadline(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        if self.driver.is_shutdown() {
            return Err(HalfError::Closed.into_io(true));
        }
        let mut wakers = Vec::new();
        let time = &self.driver.time;
        let target = Arc::downgrade(&self.inner) as Weak<dyn Expire>;
        self.inner.half(dir).set_deadline(
            deadline,
            time.now(),
            |key| time.remove(key),
            |seq| {
                let d = deadline.expect("armed without a deadline");
                // `None`: shut down since the check above; the halves are
                // closed, so every operation fails anyway.
                time.insert(d, Action::Expire(target, deadline_tag(dir, seq)))
            },
            &mut wakers,
        );
        wakers.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// Sets the read deadline. See [`set_deadline`](PollDesc::set_deadline).
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.set_deadline(Direction::Read, deadline)
    }

    /// Sets the write deadline. See [`set_deadline`](PollDesc::set_deadline).
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.set_deadline(Direction::Write, deadline)
    }

    /// Fails every waiting and later operation on this descriptor with an
    /// error, as Go's `Close` does for goroutines blocked on the fd. The
    /// descriptor itself stays open until the `PollDesc` is dropped, so its
    /// number cannot be reused while anyone still holds it.
    pub fn close(&self) {
        let mut wakers = Vec::new();
        self.inner.read.close(&mut wakers);
        self.inner.write.close(&mut wakers);
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Returns `true` after [`close`](PollDesc::close) or runtime shutdown.
    pub fn is_closed(&self) -> bool {
        self.inner.read.is_closed()
    }

    /// Deregisters and returns the descriptor, still non-blocking.
    pub fn into_fd(self) -> OwnedFd {
        let this = std::mem::ManuallyDrop::new(self);
        this.deregister();
        // SAFETY: `this` is never used or dropped again; each field is read
        // out exactly once.
        unsafe {
            drop(std::ptr::read(&this.inner));
            drop(std::ptr::read(&this.driver));
            std::ptr::read(&this.fd)
        }
    }

    fn deregister(&self) {
        let mut wakers = Vec::new();
        self.driver
            .deregister(&self.inner, self.fd.as_raw_fd(), &mut wakers);
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl Drop for PollDesc {
    fn drop(&mut self) {
        // Deregister first: after this no event or timer reaches the halves.
        // Then `self.fd` closes the descriptor.
        self.deregister();
    }
}

impl AsRawFd for PollDesc {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PollDesc {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for PollDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollDesc")
            .field("fd", &self.fd.as_raw_fd())
            .field("token", &self.inner.token)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ready_tick(half: &Half) -> usize {
        match half.poll_ready(Waker::noop()) {
            Poll::Ready(Ok(tick)) => tick,
            other => panic!("expected ready, got {other:?}"),
        }
    }

    #[test]
    fn eagain_after_a_hang_up_parks() {
        let half = Half::new();
        half.notify(true, &mut Vec::new());
        let tick = ready_tick(&half);
        // The error or end of stream was read; the next try got EAGAIN.
        half.clear_ready(tick);
        assert!(half.poll_ready(Waker::noop()).is_pending());
        // The next edge makes it ready again.
        half.notify(false, &mut Vec::new());
        ready_tick(&half);
    }

    #[test]
    fn short_transfer_keeps_a_hung_up_half_ready() {
        let half = Half::new();
        let tick = ready_tick(&half);
        half.clear_ready_drained(tick);
        assert!(half.poll_ready(Waker::noop()).is_pending(), "drained");
        // Data and FIN in one edge: the short read must not hide the FIN.
        half.notify(true, &mut Vec::new());
        let tick = ready_tick(&half);
        half.clear_ready_drained(tick);
        let tick = ready_tick(&half);
        half.clear_ready(tick);
        assert!(half.poll_ready(Waker::noop()).is_pending(), "EAGAIN");
    }
}
