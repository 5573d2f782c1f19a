//! `PollDesc`: one registered descriptor, and the state machine of each of
//! its two halves (read and write).
//!
//! # The half's state word
//!
//! Go's `runtime/netpoll.go` keeps, per half, a word that is nil, ready,
//! waiting or a parked goroutine. A Rust waker does not fit in an atomic
//! word, so here the word carries flags and the wakers sit beside it under a
//! small lock that only the slow paths take:
//!
//! | bits | name | meaning |
//! |---|---|---|
//! | 0 | `READY` | the last readiness edge has not been used up (Go's *ready*) |
//! | 1 | `WAITERS` | the waker list is non-empty (Go's *waiting/parked*) |
//! | 2 | `CLOSED` | the descriptor was closed or its runtime shut down |
//! | 3 | `TIMED_OUT` | the half's deadline passed |
//! | 4 | `HUP` | the peer closed its side (`EPOLLRDHUP`), or the socket hung up or failed (`EPOLLHUP`, `EPOLLERR`): a short transfer no longer proves the queue drained |
//! | 5.. | tick | count of readiness edges, to tell a new edge from an old one |
//!
//! `READY` starts set: an operation always tries its syscall first and only
//! waits after `EAGAIN`, which clears `READY` — unless the tick moved since
//! the operation read it, i.e. an edge arrived while the syscall ran. With
//! edge-triggered epoll a lost edge never comes back, so this check is the
//! rule everything rests on. Nothing else makes a half ready: an `EAGAIN`
//! always parks the operation until the next edge, so no state (an error,
//! a hang-up) can turn it into a retry inside the same poll, a spin that no
//! timeout could interrupt.
//!
//! A transfer shorter than the buffer on a stream socket proves the queue
//! was drained (or filled), so it clears `READY` the same way and saves the
//! syscall that would only return `EAGAIN`. `HUP` makes the one exception:
//! when the last data and the peer's FIN arrive in one edge, a short read
//! drains the data, and the next read must still go to the kernel to see
//! end of stream (or the error); no further edge will come for it. So a
//! short transfer leaves a hung-up half ready, and only `EAGAIN` clears it.

//! # No lost wake-up, no double wake-up
//!
//! A waiting task pushes its waker under the lock and sets `WAITERS` with one
//! `fetch_or`, whose result says whether `READY`, `CLOSED` or `TIMED_OUT` was
//! set first; if so it does not wait. A notifier sets its bit with one atomic
//! read-modify-write, whose result says whether `WAITERS` was set first; if
//! so it takes the wakers under the lock. One of the two always sees the
//! other: both act on the same word. The notifier that empties the list is
//! the only one that wakes those tasks; later notifiers find `WAITERS`
//! clear and stop.
//!
//! # Close and deadlines
//!
//! Closing sets `CLOSED`; a deadline timer sets `TIMED_OUT`. Neither sets
//! `READY`: a woken task retries, sees the flag, and fails with an error.
//! Each half has a deadline sequence number, bumped whenever the deadline
//! changes; a timer carries the number it was armed with and does nothing
//! if it no longer matches, so a stale timer never times out a later
//! operation. Setting a new deadline clears `TIMED_OUT`.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::Netpoller;
use crate::loom::{AtomicUsize, Mutex, Ordering};
use crate::task::Wait;
use crate::time::heap::{Action, Expire, TimerKey};

const READY: usize = 1 << 0;
const WAITERS: usize = 1 << 1;
const CLOSED: usize = 1 << 2;
const TIMED_OUT: usize = 1 << 3;
const HUP: usize = 1 << 4;
const TICK_SHIFT: usize = 5;
const TICK_ONE: usize = 1 << TICK_SHIFT;

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

/// What the slow paths of a half share under its lock.
#[derive(Default)]
pub(crate) struct Slow {
    waiters: Vec<Waker>,
    deadline_seq: u64,
    timer: Option<TimerKey>,
    /// The deadline, for the task dump.
    deadline: Option<Instant>,
}

/// One direction of a descriptor: the state word and the waker list.
pub(crate) struct Half {
    state: AtomicUsize,
    slow: Mutex<Slow>,
}

