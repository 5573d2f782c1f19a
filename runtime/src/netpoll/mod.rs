//! The netpoller: one thread, one epoll instance, one wake pipe.
//!
//! Each runtime has one netpoll thread. It owns the runtime's epoll
//! instance: it alone *blocks* in `epoll_wait`, with a timeout equal to the
//! nearest timer deadline, and it never polls a future. Each time it wakes
//! it:
//!
//! 1. turns every epoll event into readiness on the descriptor's
//!    [`PollDesc`] halves (`EPOLLIN`/`EPOLLRDHUP` the read half, `EPOLLOUT`
//!    the write half, `EPOLLERR`/`EPOLLHUP` both), collecting the wakers of
//!    the tasks waiting there;
//! 2. fires every expired timer: sleeps add their wakers, socket deadlines
//!    time out their half and add its wakers;
//! 3. hands the whole batch to the scheduler at once, which pushes the tasks
//!    to its injector and then wakes at most one parked worker.
//!
//! # Blocking and standby
//!
//! A thread blocked in `epoll_wait` is woken by the kernel for *every* new
//! event, from inside the `send` of whoever made the socket ready. While the
//! workers are busy that is pure overhead — a context switch per message on
//! a loopback ping-pong, measured at a quarter of all cycles — because a
//! busy worker could have found the event itself. So, as Go's scheduler
//! does with `netpoll(0)` in `findrunnable`, busy workers take a
//! non-blocking look (`epoll_wait` with a zero timeout) when they run out of
//! local work and every 61 ticks, and the netpoll thread has two ways to
//! sleep:
//!
//! * **blocking** in `epoll_wait`, while every worker is parked (an idle
//!   runtime: no CPU, no wake-ups) or the load is light;
//! * **standby** on a condition variable, once it has been woken by events
//!   that a running worker could have picked up. It then wakes only for
//!   timers and for a periodic check (like Go's `sysmon`): if no worker has
//!   polled since the last check, it polls itself, so a worker stuck in a
//!   long computation cannot hide I/O from the others for more than
//!   [`STANDBY_TICK_PARTIAL`]. The last worker to park wakes it back into
//!   blocking mode.
//!
//! Descriptors are registered once, for both directions, edge-triggered
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`), and never re-armed. The
//! epoll user data is a token: slab index in the low 32 bits, a generation
//! in the high 32. An event whose generation does not match the slot's (the
//! descriptor was closed, and maybe its number and slot reused) is dropped.
//!
//! Anyone who needs the thread awake early — a timer earlier than the one it
//! sleeps for, shutdown, the last worker parking — calls
//! [`Netpoller::wake`]: in blocking mode that writes the eventfd, and an
//! atomic flag keeps at most one such write outstanding (Go's
//! `netpollWakeSig`); in standby it signals the condition variable.

mod poll_desc;
pub(crate) mod sys;
mod wake;

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::Condvar;
use slab::Slab;

use crate::loom::{AtomicBool, Mutex, Ordering};
use crate::time::heap::{Expired, Timers};

#[cfg(all(test, loom))]
mod loom_tests;
pub use poll_desc::{Direction, PdInner, PollDesc, ReadyEvent};

/// Token of the wake eventfd; no registration can have it (generation 0 is
/// never handed out).
const WAKE_TOKEN: u64 = u64::MAX;
/// Events fetched per `epoll_wait`.
const EVENTS: usize = 1024;
/// Standby check interval while some worker is parked.
pub(crate) const STANDBY_TICK_PARTIAL: Duration = Duration::from_millis(1);
/// Standby check interval while every worker is running.
const STANDBY_TICK_ALL: Duration = Duration::from_millis(10);

/// What the netpoll thread is doing.
const RUNNING: u8 = 0;
const BLOCKING: u8 = 1;
const STANDBY: u8 = 2;

/// What the netpoll thread needs from the scheduler it serves.
pub(crate) trait PollHost {
    /// Workers not parked.
    fn active_workers(&self) -> usize;
    /// All workers.
    fn num_workers(&self) -> usize;
    /// Schedules the tasks of `wakers` as one batch, draining it.
    fn deliver(&self, wakers: &mut Vec<Waker>);
}

struct Registry {
    slots: Slab<Arc<PdInner>>,
    next_gen: u32,
}

pub(crate) struct Netpoller {
    epoll: sys::Epoll,
    wake_fd: sys::EventFd,
    /// Set while a wake-up byte is outstanding.
    wake_sig: wake::WakeSignal,
    registry: Mutex<Registry>,
    pub(crate) timers: Mutex<Timers>,
    shutdown: AtomicBool,
    /// `RUNNING`, `BLOCKING` or `STANDBY`; changed under `ctl`.
    mode: AtomicU8,
    /// Set while standing by with the long tick (every worker was running).
    long_tick: AtomicBool,
    /// Guards mode changes against `wake`: `true` if a wake-up arrived that
    /// the thread has not acted on yet.
    ctl: parking_lot::Mutex<bool>,
    standby: Condvar,
    /// Event buffer for the workers' non-blocking polls; its lock also lets
    /// only one worker poll at a time.
    worker_events: parking_lot::Mutex<Vec<sys::Event>>,
    /// When a worker last polled, in nanoseconds since `epoch`.
    last_worker_poll: AtomicU64,
    epoch: Instant,
}

impl Netpoller {
    pub(crate) fn new() -> io::Result<Netpoller> {
        let epoll = sys::Epoll::new()?;
        let wake_fd = sys::EventFd::new()?;
        epoll.add_level(wake_fd.raw(), WAKE_TOKEN)?;
        Ok(Netpoller {
            epoll,
            wake_fd,
            wake_sig: wake::WakeSignal::new(),
            registry: Mutex::new(Registry {
                slots: Slab::new(),
                next_gen: 0,
            }),
            timers: Mutex::new(Timers::default()),
            shutdown: AtomicBool::new(false),
            mode: AtomicU8::new(RUNNING),
            long_tick: AtomicBool::new(false),
            ctl: parking_lot::Mutex::new(false),
            standby: Condvar::new(),
            worker_events: parking_lot::Mutex::new(Vec::with_capacity(EVENTS)),
            last_worker_poll: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Wakes the netpoll thread so it re-reads timers, mode and shutdown.
    pub(crate) fn wake(&self) {
        let mut pending = self.ctl.lock();
        *pending = true;
        match self.mode.load(Ordering::Relaxed) {
            // Whoever raises the flag writes the one outstanding byte.
            BLOCKING if self.wake_sig.raise() => self.wake_fd.wake(),
            STANDBY => {
                self.standby.notify_one();
            }
            // Running: it checks `pending` before it sleeps again.
            _ => {}
        }
    }

    /// Returns `true` while the netpoll thread is in standby, i.e. workers
    /// are expected to poll for themselves.
    #[inline]
    pub(crate) fn workers_should_poll(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == STANDBY
    }

    /// A worker is parking. If it was the last one running, the netpoll
    /// thread goes back to blocking in `epoll_wait`; if the netpoll thread
    /// stands by with the long tick (it saw every worker running), it
    /// re-arms with the short one, since a worker that parks no longer
    /// looks at the epoll instance and the others may be stuck in long
    /// polls.
    pub(crate) fn worker_parked(&self, last: bool) {
        if !self.workers_should_poll() {
            return;
        }
        if last || self.long_tick.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    /// A worker's non-blocking look at the epoll instance. Collects the
    /// wakers of what became ready; returns `false` if another worker is
    /// polling already.
    pub(crate) fn poll_now(&self, wakers: &mut Vec<Waker>) -> bool {
        let Some(mut events) = self.worker_events.try_lock() else {
            return false;
        };
        self.last_worker_poll
            .store(self.now_nanos(), Ordering::Relaxed);
        self.poll_events(&mut events, Some(Duration::ZERO));
        self.dispatch(&events, wakers);
        true
    }

    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub(crate) fn register(&self, fd: RawFd) -> io::Result<Arc<PdInner>> {
        let mut reg = self.registry.lock();
        // Checked under the lock: `close_all` sets the flag, then empties
        // the registry under it.
        if self.is_shutdown() {
            return Err(io::Error::other("the runtime has shut down"));
        }
        reg.next_gen = reg.next_gen.wrapping_add(1).max(1);
        let gen = reg.next_gen;
        let entry = reg.slots.vacant_entry();
        let idx = entry.key();
        let token = (u64::from(gen) << 32) | idx as u64;
        let inner = Arc::new(PdInner {
            token,
            read: poll_desc::Half::new(),
            write: poll_desc::Half::new(),
        });
        self.epoll.add(fd, token)?;
        entry.insert(inner.clone());
        Ok(inner)
    }

    pub(crate) fn deregister(&self, pd: &Arc<PdInner>, fd: RawFd, wakers: &mut Vec<Waker>) {
        {
            let mut registry = self.registry.lock();
            let idx = (pd.token & 0xFFFF_FFFF) as usize;
            if registry.slots.get(idx).is_some_and(|p| Arc::ptr_eq(p, pd)) {
                registry.slots.remove(idx);
                // ENOENT/EBADF after shutdown or a closed epoll are fine: the
                // descriptor is gone from the interest list either way.
                let _ = self.epoll.delete(fd);
            }
        }
        pd.read.close(wakers);
        pd.write.close(wakers);
        let mut timers = self.timers.lock();
        for half in [&pd.read, &pd.write] {
            if let Some(key) = half.take_timer() {
                timers.remove(key);
            }
        }
    }

    /// Number of registered descriptors.
    pub(crate) fn registered(&self) -> usize {
        self.registry.lock().slots.len()
    }

    /// The netpoll thread's loop; returns at shutdown.
    pub(crate) fn run(&self, host: &dyn PollHost) {
        let mut events: Vec<sys::Event> = Vec::with_capacity(EVENTS);
        let mut wakers: Vec<Waker> = Vec::new();
        // Set when events woke us although a worker was running: the
        // workers can poll for themselves, so stand by.
        let mut busy = false;
        while !self.is_shutdown() {
            let active = host.active_workers();
            if busy && active > 0 {
                let tick = if active == host.num_workers() {
                    STANDBY_TICK_ALL
                } else {
                    STANDBY_TICK_PARTIAL
                };
                let since = self.now_nanos();
                self.long_tick
                    .store(tick == STANDBY_TICK_ALL, Ordering::Relaxed);
                self.sleep_standby(tick);
                self.long_tick.store(false, Ordering::Relaxed);
                let last = self.last_worker_poll.load(Ordering::Relaxed);
                if last < since {
                    // No worker looked since we went to sleep: look for them.
                    self.poll_events(&mut events, Some(Duration::ZERO));
                    self.dispatch(&events, &mut wakers);
                }
                if host.active_workers() == 0 {
                    busy = false;
                }
            } else {
                let n = self.sleep_blocking(&mut events);
                let active = host.active_workers() > 0;
                self.dispatch(&events, &mut wakers);
                busy = active && n > 0 && !wakers.is_empty();
            }
            self.fire_timers(&mut wakers);
            if !wakers.is_empty() {
                host.deliver(&mut wakers);
            }
        }
    }

    /// Blocks in `epoll_wait` until an event, the nearest timer, or a wake.
    fn sleep_blocking(&self, events: &mut Vec<sys::Event>) -> usize {
        let next = {
            let mut timers = self.timers.lock();
            let next = timers.next_deadline();
            timers.set_sleeping(Some(next));
            next
        };
        {
            let mut pending = self.ctl.lock();
            if std::mem::take(&mut *pending) {
                drop(pending);
                self.timers.lock().set_sleeping(None);
                events.clear();
                return 0;
            }
            self.mode.store(BLOCKING, Ordering::Relaxed);
        }
        self.poll_events(
            events,
            next.map(|d| d.saturating_duration_since(Instant::now())),
        );
        {
            let mut pending = self.ctl.lock();
            self.mode.store(RUNNING, Ordering::Relaxed);
            *pending = false;
        }
        self.timers.lock().set_sleeping(None);
        events.len()
    }

    /// Sleeps on the condition variable for at most `tick`, or until the
    /// nearest timer or a wake.
    fn sleep_standby(&self, tick: Duration) {
        let until = {
            let mut timers = self.timers.lock();
            let mut until = Instant::now() + tick;
            if let Some(next) = timers.next_deadline() {
                until = until.min(next);
            }
            timers.set_sleeping(Some(Some(until)));
            until
        };
        {
            let mut pending = self.ctl.lock();
            if !std::mem::take(&mut *pending) {
                self.mode.store(STANDBY, Ordering::Relaxed);
                let _ = self.standby.wait_until(&mut pending, until);
                self.mode.store(RUNNING, Ordering::Relaxed);
                *pending = false;
            }
        }
        self.timers.lock().set_sleeping(None);
    }

    /// `epoll_wait` into `events` (zero timeout: just look).
    fn poll_events(&self, events: &mut Vec<sys::Event>, timeout: Option<Duration>) {
        events.clear();
        let cap = events.capacity();
        // SAFETY: the kernel only writes, and `wait` returns how many entries
        // it wrote; we read no further than that. epoll_event is plain data.
        unsafe { events.set_len(cap) };
        let n = match self.epoll.wait(events, timeout) {
            Ok(n) => n,
            Err(e) => panic!("epoll_wait failed: {e}"),
        };
        events.truncate(n);
    }

    /// Turns events into readiness, collecting the wakers of waiting tasks.
    fn dispatch(&self, events: &[sys::Event], wakers: &mut Vec<Waker>) {
        if events.is_empty() {
            return;
        }
        let registry = self.registry.lock();
        for ev in events {
            let token = ev.u64;
            let bits = ev.events as libc::c_int;
            if token == WAKE_TOKEN {
                self.wake_fd.drain();
                self.wake_sig.lower();
                continue;
            }
            let idx = (token & 0xFFFF_FFFF) as usize;
            let Some(pd) = registry.slots.get(idx).filter(|pd| pd.token == token) else {
                // A stale event for a descriptor closed since.
                continue;
            };
            let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            let read_hup = err || bits & libc::EPOLLRDHUP != 0;
            if read_hup || bits & (libc::EPOLLIN | libc::EPOLLPRI) != 0 {
                pd.read.notify(read_hup, wakers);
            }
            if err || bits & libc::EPOLLOUT != 0 {
                pd.write.notify(err, wakers);
            }
        }
    }

    /// Fires every due timer, collecting wakers.
    fn fire_timers(&self, wakers: &mut Vec<Waker>) {
        let mut expired: Expired = Vec::new();
        {
            let mut timers = self.timers.lock();
            if timers.next_deadline().is_none_or(|d| d > Instant::now()) {
                return;
            }
            timers.fire_expired(Instant::now(), wakers, &mut expired);
        }
        for (pd, dir, seq) in expired {
            if let Some(pd) = pd.upgrade() {
                pd.half(dir).fire_deadline(seq, wakers);
            }
        }
    }

    /// Runtime shutdown: fails every registered descriptor and fires every
    /// timer, so nothing that outlives the runtime waits forever.
    pub(crate) fn close_all(&self, wakers: &mut Vec<Waker>) {
        self.shutdown.store(true, Ordering::Release);
        let pds: Vec<Arc<PdInner>> = {
            let registry = self.registry.lock();
            registry.slots.iter().map(|(_, pd)| pd.clone()).collect()
        };
        for pd in pds {
            pd.read.close(wakers);
            pd.write.close(wakers);
        }
        self.timers.lock().clear(wakers);
        self.wake();
    }
}
