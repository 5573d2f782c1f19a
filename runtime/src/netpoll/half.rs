//! `Half`: one direction of a registered descriptor — its state word,
//! its wakers and its deadline — and the state machine that decides
//! every park, notification, close and timeout of that direction.
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
//! | 4 | `HUP` | the peer closed its side (`EPOLLRDHUP`), the socket hung up or failed (`EPOLLHUP`, `EPOLLERR`), or urgent data arrived (`EPOLLPRI`): a short transfer no longer proves the queue drained |
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
//! TCP's urgent data makes the same exception: a read stops at the urgent
//! mark, and the data after it, which came with the same edge, is read
//! next; after `EPOLLPRI` the half keeps the flag for good.

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

use std::io;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::loom::{AtomicUsize, Mutex, Ordering};
use crate::time::heap::TimerKey;

const READY: usize = 1 << 0;
const WAITERS: usize = 1 << 1;
const CLOSED: usize = 1 << 2;
const TIMED_OUT: usize = 1 << 3;
const HUP: usize = 1 << 4;
const TICK_SHIFT: usize = 5;
const TICK_ONE: usize = 1 << TICK_SHIFT;

/// What the slow paths of a half share under its lock.
#[derive(Default)]
pub(crate) struct Slow {
    waiters: Waiters,
    deadline_seq: u64,
    timer: Option<TimerKey>,
    /// The deadline, for the task dump, as `task::encode_instant` packs it
    /// (0 for none): half the size of an `Option<Instant>`.
    deadline: u64,
}

/// The wakers of the tasks waiting on a half. Nearly always one task
/// waits (a connection's reader, or its writer), so the first waker is
/// kept inline and only a second one allocates: a `Vec` would keep an
/// allocation of four wakers (80 bytes with the allocator's header) on
/// every half that ever waited, for the life of the descriptor.
#[derive(Default)]
struct Waiters {
    first: Option<Waker>,
    // Boxed: one word on every half, where a `Vec` would be three, for a
    // list that nearly every half leaves empty.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<Waker>>>,
}

impl Waiters {
    /// `true` if a waker that wakes the same task as `waker` is listed.
    fn contains(&self, waker: &Waker) -> bool {
        self.first.as_ref().is_some_and(|w| w.will_wake(waker))
            || self
                .rest
                .as_ref()
                .is_some_and(|rest| rest.iter().any(|w| w.will_wake(waker)))
    }

    fn push(&mut self, waker: Waker) {
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.get_or_insert_with(Default::default).push(waker);
        }
    }

    /// Moves every waker to `out`, leaving the list empty (and its
    /// allocation, if a second waiter made one, kept for the next time).
    fn drain_into(&mut self, out: &mut Vec<Waker>) {
        out.extend(self.first.take());
        if let Some(rest) = &mut self.rest {
            out.append(rest);
        }
    }
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
    pub(crate) fn into_io(self, shutdown: bool) -> io::Error {
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
        if !slow.waiters.contains(waker) {
            slow.waiters.push(waker.clone());
        }
        *deadline = crate::task::decode_instant(slow.deadline);
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
        slow.waiters.drain_into(wakers);
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
        slow.deadline = deadline.map_or(0, crate::task::encode_instant);
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
