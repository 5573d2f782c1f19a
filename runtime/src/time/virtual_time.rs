//! Virtual time: when a paused clock moves, and who decides.
//!
//! A paused runtime clock (see [virtual time](super#virtual-time)) moves
//! in two ways, and this module is where both are decided; the other
//! parts only report what they see:
//!
//! | part | what it does for virtual time |
//! |---|---|
//! | [`TimeDriver`] (`driver.rs`) | the clock itself: `pause`, `resume`, `advance_to`, `now` |
//! | [`time::advance`](super::advance) | moves it by a duration, from a task |
//! | [`jump`] (here) | moves it to the next timer once the runtime is idle |
//! | the netpoll thread | calls [`jump`] after each wake-up in which nothing fired, and looks every [`IDLE_LOOK`] while the clock is paused; the last worker to park wakes it ([`may_jump_after_park`]) |
//! | the scheduler (`PollHost::is_idle`) | says whether every task is blocked: workers parked, queues empty, no [`Activity`] |
//! | `block_on` and the blocking pool | count their runnable work in [`Activity`] |
//!
//! # The rule
//!
//! Go's `testing/synctest`: the clock jumps only when no task can run
//! without it. That takes three looks, in this order:
//!
//! 1. the scheduler is idle: every worker parked with nothing queued, and
//!    no [`Activity`] outside the workers;
//! 2. epoll holds nothing for a waiting task, looked at until it is
//!    *drained* (a look returns only what fits in its buffer; the events
//!    of descriptors nobody waits for could hide one that a task waits
//!    for behind them);
//! 3. the next timer, read only now: a task that was still running
//!    during an earlier look may have armed a sooner one before it
//!    blocked (`timeout(60 s, sleep(1 h))` arms the hour first), and a
//!    jump to a timer read then would fire both at once, at the later
//!    time.
//!
//! Only then does the clock move to that timer, which fires in the same
//! batch. (A look at the timers before the first step only saves the
//! other two when there is none.)
//!
//! # Why one counter
//!
//! Work outside the workers hands itself on: a blocking job that finishes
//! wakes a `block_on` future, which may then spawn another job before its
//! poll ends. Two counters, one per kind, can each be read as zero while
//! the work moves from the one read second to the one read first, and the
//! clock would jump with a future runnable. So both kinds count in one
//! [`Activity`], and every hand-on raises it for the receiver before the
//! giver lowers it: it reads zero only when nothing outside the workers
//! can run. The loom model `activity_hand_on_never_reads_idle` checks it,
//! beside a seeded copy of the two-counter version.

use std::task::Waker;
use std::time::Duration;

use super::driver::TimeDriver;
use crate::loom::{AtomicUsize, Ordering};

/// With the clock paused, how often the netpoll thread looks whether the
/// runtime went idle, so that the clock may jump (a paused clock's timers
/// never come due by waiting). The last worker to park also wakes it (see
/// [`may_jump_after_park`]); this look catches the idle moments no park
/// marks (a `block_on` future or a blocking job that blocks again).
pub(crate) const IDLE_LOOK: Duration = Duration::from_millis(1);

/// A worker parked (`last`: the last one running): whether the netpoll
/// thread should run its loop now, because the runtime may have gone idle
/// and a paused clock may jump.
#[inline]
pub(crate) fn may_jump_after_park(driver: &TimeDriver, last: bool) -> bool {
    last && driver.is_paused()
}

/// Runnable work of a runtime outside its workers: `block_on` futures
/// woken and not yet polled (or being polled), blocking-pool jobs queued
/// or running. Zero is one of the conditions of an idle runtime (see the
/// module docs for why it is one counter).
#[derive(Debug, Default)]
pub(crate) struct Activity(AtomicUsize);

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity(AtomicUsize::new(0))
    }

    /// One more piece of work can run. Whoever hands work on calls this
    /// for the receiver before its own [`end`](Self::end).
    #[inline]
    pub(crate) fn begin(&self) {
        // SeqCst: one total order with `is_quiet` and the scheduler's
        // other looks (the `Idle` counts, the queue lengths).
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// A piece of work is done (or blocked again).
    #[inline]
    pub(crate) fn end(&self) {
        let prev = self.0.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(prev > 0, "activity ended more often than it began");
    }

    /// `true` if nothing outside the workers can run.
    pub(crate) fn is_quiet(&self) -> bool {
        // SeqCst: see `begin`.
        self.0.load(Ordering::SeqCst) == 0
    }
}

/// With the clock paused, the next timer due, the runtime idle
/// (`is_idle`) and nothing for a waiting task in epoll (`drain`, which
/// collects the wakers of what it finds and returns `false` if it could
/// not see everything), moves the clock to that timer and fires it into
/// `wakers`. Call it with `wakers` empty.
pub(crate) fn jump(
    driver: &TimeDriver,
    is_idle: impl FnOnce() -> bool,
    drain: impl FnOnce(&mut Vec<Waker>) -> bool,
    wakers: &mut Vec<Waker>,
) {
    debug_assert!(wakers.is_empty());
    if !driver.is_paused() || driver.lock().next_deadline().is_none() {
        return;
    }
    if !is_idle() {
        return;
    }
    // Nothing may be ready for a task that would then run.
    if !drain(wakers) || !wakers.is_empty() {
        return;
    }
    // Read after the idle look, not before: the last task to block may
    // have armed a timer sooner than any there was when this began.
    let Some(next) = driver.lock().next_deadline() else {
        return;
    };
    driver.advance_to(next, wakers);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::time::heap::Action;

    #[test]
    fn a_timer_armed_by_the_last_task_to_block_is_the_one_jumped_to() {
        // `timeout(60 s, sleep(1 h))`: the hour is armed first; the
        // minute is armed by the same poll, which ends just before the
        // runtime is seen idle.
        let driver = TimeDriver::paused_alone();
        let start = driver.now();
        let hour = start + Duration::from_secs(3600);
        let minute = start + Duration::from_secs(60);
        driver.insert(hour, Action::Wake(None)).unwrap();
        let mut wakers = Vec::new();
        jump(
            &driver,
            || {
                driver.insert(minute, Action::Wake(None)).unwrap();
                true
            },
            |_| true,
            &mut wakers,
        );
        assert_eq!(driver.now(), minute);
        assert_eq!(driver.lock().next_deadline(), Some(hour));
    }

    #[test]
    fn no_jump_while_busy_or_with_something_ready() {
        let driver = TimeDriver::paused_alone();
        let start = driver.now();
        driver
            .insert(start + Duration::from_secs(1), Action::Wake(None))
            .unwrap();
        let mut wakers = Vec::new();
        jump(&driver, || false, |_| true, &mut wakers);
        assert_eq!(driver.now(), start, "a runnable task holds the clock");
        jump(&driver, || true, |_| false, &mut wakers);
        assert_eq!(driver.now(), start, "an undrained epoll holds the clock");
        jump(
            &driver,
            || true,
            |w| {
                w.push(std::task::Waker::noop().clone());
                true
            },
            &mut wakers,
        );
        assert_eq!(driver.now(), start, "a task made ready holds the clock");
    }
}
