//! Who watches the epoll instance: the netpoll thread's mode.
//!
//! The netpoll thread sleeps in one of two ways (see the module docs of
//! [`netpoll`](super)):
//!
//! | mode | the thread | the epoll instance is watched by | woken by |
//! |---|---|---|---|
//! | `Blocking` | sleeps in `epoll_wait` until the nearest timer | the thread | events, the eventfd |
//! | `Standby` | sleeps on a condition variable for a tick | the running workers (`epoll_wait(0)`) | the tick, the condvar |
//! | `Awake` | runs its loop | nobody for the moment | — (it checks `pending` before it sleeps) |
//!
//! # The invariant
//!
//! **Never is every worker parked while the thread stands by**: a parked
//! worker looks at nothing, so I/O would wait for the thread's next tick.
//! Two transitions race over it:
//!
//! * the thread enters `Standby` only after it counted the unparked
//!   workers and found some ([`ModeMachine::stand_by`]);
//! * the last worker to park tells a standing-by thread to go back to
//!   `Blocking` ([`ModeMachine::worker_parked`]).
//!
//! Both decide under one lock, and the worker publishes its park (the
//! count in `Idle`) *before* it takes that lock. So either the thread's
//! critical section comes first, and the worker then sees `Standby` and
//! wakes it; or the worker's comes first, and the thread then counts zero
//! unparked workers and does not stand by. The loom models in
//! `loom_tests.rs` check this under every interleaving, beside a seeded
//! version of the bug this design replaces (a worker that read the mode
//! without the lock, while the thread counted workers before taking it).
//!
//! # Waking the thread
//!
//! [`ModeMachine::wake`] sets `pending` under the lock and says what else
//! to do: write the eventfd if the thread blocks in `epoll_wait`, nothing
//! if it is awake (it takes `pending` before it sleeps again); a standing-by
//! thread is notified here. So a wake-up is never lost, whichever mode the
//! thread is about to enter.
//!
//! The eventfd byte is the thread's alone: a worker's look at epoll, which
//! may come just after the thread left standby for `epoll_wait` (the
//! worker read the standby flag a moment earlier), leaves it in place
//! (`Looker::drains_wake`). The loom model
//! `a_worker_look_never_swallows_the_threads_wake_up` checks it, beside
//! the seeded draining look that loses the wake-up.

use std::time::Instant;

use crate::loom::{AtomicBool, Condvar, Mutex, Ordering};

/// What the netpoll thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Running its loop.
    Awake,
    /// Asleep in `epoll_wait`.
    Blocking,
    /// Asleep on the condition variable; workers look at epoll.
    /// `long_tick`: it saw every worker running, and sleeps for the long
    /// tick.
    Standby { long_tick: bool },
}

struct Ctl {
    mode: Mode,
    /// A wake-up arrived that the thread has not acted on yet.
    pending: bool,
}

/// The mode, and the lock and condition variable that change it.
pub(crate) struct ModeMachine {
    /// `true` exactly while `ctl.mode` is `Standby`: the lock-free copy
    /// that workers read before each look at epoll.
    standby: AtomicBool,
    /// `true` while the thread blocks for longer than a look at the
    /// workers takes (a far timer, or none): nothing ran when it went to
    /// sleep, so it watches no worker (see
    /// [`ModeMachine::worker_unparked`]).
    unbounded: AtomicBool,
    ctl: Mutex<Ctl>,
    cvar: Condvar,
}

/// What [`ModeMachine::begin_blocking`] allows.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Blocking {
    /// Block in `epoll_wait`, then call [`ModeMachine::end_blocking`].
    Sleep,
    /// As `Sleep`, but a worker started running since the thread chose to
    /// block with no timeout: block only until the next look at it.
    Watch,
    /// A wake-up is pending: do not sleep; run the loop again.
    Skip,
}

/// How [`ModeMachine::stand_by`] ended.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StandBy {
    /// The tick passed, or the thread was woken.
    Ended,
    /// Every worker is parked: block in `epoll_wait` instead.
    NoWorkers,
}

