//! Who serves epoll and the timers while the netpoll thread runs a task.
//!
//! At an idle runtime the netpoll thread runs the first task its
//! `epoll_wait` made ready itself, on a spare worker slot, instead of
//! waking a parked worker for it (Go's `findRunnable` does the same after
//! `netpoll(delay)`): a request then costs one thread wake-up, not two.
//! While that poll runs, nobody blocks in `epoll_wait`, fires timers or
//! watches the workers. A poll normally takes microseconds; one that
//! blocks (a blocking syscall, a loop that never awaits) would stop every
//! descriptor and timer of the runtime.
//!
//! So each inline run (a task, then the LIFO chain after it, as a worker
//! runs them, then what the run's own looks at epoll make ready, for a
//! short span) is watched. The netpoll thread arms a one-shot timer
//! ([`INLINE_LIMIT`], the monitor's limit for a stuck worker) as the run
//! begins: one deadline for the whole run, so a chain of polls just under
//! the limit cannot add up past it. The watchdog thread sleeps on that
//! timer and nothing else. Runs that come in a row (a ping-pong, a busy
//! connection) leave it armed and pay no syscall: a fire that finds no
//! run, or a run younger than the limit, costs one wake-up of the
//! watchdog per [`INLINE_LIMIT`] at most. After a quiet spell, the
//! netpoll thread sets it before it sleeps: while its sleeps have been
//! short for a while (requests that come steadily, each alone), it arms
//! it afresh once what is left of the last such arming is less than half
//! the limit ([`Watch::prime`]), so that the next request's run finds it
//! armed and its syscall is off the request's path; otherwise it disarms
//! it ([`Watch::settle`]), and the next run arms it as it begins. So
//! sparse requests wake the watchdog only when a gap between them
//! outlasts what is left of the timer after a streak of short ones, and
//! an idle runtime never once the last fire has passed. If it fires
//! while a run has lasted the limit, the watchdog *stands in*: it retakes
//! the slot's current poll (the queued tasks go to the workers, as the
//! monitor does for a stuck worker) and runs the netpoll loop itself
//! until the netpoll thread is back. The netpoll thread starts no further
//! poll of its run ([`Watch::next`]) and, when its poll returns, waits
//! for the stand-in to give the loop back.
//!
//! # The states
//!
//! | state | the netpoll loop is run by | moved by |
//! |---|---|---|
//! | `Idle` | the netpoll thread | — |
//! | `Inline` | nobody: the netpoll thread polls a task | the thread ([`Watch::begin`]) |
//! | `StandIn` | the watchdog | the watchdog ([`Watch::take_over`]), from `Inline` only |
//! | `Back` | the watchdog, until it sees this | the thread ([`Watch::end`]), from `StandIn` |
//!
//! From `Back` the watchdog returns to `Idle` ([`Watch::hand_back`]) and
//! wakes the thread. All moves are made under one lock, so the end of a
//! poll and a take-over cannot both win: either the thread's `end` comes
//! first (`Inline` to `Idle`: the watchdog, woken by a timer that fired
//! just too late, finds nothing to take), or the take-over does, and the
//! thread then waits. Never do both threads run the loop; the loom model
//! `inline_poll_and_stand_in_never_run_the_loop_together` checks it, beside
//! a seeded `end` that does not wait, and
//! `a_stand_in_between_two_polls_stops_the_run` checks that no task runs
//! unwatched after a take-over, beside a seeded `next` that does not look.
//!
//! The slot's own hand-shake (the end of a poll against a retake, see
//! `scheduler/slot.rs`) decides independently who keeps the slot's queued
//! work; the netpoll thread loses the slot if the stand-in retook it.

use std::time::Duration;

use crate::loom::{AtomicBool, Condvar, Mutex, Ordering};

/// How long the netpoll thread may stay inside one task's poll before the
/// watchdog stands in: the monitor's limit for a stuck worker.
pub(crate) const INLINE_LIMIT: Duration = Duration::from_millis(10);

/// Who runs the netpoll loop (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// The netpoll thread polls a task on slot `slot`.
    Inline {
        slot: usize,
        /// When the poll began (the real clock; under loom, a model's
        /// threads decide the order alone).
        #[cfg(not(loom))]
        since: std::time::Instant,
    },
    StandIn,
    Back,
    /// The runtime shut down: the watchdog exits.
    Closed,
}

/// The hand-shake between the netpoll thread and its watchdog.
pub(crate) struct Watch {
    state: Mutex<State>,
    /// Whether the timer is armed: read and written only under `state`'s
    /// lock (an atomic so that `Watch` stays `Sync` without a second lock).
    armed: AtomicBool,
    /// The netpoll thread waits here for the loop to be handed back.
    handed_back: Condvar,
    /// The watchdog's alarm: armed and disarmed under the lock, together
    /// with the state it is for, so that a disarm at the end of a poll can
    /// never undo the shutdown's firing of it.
    timer: Timer,
}

