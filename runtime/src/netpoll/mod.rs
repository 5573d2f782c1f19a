//! The netpoller: one thread, one epoll instance, one wake eventfd.
//!
//! Each runtime has one netpoll thread. It owns the runtime's epoll
//! instance: it alone *blocks* in `epoll_wait`, with a timeout equal to the
//! nearest timer deadline. Each time it wakes it:
//!
//! 1. turns every epoll event into readiness on the descriptor's
//!    [`PollDesc`] halves (`EPOLLIN`/`EPOLLRDHUP` the read half, `EPOLLOUT`
//!    the write half, `EPOLLERR`/`EPOLLHUP` both), collecting the wakers of
//!    the tasks waiting there ([`Netpoller::poll`], the one place epoll is
//!    read);
//! 2. fires every expired timer: sleeps add their wakers, socket deadlines
//!    time out their half and add its wakers;
//! 3. hands the whole batch to the scheduler at once
//!    ([`PollHost::deliver`]), which gives the first task straight to one
//!    parked worker and queues the rest; or, if every worker is parked,
//!    polls the first task itself, as Go's poller does, and hands on the
//!    rest ([`PollHost::run_inline`]): a request that reaches an idle
//!    runtime then wakes one thread, not two. A watchdog thread stands in
//!    for it if that poll blocks (see [`watch`]).
//!
//! # Blocking and standby
//!
//! A thread blocked in `epoll_wait` is woken by the kernel for *every* new
//! event, from inside the `send` of whoever made the socket ready. While the
//! workers are busy that is pure overhead — a context switch per message on
//! a loopback ping-pong, measured at a quarter of all cycles — because a
//! busy worker could have found the event itself. So, as Go's scheduler
//! does with `netpoll(0)` in `findrunnable`, busy workers take a
//! non-blocking look ([`Netpoller::poll_now`]) when they run out of local
//! work and every 61 ticks, and the netpoll thread has two ways to sleep:
//!
//! * **blocking** in `epoll_wait`, while every worker is parked (an idle
//!   runtime: no CPU, no wake-ups) or the load is light;
//! * **standby** on a condition variable, once it has been woken by events
//!   that a running worker could have picked up. It then wakes only for
//!   timers and for a periodic check (like Go's `sysmon`): if no worker has
//!   looked since the last check, it looks itself, so a worker stuck in a
//!   long computation cannot hide I/O from the others for more than
//!   [`STANDBY_TICK_PARTIAL`]. The last worker to park sends it back to
//!   blocking.
//!
//! The hand-off between the two is the state machine of [`mode`]; its
//! invariant is that never is every worker parked while the thread stands
//! by.
//!
//! A thread that blocked while every worker was parked has no timeout
//! (nothing runs that the monitor of stuck workers could need to look
//! at). The first worker woken from outside meanwhile (a spawn from
//! `block_on`) arms the *watch timer*, a `timerfd` in the same epoll set,
//! for [`WATCH_TICK`]: the thread looks at the running worker within a
//! tick, as it would had it seen it before it slept, and is not woken any
//! sooner. (Waking it at once cost every spawn that ends an idle spell a
//! second thread's wake-up.)
//!
//! # Registration
//!
//! Descriptors are registered once, for both directions, edge-triggered
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`), and never re-armed; the
//! epoll user data is a generation-checked token ([`registry`]).
//!
//! # Failures
//!
//! Nothing on the netpoll thread or a worker may die of a syscall error or
//! of a foreign waker's panic: an `epoll_wait` error is reported on stderr
//! and retried after a pause, and a waker that panics is reported and
//! skipped ([`wake_all`]); the other wakers of the batch still run.

mod half;
mod mode;
mod poll_desc;
mod registry;
pub(crate) mod sys;
mod thread;
mod wake;
mod watch;

pub(crate) use thread::Hook;

use std::io;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::loom::{AtomicBool, AtomicU64, Mutex, Ordering};
use crate::time::driver::{TimeDriver, Unpark};

#[cfg(all(test, loom))]
mod loom_tests;
pub use poll_desc::{Direction, PdInner, PollDesc, ReadyEvent};

/// Token of the wake eventfd; no registration can have it (generation 0 is
/// never handed out).
const WAKE_TOKEN: u64 = 0;
/// Token of the watch timer (generation 0 too).
const WATCH_TOKEN: u64 = 1;
/// Events fetched per `epoll_wait`.
const EVENTS: usize = 1024;
/// Standby check interval while some worker is parked.
pub(crate) const STANDBY_TICK_PARTIAL: Duration = Duration::from_millis(1);
/// Standby check interval while every worker is running.
const STANDBY_TICK_ALL: Duration = Duration::from_millis(10);
/// After waking a worker, how soon the thread looks again at the latest
/// (the scheduler's monitor of stuck workers wants a look this often while
/// any worker runs; its own threshold is the same 10 ms).
const WATCH_TICK: Duration = Duration::from_millis(10);

/// Who looks at the epoll instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Looker {
    /// The netpoll thread.
    Thread,
    /// A worker, while the thread stands by ([`Netpoller::poll_now`]).
    Worker,
}

impl Looker {
    /// Whether this look drains the wake eventfd when it finds it
    /// readable. The eventfd is the netpoll thread's: a wake-up written to
    /// it is meant for the thread's `epoll_wait`. A worker's look may come
    /// just after the thread left standby for `epoll_wait` (it read the
    /// standby flag a moment before, and no ordering of that read can
    /// close the gap between the read and the look); draining there would
    /// swallow the wake-up, and the thread would sleep on to its timeout.
    /// So a worker leaves the byte (the eventfd is level-triggered: the
    /// thread's next `epoll_wait` returns at once), at the cost of seeing
    /// it again in its next looks until the thread drains it. The loom
    /// model `a_worker_look_never_swallows_the_threads_wake_up` checks it,
    /// beside the seeded draining version.
    #[inline]
    pub(crate) fn drains_wake(self) -> bool {
        self == Looker::Thread
    }
}

/// What the netpoll thread needs from the scheduler it serves.
pub(crate) trait PollHost {
    /// Workers not parked.
    fn active_workers(&self) -> usize;
    /// All workers.
    fn num_workers(&self) -> usize;
    /// Schedules the tasks of `wakers` as one batch, draining it.
    fn deliver(&self, wakers: &mut Vec<Waker>);
    /// Looks for workers stuck inside one poll (the thread is the
    /// scheduler's `sysmon`); returns when to look again, `None` if no
    /// worker is running a poll.
    fn check_blocked(&self, now: Instant) -> Option<Instant>;
    /// `true` if every task is blocked: nothing runs or is queued, on the
    /// workers, in `block_on`, or on the blocking pool. Decides when a
    /// paused clock may jump.
    fn is_idle(&self) -> bool;
    /// Every worker is parked: wakes the batch's tasks, hands all but the
    /// first to the workers as [`deliver`](Self::deliver) would, and polls
    /// the first on this thread, on a spare slot, then the LIFO chain after
    /// it and what looks at epoll make ready (see [`InlineStep::Look`]),
    /// calling `step` at each [`InlineStep`]. Drains `wakers`. (With no
    /// task in the batch, or no spare slot, it delivers the batch and calls
    /// `step` never.)
    fn run_inline(&self, wakers: &mut Vec<Waker>, step: &mut dyn FnMut(InlineStep) -> bool);
    /// The watchdog stands in for a netpoll thread stuck in its inline
    /// poll on slot `slot`: retakes the slot, so its queued tasks go to
    /// the workers and the thread leaves it when the poll returns.
    fn retake_inline(&self, slot: usize);
}

/// The moments of an inline run that the netpoll thread's watchdog must
/// know of ([`PollHost::run_inline`]); the step's answer matters for
/// `Next` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InlineStep {
    /// The run's first poll, on spare slot `slot`, has begun.
    Begin { slot: usize },
    /// A later poll of the run has begun: run the task only if the answer
    /// is `true` (the watchdog has not stood in; see `Watch::next`).
    Next,
    /// The run's polls so far are done, and the LIFO slot is empty: take
    /// a non-blocking look at epoll for more, as a busy worker does, if
    /// the run may go on. The tasks the look makes ready are woken on
    /// this thread, into the run's slot; `true` if the look was taken and
    /// found any.
    Look,
    /// The run's last poll returned.
    End,
}

/// What running tasks on the netpoll thread takes: the watchdog's
/// hand-shake, with its timer.
struct Inline {
    watch: watch::Watch,
}

pub(crate) struct Netpoller {
    epoll: sys::Epoll,
    wake_fd: sys::EventFd,
    /// Ends a sleep of the thread that began with every worker parked,
    /// a watch tick after a worker started running meanwhile (see
    /// [`mode::ModeMachine::worker_unparked`]).
    watch_timer: sys::TimerFd,
    /// Set while a wake-up byte is outstanding.
    wake_sig: wake::WakeSignal,
    registry: Mutex<registry::Registry>,
    /// The runtime's timers, which this thread fires.
    pub(crate) time: Arc<TimeDriver>,
    shutdown: AtomicBool,
    /// Set if the thread polls the first task of a batch itself at an
    /// idle runtime (see [`watch`]).
    inline: Option<Inline>,
    /// The runtime layer's periodic work (see [`Hook`]), called by
    /// whichever thread runs the loop: the netpoll thread, or the watchdog
    /// standing in for it (a dump asked for while a task blocks the
    /// netpoll thread is written all the same).
    hook: parking_lot::Mutex<Option<Hook>>,
    /// Blocking, standby or awake; see [`mode`].
    mode: mode::ModeMachine,
    /// Event buffer for the workers' looks; its lock also lets only one
    /// worker look at a time.
    worker_events: Mutex<Vec<sys::Event>>,
    /// When a worker last looked, in nanoseconds since `epoch`.
    last_worker_poll: AtomicU64,
    epoch: Instant,
    /// The netpoll thread's counters (it is their one writer).
    pub(crate) stats: NetpollStats,
}

/// What the netpoll thread counts.
#[derive(Default, Debug)]
pub(crate) struct NetpollStats {
    /// Times it woke from a sleep (blocking or standing by).
    pub(crate) wakeups: crate::counter::Counter,
    /// Its own looks at the epoll instance (blocking or not).
    pub(crate) polls: crate::counter::Counter,
    /// Events those looks found.
    pub(crate) events: crate::counter::Counter,
    /// Nanoseconds spent standing by.
    pub(crate) standby_ns: crate::counter::Counter,
    /// Tasks the netpoll thread polled itself.
    pub(crate) inline_polls: crate::counter::Counter,
    /// Looks at the epoll instance its inline runs took of their own
    /// (apart from `polls`, which a stand-in writes too while the thread
    /// is inside a run).
    pub(crate) inline_looks: crate::counter::Counter,
    /// Events those looks found.
    pub(crate) inline_look_events: crate::counter::Counter,
    /// Times the watchdog stood in for a netpoll thread stuck in a task.
    pub(crate) stand_ins: crate::counter::Counter,
}

impl Netpoller {
    pub(crate) fn new(inline: bool) -> io::Result<Arc<Netpoller>> {
        let epoll = sys::Epoll::new()?;
        let wake_fd = sys::EventFd::new()?;
        epoll.add_level(wake_fd.raw(), WAKE_TOKEN)?;
        let watch_timer = sys::TimerFd::new_nonblocking()?;
        epoll.add_level(watch_timer.raw(), WATCH_TOKEN)?;
        let inline = match inline {
            true => Some(Inline {
                watch: watch::Watch::new()?,
            }),
            false => None,
        };
        Ok(Arc::new_cyclic(|me: &std::sync::Weak<Netpoller>| {
            Netpoller {
                epoll,
                wake_fd,
                watch_timer,
                wake_sig: wake::WakeSignal::new(),
                registry: Mutex::new(registry::Registry::default()),
                time: Arc::new(TimeDriver::new(me.clone() as std::sync::Weak<dyn Unpark>)),
                shutdown: AtomicBool::new(false),
                inline,
                hook: parking_lot::Mutex::new(None),
                mode: mode::ModeMachine::new(),
                worker_events: Mutex::new(Vec::with_capacity(EVENTS)),
                last_worker_poll: AtomicU64::new(0),
                epoch: Instant::now(),
                stats: NetpollStats::default(),
            }
        }))
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Wakes the netpoll thread so it re-reads timers, mode and shutdown.
    pub(crate) fn wake(&self) {
        if self.mode.wake() == mode::Wake::Eventfd && self.wake_sig.raise() {
            // Whoever raises the flag writes the one outstanding byte.
            self.wake_fd.wake();
        }
    }

    /// Wakes the netpoll thread from a signal handler: one `write(2)` to
    /// the eventfd, which is async-signal-safe (a thread standing by sees
    /// it at its next tick).
    pub(crate) fn wake_from_signal_handler(&self) {
        self.wake_fd.wake();
    }

    /// `true` while the netpoll thread stands by, i.e. running workers are
    /// to look at epoll themselves.
    #[inline]
    pub(crate) fn workers_should_poll(&self) -> bool {
        self.mode.workers_should_poll()
    }

    /// A parked worker was woken by a thread other than the netpoll thread
    /// (see [`mode::ModeMachine::worker_unparked`]).
    #[inline]
    pub(crate) fn worker_unparked(&self) {
        if self.mode.worker_unparked() == mode::Wake::WatchTimer {
            self.watch_timer.set(Some(WATCH_TICK));
        }
    }

    /// A worker parks (after publishing it in `Idle`); `last` if no other
    /// worker is unparked. See [`mode::ModeMachine::worker_parked`].
    pub(crate) fn worker_parked(&self, last: bool) {
        self.mode.worker_parked(last);
        if crate::time::virtual_time::may_jump_after_park(&self.time, last) {
            self.wake();
        }
    }

    /// A worker's non-blocking look at the epoll instance, if the netpoll
    /// thread expects workers to look. Collects the wakers of what became
    /// ready; returns how many events it found, or `None` if no look was
    /// taken (not expected, or another worker is looking).
    pub(crate) fn poll_now(&self, wakers: &mut Vec<Waker>) -> Option<usize> {
        if !self.workers_should_poll() {
            return None;
        }
        let mut events = self.worker_events.try_lock()?;
        // Relaxed: a timestamp for the thread's "did anyone look" check;
        // a late view costs the thread one look of its own.
        self.last_worker_poll
            .store(self.now_nanos(), Ordering::Relaxed);
        // An error here is the netpoll thread's to report: its own wait
        // fails the same way.
        Some(
            self.poll(&mut events, Some(Duration::ZERO), wakers, Looker::Worker)
                .unwrap_or(0),
        )
    }

    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub(crate) fn register(&self, fd: RawFd) -> io::Result<Arc<PdInner>> {
        let mut registry = self.registry.lock();
        // Checked under the lock: `close_all` sets the flag, then closes
        // every registration under it.
        if self.is_shutdown() {
            return Err(io::Error::other("the runtime has shut down"));
        }
        registry.insert(|token| self.epoll.add(fd, token))
    }

    pub(crate) fn deregister(&self, pd: &Arc<PdInner>, fd: RawFd, wakers: &mut Vec<Waker>) {
        if self.registry.lock().remove(pd) {
            // ENOENT/EBADF after shutdown or a closed epoll are fine: the
            // descriptor is gone from the interest list either way.
            let _ = self.epoll.delete(fd);
        }
        pd.read.close(wakers);
        pd.write.close(wakers);
        for half in [&pd.read, &pd.write] {
            if let Some(key) = half.take_timer() {
                self.time.remove(key);
            }
        }
    }

    /// Number of registered descriptors.
    pub(crate) fn registered(&self) -> usize {
        self.registry.lock().len()
    }

    /// Waits for events (`Some(ZERO)`: just looks) and turns them into
    /// readiness, collecting the wakers of waiting tasks. Returns how many
    /// events there were on registered descriptors (the wake eventfd's not
    /// counted). The one place the epoll instance is read; `looker` says
    /// who reads it.
    fn poll(
        &self,
        events: &mut Vec<sys::Event>,
        timeout: Option<Duration>,
        wakers: &mut Vec<Waker>,
        looker: Looker,
    ) -> io::Result<usize> {
        self.epoll.wait(events, timeout)?;
        if events.is_empty() {
            return Ok(0);
        }
        let registry = self.registry.lock();
        let mut n = events.len();
        for ev in events.iter() {
            let (token, bits) = (ev.u64, ev.events as libc::c_int);
            if token == WAKE_TOKEN {
                if looker.drains_wake() {
                    self.wake_fd.drain();
                    self.wake_sig.lower();
                }
                n -= 1;
                continue;
            }
            if token == WATCH_TOKEN {
                // The thread's too, as the eventfd is: a worker's look
                // leaves it for the thread's `epoll_wait`.
                if looker.drains_wake() {
                    self.watch_timer.drain();
                }
                n -= 1;
                continue;
            }
            // A stale event for a descriptor closed since finds no match.
            let Some(pd) = registry.get(token) else {
                continue;
            };
            let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            // Urgent data ends a read at its mark, short of what the edge
            // brought: as after a hang-up, a short read no longer proves
            // the queue drained (the half's `HUP` flag).
            let read_hup = err || bits & (libc::EPOLLRDHUP | libc::EPOLLPRI) != 0;
            if read_hup || bits & libc::EPOLLIN != 0 {
                pd.read.notify(read_hup, wakers);
            }
            if err || bits & libc::EPOLLOUT != 0 {
                pd.write.notify(err, wakers);
            }
        }
        Ok(n)
    }

    /// Runtime shutdown: fails every registered descriptor and fires every
    /// timer, so nothing that outlives the runtime waits forever.
    pub(crate) fn close_all(&self, wakers: &mut Vec<Waker>) {
        let pds = {
            let registry = self.registry.lock();
            self.shutdown.store(true, Ordering::Release);
            registry.all()
        };
        for pd in pds {
            pd.read.close(wakers);
            pd.write.close(wakers);
        }
        self.time.lock().close(wakers);
        if let Some(inline) = &self.inline {
            inline.watch.close();
        }
        self.wake();
    }
}

impl Unpark for Netpoller {
    /// A timer earlier than the one the thread sleeps for was added.
    fn unpark(&self) {
        self.wake();
    }
}

/// Wakes every waker of `wakers`, draining it. A waker that panics (a
/// foreign one: gopark's own never do) is reported and skipped, so the
/// thread that delivers — the netpoll thread, a worker — lives on and the
/// rest of the batch is still woken.
pub(crate) fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| waker.wake())) {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a non-string payload");
            eprintln!("gopark: a waker panicked while being woken ({what}); skipped it");
        }
    }
}