/// What the caller of [`ModeMachine::wake`] (or of
/// [`ModeMachine::worker_unparked`]) must do besides.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The thread blocks in `epoll_wait`: write the eventfd.
    Eventfd,
    /// The thread blocks in `epoll_wait` with no timeout, and a worker now
    /// runs: arm the watch timer, so that it looks at the worker within a
    /// watch tick (it needs no waking before that).
    WatchTimer,
    /// Nothing: the thread was notified, or is awake and will see the
    /// pending wake-up.
    Done,
}

impl ModeMachine {
    pub(crate) fn new() -> ModeMachine {
        ModeMachine {
            standby: AtomicBool::new(false),
            unbounded: AtomicBool::new(false),
            ctl: Mutex::new(Ctl {
                mode: Mode::Awake,
                pending: false,
            }),
            cvar: Condvar::new(),
        }
    }

    /// `true` while the thread stands by, i.e. running workers are to look
    /// at epoll themselves. A hint: read without the lock, it may be a
    /// moment late either way, which costs one look too many or too few,
    /// never a lost event (the thread looks itself after each tick in
    /// which no worker did), and never a lost wake-up of the thread: a
    /// look that comes after the thread went back to blocking leaves the
    /// wake eventfd to it (see `Looker::drains_wake`). No ordering of
    /// this load could do that instead: the thread may leave standby
    /// between the load and the look.
    #[inline]
    pub(crate) fn workers_should_poll(&self) -> bool {
        // Relaxed: a hint; nothing is published through it (see above).
        self.standby.load(Ordering::Relaxed)
    }

    /// The thread is about to block in `epoll_wait`, `unwatched` (for
    /// longer than a look at the workers takes). `all_parked()` counts the
    /// workers (as `Idle` does, `SeqCst`): with none running, the thread
    /// watches nobody while it blocks, and a worker woken meanwhile must
    /// wake it (see [`worker_unparked`](Self::worker_unparked)).
    pub(crate) fn begin_blocking(
        &self,
        unwatched: bool,
        all_parked: impl FnOnce() -> bool,
    ) -> Blocking {
        let mut ctl = self.ctl.lock();
        if std::mem::take(&mut ctl.pending) {
            return Blocking::Skip;
        }
        ctl.mode = Mode::Blocking;
        if unwatched {
            // SeqCst, store then load: the Dekker pair of `worker_unparked`
            // (which counts a worker unparked, then loads this). Either the
            // count is seen here, or this flag there.
            self.unbounded.store(true, Ordering::SeqCst);
            crate::loom::fence(Ordering::SeqCst);
            if !all_parked() {
                self.unbounded.store(false, Ordering::SeqCst);
                return Blocking::Watch;
            }
        }
        Blocking::Sleep
    }

    /// The thread returned from `epoll_wait`; every wake-up sent while it
    /// blocked is answered by this return.
    pub(crate) fn end_blocking(&self) {
        let mut ctl = self.ctl.lock();
        ctl.mode = Mode::Awake;
        ctl.pending = false;
        self.unbounded.store(false, Ordering::Relaxed);
    }

    /// Someone other than the netpoll thread woke a parked worker. A
    /// thread that blocks unwatched (a far timer, or none) sees no running
    /// worker, and the monitor of stuck workers needs it to look within a
    /// watch tick: the caller arms the watch timer ([`Wake::WatchTimer`]),
    /// once per such sleep. Nothing needs the thread sooner, so it is not
    /// woken: a spawn that ends an idle spell costs one `timerfd_settime`,
    /// not a second thread's wake-up. Costs a fence and a load otherwise.
    ///
    /// Call it after the worker was counted as unparked.
    pub(crate) fn worker_unparked(&self) -> Wake {
        // SeqCst fence: see `begin_blocking`; the count was raised before.
        crate::loom::fence(Ordering::SeqCst);
        if !self.unbounded.load(Ordering::SeqCst) {
            return Wake::Done;
        }
        let ctl = self.ctl.lock();
        if ctl.mode == Mode::Blocking && self.unbounded.load(Ordering::SeqCst) {
            // One arming per unwatched sleep: the next worker woken sees
            // the flag clear and pays nothing.
            self.unbounded.store(false, Ordering::SeqCst);
            return Wake::WatchTimer;
        }
        Wake::Done
    }