/// The watchdog's one-shot timer.
#[cfg(not(loom))]
type Timer = super::sys::TimerFd;

/// The timer in a model, which has no clock: the inline limit never runs
/// out (a model thread that calls [`Watch::take_over`] stands for that),
/// a shorter time (the shutdown's nanosecond) runs out at once, and, as
/// with `timerfd_settime(2)`, arming or disarming drops an expiry that
/// [`wait`](Timer::wait) has not taken yet.
#[cfg(loom)]
struct Timer {
    fired: Mutex<bool>,
    cv: Condvar,
}

#[cfg(loom)]
impl Timer {
    fn new() -> Timer {
        Timer {
            fired: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    fn set(&self, after: Option<Duration>) {
        let fire = after.is_some_and(|d| d < INLINE_LIMIT);
        *self.fired.lock() = fire;
        if fire {
            self.cv.notify_one();
        }
    }

    fn wait(&self) {
        let mut fired = self.fired.lock();
        while !*fired {
            fired = self.cv.wait(fired);
        }
        *fired = false;
    }
}

/// How an inline poll ended, for the netpoll thread.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Nobody stood in: the thread goes on (and disarms the timer).
    InTime,
    /// The watchdog runs the loop: the thread must wake it
    /// ([`Netpoller::wake`](super::Netpoller::wake)) and then wait in
    /// [`Watch::wait_handed_back`].
    StandingIn,
}

impl Watch {
    pub(crate) fn new() -> std::io::Result<Watch> {
        #[cfg(not(loom))]
        let timer = super::sys::TimerFd::new()?;
        #[cfg(loom)]
        let timer = Timer::new();
        Ok(Watch {
            state: Mutex::new(State::Idle),
            armed: AtomicBool::new(false),
            handed_back: Condvar::new(),
            timer,
        })
    }

    /// The netpoll thread begins an inline run (a task, the LIFO chain
    /// after it, what its looks find) on slot `slot`, whose first poll has
    /// begun: arms the watchdog's timer, once for the whole run, unless it
    /// is still armed from an earlier run (see [`settle`](Self::settle)).
    /// `since` is when the run began.
    #[cfg_attr(loom, allow(unused_variables))]
    pub(crate) fn begin(&self, slot: usize, since: std::time::Instant) {
        let mut state = self.state.lock();
        if *state == State::Idle {
            *state = State::Inline {
                slot,
                #[cfg(not(loom))]
                since,
            };
            // Relaxed: under the lock.
            if !self.armed.swap(true, Ordering::Relaxed) {
                self.timer.set(Some(INLINE_LIMIT));
            }
        }
    }

    /// The netpoll thread is about to sleep after a quiet spell, and the
    /// next sleep may outlast [`INLINE_LIMIT`] (see
    /// [`prime`](Self::prime) for when it is likely not to): disarms a
    /// timer left armed by the last run, so the watchdog is not
    /// woken for nothing. Runs in a row keep it armed instead (`end`
    /// leaves it), and a run then costs no syscall: the watchdog, woken at
    /// most once per [`INLINE_LIMIT`] while they last, re-arms it for a
    /// run that began since, and leaves it disarmed after the last.
    pub(crate) fn settle(&self) {
        let state = self.state.lock();
        // Relaxed: under the lock.
        if *state == State::Idle && self.armed.swap(false, Ordering::Relaxed) {
            self.timer.set(None);
        }
    }

    /// The netpoll thread is about to sleep, and its sleeps have been
    /// spaced as steady sparse requests come (longer than a ping-pong's,
    /// and for a while all shorter than [`INLINE_LIMIT`]): arms the timer
    /// afresh, for the limit from
    /// now. The next run, likely to begin before it fires, then finds it
    /// armed and pays no syscall on the request's path; the syscall is
    /// paid here, where the thread would be asleep anyway. The timer then
    /// fires only for a sleep that outlasts the limit (once: the watchdog
    /// finds no run and leaves it disarmed), or for a run that began late
    /// in the sleep (the watchdog re-arms it for the rest of that run's
    /// time, see [`take_over`](Self::take_over)): either way no run goes
    /// unwatched past the limit. Under the lock, as every arming is: it
    /// must not undo the shutdown's firing of the timer.
    pub(crate) fn prime(&self) {
        let state = self.state.lock();
        if *state == State::Idle {
            // Relaxed: under the lock.
            self.armed.store(true, Ordering::Relaxed);
            self.timer.set(Some(INLINE_LIMIT));
        }
    }

    /// The netpoll thread has begun the next poll of its run (the slot's
    /// sequence is odd again): `false` if the watchdog stood in meanwhile,
    /// and the thread must end that poll without running the task. The
    /// lock orders the two: a take-over after this look sees the poll
    /// begun, and retakes it (see [`take_over`](Self::take_over)); one
    /// before it may have seen the slot between polls, with nothing to
    /// retake, and this look tells the thread so.
    pub(crate) fn next(&self) -> bool {
        matches!(*self.state.lock(), State::Inline { .. })
    }