/// Why an operation on a half cannot proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HalfError {
    Closed,
    TimedOut,
}

impl HalfError {
    fn into_io(self, shutdown: bool) -> io::Error {
        match self {
            HalfError::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "i/o deadline exceeded"),
            HalfError::Closed if shutdown => {
                io::Error::other("the runtime this descriptor was registered with has shut down")
            }
            HalfError::Closed => io::Error::other("use of closed descriptor"),
        }
    }
}

impl Default for Half {
    fn default() -> Self {
        Half::new()
    }
}

impl Half {
    pub(crate) fn new() -> Half {
        Half {
            state: AtomicUsize::new(READY),
            slow: Mutex::new(Slow::default()),
        }
    }

    fn check(s: usize) -> Result<(), HalfError> {
        if s & CLOSED != 0 {
            Err(HalfError::Closed)
        } else if s & TIMED_OUT != 0 {
            Err(HalfError::TimedOut)
        } else {
            Ok(())
        }
    }

    /// Returns the current tick if the half is ready; otherwise registers
    /// `waker` and returns `Pending`. Errors once closed or timed out.
    #[cfg(test)]
    pub(crate) fn poll_ready(&self, waker: &Waker) -> Poll<Result<usize, HalfError>> {
        self.poll_ready_noting(waker, &mut None)
    }

    /// [`poll_ready`](Half::poll_ready) that, when it registers `waker`,
    /// also reads the half's deadline into `deadline` under the same lock
    /// (for the task dump's record of what the task waits for).
    pub(crate) fn poll_ready_noting(
        &self,
        waker: &Waker,
        deadline: &mut Option<Instant>,
    ) -> Poll<Result<usize, HalfError>> {
        // Acquire: pairs with the AcqRel of `notify`/`set_flag`, so the
        // edge (or the close) happens-before the syscall we retry.
        let s = self.state.load(Ordering::Acquire);
        Half::check(s)?;
        if s & READY != 0 {
            return Poll::Ready(Ok(s >> TICK_SHIFT));
        }
        let mut slow = self.slow.lock();
        if !slow.waiters.iter().any(|w| w.will_wake(waker)) {
            slow.waiters.push(waker.clone());
        }
        *deadline = slow.deadline;
        // AcqRel: publishes the waker before WAITERS; acquires the edge or
        // flag a notifier set before we got here.
        let s = self.state.fetch_or(WAITERS, Ordering::AcqRel);
        drop(slow);
        Half::check(s)?;
        if s & READY != 0 {
            // An edge beat us; our waker stays listed and may be woken
            // spuriously later, which is harmless.
            return Poll::Ready(Ok(s >> TICK_SHIFT));
        }
        Poll::Pending
    }

    /// Clears `READY` unless an edge arrived after `tick` was read: the
    /// operation got `EAGAIN`.
    pub(crate) fn clear_ready(&self, tick: usize) {
        self.clear_ready_unless(tick, 0);
    }

    /// Clears `READY` after a short transfer, which proves the queue
    /// drained unless the half hung up (see the module docs).
    pub(crate) fn clear_ready_drained(&self, tick: usize) {
        self.clear_ready_unless(tick, HUP);
    }