    /// Stands by until `until`, a wake-up, or the last worker parking —
    /// unless `unparked()` (the number of unparked workers, read under the
    /// lock) is zero.
    pub(crate) fn stand_by(
        &self,
        unparked: impl FnOnce() -> usize,
        until: Instant,
        long_tick: bool,
    ) -> StandBy {
        let mut ctl = self.ctl.lock();
        if std::mem::take(&mut ctl.pending) {
            return StandBy::Ended;
        }
        // Under the lock `worker_parked` takes, after the worker published
        // its park: see the module docs.
        if unparked() == 0 {
            return StandBy::NoWorkers;
        }
        ctl.mode = Mode::Standby { long_tick };
        // Relaxed: a hint for workers (see `workers_should_poll`).
        self.standby.store(true, Ordering::Relaxed);
        while !ctl.pending {
            ctl = self.cvar.wait_until(ctl, until);
            #[cfg(not(loom))]
            if Instant::now() >= until {
                break;
            }
        }
        ctl.pending = false;
        ctl.mode = Mode::Awake;
        self.standby.store(false, Ordering::Relaxed);
        StandBy::Ended
    }

    /// Asks the thread to run its loop again (a timer earlier than the one
    /// it sleeps for, shutdown).
    pub(crate) fn wake(&self) -> Wake {
        let mut ctl = self.ctl.lock();
        ctl.pending = true;
        match ctl.mode {
            Mode::Blocking => Wake::Eventfd,
            Mode::Standby { .. } => {
                self.cvar.notify_one();
                Wake::Done
            }
            Mode::Awake => Wake::Done,
        }
    }

    /// A worker parks; `last` if no other worker is unparked. Call it after
    /// the park was published in `Idle`. A thread standing by goes back to
    /// blocking if this was the last worker (nobody else looks at epoll
    /// now), or re-arms with the short tick if it slept for the long one.
    pub(crate) fn worker_parked(&self, last: bool) {
        if !last && !self.workers_should_poll() {
            return;
        }
        let mut ctl = self.ctl.lock();
        if let Mode::Standby { long_tick } = ctl.mode {
            if last || long_tick {
                ctl.pending = true;
                self.cvar.notify_one();
            }
        }
    }

    /// The mode before this design: the worker reads the mode without the
    /// lock, so a thread that counted workers just before the last one
    /// parked stands by with nobody to end it. Kept for the model test
    /// that shows the model catches it.
    #[cfg(all(test, loom))]
    pub(crate) fn worker_parked_unlocked_for_test(&self, last: bool) {
        if !last || !self.workers_should_poll() {
            return;
        }
        let mut ctl = self.ctl.lock();
        ctl.pending = true;
        self.cvar.notify_one();
    }

    /// The matching half of the old design: the thread counts the workers
    /// before it takes the lock.
    #[cfg(all(test, loom))]
    pub(crate) fn stand_by_counting_first_for_test(&self, unparked: usize) -> StandBy {
        if unparked == 0 {
            return StandBy::NoWorkers;
        }
        let mut ctl = self.ctl.lock();
        if std::mem::take(&mut ctl.pending) {
            return StandBy::Ended;
        }
        ctl.mode = Mode::Standby { long_tick: false };
        self.standby.store(true, Ordering::Relaxed);
        while !ctl.pending {
            ctl = self.cvar.wait_until(ctl, Instant::now());
        }
        ctl.pending = false;
        ctl.mode = Mode::Awake;
        self.standby.store(false, Ordering::Relaxed);
        StandBy::Ended
    }

    /// A machine whose thread stands by, as [`stand_by`](Self::stand_by)
    /// leaves it while it waits (a model has no tick to wait for).
    #[cfg(all(test, loom))]
    pub(crate) fn standing_by_for_test() -> ModeMachine {
        let m = ModeMachine::new();
        m.ctl.lock().mode = Mode::Standby { long_tick: false };
        m.standby.store(true, Ordering::Relaxed);
        m
    }

    /// The end of [`stand_by`](Self::stand_by) after its tick passed.
    #[cfg(all(test, loom))]
    pub(crate) fn tick_ends_standby_for_test(&self) {
        let mut ctl = self.ctl.lock();
        ctl.pending = false;
        ctl.mode = Mode::Awake;
        self.standby.store(false, Ordering::Relaxed);
    }
}