    /// The netpoll thread's run ended (the timer stays armed, see
    /// [`settle`](Self::settle)), or the thread learns that the watchdog
    /// stands in.
    pub(crate) fn end(&self) -> End {
        let mut state = self.state.lock();
        match *state {
            State::StandIn => {
                *state = State::Back;
                End::StandingIn
            }
            State::Inline { .. } => {
                *state = State::Idle;
                End::InTime
            }
            // Closed (the stand-in, if any, has left), or handed back.
            _ => End::InTime,
        }
    }

    /// The watchdog sleeps until its timer fires (armed by an inline poll
    /// that lasted too long, or by the shutdown).
    pub(crate) fn sleep(&self) {
        self.timer.wait();
    }

    /// The netpoll thread, after [`End::StandingIn`] and a wake-up of the
    /// stand-in, waits until it has left the loop.
    pub(crate) fn wait_handed_back(&self) {
        let mut state = self.state.lock();
        while *state == State::Back {
            state = self.handed_back.wait(state);
        }
    }

    /// The watchdog's timer fired: takes over the loop if an inline run
    /// has lasted [`INLINE_LIMIT`]. Returns its slot, whose current poll
    /// the caller retakes (a slot between two polls has none: the thread
    /// then learns from [`next`](Self::next) not to start another). (A timer
    /// that fired for a poll that ended just then may find the next one
    /// already begun: it is armed again for the rest of that one's time.)
    pub(crate) fn take_over(&self) -> Option<usize> {
        let mut state = self.state.lock();
        // The one-shot timer has fired. Relaxed: under the lock.
        self.armed.store(false, Ordering::Relaxed);
        match *state {
            #[cfg(not(loom))]
            State::Inline { since, .. } if since.elapsed() < INLINE_LIMIT => {
                self.armed.store(true, Ordering::Relaxed);
                self.timer
                    .set(Some(INLINE_LIMIT.saturating_sub(since.elapsed())));
                None
            }
            State::Inline { slot, .. } => {
                *state = State::StandIn;
                Some(slot)
            }
            _ => None,
        }
    }

    /// `true` once the stand-in should leave the loop: the netpoll thread
    /// is back, or the runtime shut down.
    pub(crate) fn stand_in_done(&self) -> bool {
        matches!(*self.state.lock(), State::Back | State::Closed)
    }

    /// The stand-in has left the loop: gives it back to the netpoll thread.
    pub(crate) fn hand_back(&self) {
        let mut state = self.state.lock();
        if *state != State::Closed {
            *state = State::Idle;
        }
        drop(state);
        self.handed_back.notify_one();
    }

    /// The runtime shuts down: the watchdog exits at its next look (its
    /// timer fires now, so a sleeping one looks), and a netpoll thread
    /// waiting for the hand-back stops waiting.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        *state = State::Closed;
        self.armed.store(true, Ordering::Relaxed);
        self.timer.set(Some(Duration::from_nanos(1)));
        drop(state);
        self.handed_back.notify_one();
    }

    /// `true` if no inline run is under way: nobody polls a task on the
    /// netpoll thread, and no stand-in runs the loop for it.
    pub(crate) fn is_idle(&self) -> bool {
        *self.state.lock() == State::Idle
    }

    /// `true` once [`close`](Self::close) ran.
    pub(crate) fn is_closed(&self) -> bool {
        *self.state.lock() == State::Closed
    }

    /// The seeded bug of a model: a `next` that does not look, so the
    /// netpoll thread runs the next poll of its run although the watchdog
    /// stood in between two polls and had nothing to retake.
    #[cfg(all(test, loom))]
    pub(crate) fn next_without_looking_for_test(&self) -> bool {
        true
    }

    /// The seeded bug of the model: an `end` that lets the netpoll thread
    /// go on at once although the stand-in still runs the loop.
    #[cfg(all(test, loom))]
    pub(crate) fn end_without_waiting_for_test(&self) -> End {
        *self.state.lock() = State::Idle;
        End::InTime
    }

    /// A seeded bug of the models: a [`prime`](Self::prime) that arms
    /// the timer whatever the state, and so undoes the shutdown's firing
    /// of it.
    #[cfg(all(test, loom))]
    pub(crate) fn prime_whatever_the_state_for_test(&self) {
        let _state = self.state.lock();
        self.armed.store(true, Ordering::Relaxed);
        self.timer.set(Some(INLINE_LIMIT));
    }

    /// The first `end`, a seeded bug of the models: the netpoll thread
    /// disarmed the timer after an `InTime` end, outside the lock, and so
    /// could undo the shutdown's firing of it.
    #[cfg(all(test, loom))]
    pub(crate) fn end_disarming_outside_the_lock_for_test(&self) -> End {
        let end = self.end();
        if end == End::InTime {
            self.timer.set(None);
        }
        end
    }
}