    /// Clears `READY` unless an edge arrived after `tick` was read or a
    /// bit of `keep` is set.
    fn clear_ready_unless(&self, tick: usize, keep: usize) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s >> TICK_SHIFT == tick && s & READY != 0 && s & keep == 0 {
            // Relaxed: clearing READY publishes nothing; a racing edge is
            // detected by the tick comparison of the CAS itself.
            match self.state.compare_exchange_weak(
                s,
                s & !READY,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// A readiness edge: sets `READY` (and `HUP` if `hup`), bumps the tick,
    /// and moves the waiting tasks' wakers to `wakers`.
    pub(crate) fn notify(&self, hup: bool, wakers: &mut Vec<Waker>) {
        let extra = if hup { READY | HUP } else { READY };
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let next = (s.wrapping_add(TICK_ONE)) | extra;
            // AcqRel: pairs with the fetch_or in `poll_ready` (see there).
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        if s & WAITERS != 0 {
            self.take_waiters(wakers);
        }
    }

    /// A deliberately broken `notify` for the model tests: it checks for
    /// waiters *before* publishing `READY`, so a task that parks in between
    /// is never woken.
    #[cfg(all(test, loom))]
    pub(crate) fn notify_split_for_test(&self, wakers: &mut Vec<Waker>) {
        let s = self.state.load(Ordering::Acquire);
        if s & WAITERS != 0 {
            self.take_waiters(wakers);
        }
        self.state.fetch_or(READY, Ordering::AcqRel);
    }

    /// Sets `CLOSED` or `TIMED_OUT` and moves the wakers to `wakers`.
    fn set_flag(&self, flag: usize, wakers: &mut Vec<Waker>) {
        let s = self.state.fetch_or(flag, Ordering::AcqRel);
        if s & WAITERS != 0 {
            self.take_waiters(wakers);
        }
    }

    fn take_waiters(&self, wakers: &mut Vec<Waker>) {
        let mut slow = self.slow.lock();
        self.take_waiters_locked(&mut slow, wakers);
    }

    fn take_waiters_locked(&self, slow: &mut Slow, wakers: &mut Vec<Waker>) {
        // Cleared under the lock, so a waiter that pushes after this sets
        // WAITERS again and is seen by the next notifier.
        self.state.fetch_and(!WAITERS, Ordering::AcqRel);
        wakers.append(&mut slow.waiters);
    }

    /// Sets `TIMED_OUT` with the lock held, so that a concurrent
    /// `set_deadline` (which clears it under the same lock) is ordered
    /// entirely before or after.
    fn time_out_locked(&self, slow: &mut Slow, wakers: &mut Vec<Waker>) {
        let s = self.state.fetch_or(TIMED_OUT, Ordering::AcqRel);
        if s & WAITERS != 0 {
            self.take_waiters_locked(slow, wakers);
        }
    }

    pub(crate) fn close(&self, wakers: &mut Vec<Waker>) {
        self.set_flag(CLOSED, wakers);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    #[cfg(all(test, loom))]
    pub(crate) fn is_timed_out(&self) -> bool {
        self.state.load(Ordering::Acquire) & TIMED_OUT != 0
    }

    #[cfg(all(test, loom))]
    pub(crate) fn deadline_seq(&self) -> u64 {
        self.slow.lock().deadline_seq
    }

    /// Changes the deadline: bumps the sequence, disarms the old timer,
    /// clears `TIMED_OUT`, then either times out at once (a deadline that
    /// has passed) or arms a timer through `arm`.
    pub(crate) fn set_deadline(
        &self,
        deadline: Option<Instant>,
        now: Instant,
        disarm: impl FnOnce(TimerKey),
        arm: impl FnOnce(u64) -> Option<TimerKey>,
        wakers: &mut Vec<Waker>,
    ) {
        let mut slow = self.slow.lock();
        slow.deadline_seq = slow.deadline_seq.wrapping_add(1);
        slow.deadline = deadline;
        if let Some(key) = slow.timer.take() {
            disarm(key);
        }
        self.state.fetch_and(!TIMED_OUT, Ordering::AcqRel);
        match deadline {
            None => {}
            Some(d) if d <= now => self.time_out_locked(&mut slow, wakers),
            Some(_) => slow.timer = arm(slow.deadline_seq),
        }
    }

    /// A deadline timer fired; acts only if no newer deadline was set.
    pub(crate) fn fire_deadline(&self, seq: u64, wakers: &mut Vec<Waker>) {
        let mut slow = self.slow.lock();
        if slow.deadline_seq != seq {
            return;
        }
        slow.timer = None;
        self.time_out_locked(&mut slow, wakers);
    }

    /// Disarms the deadline timer, if any (the descriptor is going away).
    pub(crate) fn take_timer(&self) -> Option<TimerKey> {
        let mut slow = self.slow.lock();
        slow.deadline_seq = slow.deadline_seq.wrapping_add(1);
        slow.timer.take()
    }
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
