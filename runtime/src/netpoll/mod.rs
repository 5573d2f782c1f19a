//! The netpoller: one thread, one epoll instance, one wake pipe.
//!
//! Each runtime has one netpoll thread. It alone calls `epoll_wait`, with a
//! timeout equal to the nearest timer deadline, and it never polls a
//! future. Each time it wakes it:
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
//! Descriptors are registered once, for both directions, edge-triggered
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`), and never re-armed. The
//! epoll user data is a token: slab index in the low 32 bits, a generation
//! in the high 32. An event whose generation does not match the slot's (the
//! descriptor was closed, and maybe its number and slot reused) is dropped.
//!
//! Anyone who needs the thread awake early — a timer earlier than the one it
//! sleeps for, shutdown — writes the eventfd. An atomic flag keeps at most
//! one wake-up outstanding (Go's `netpollWakeSig`).

mod poll_desc;
pub(crate) mod sys;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

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

/// Where a PollDesc sits in the registry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registration {
    token: u64,
}

struct Registry {
    slots: Slab<Arc<PdInner>>,
    next_gen: u32,
}

pub(crate) struct Netpoller {
    epoll: sys::Epoll,
    wake_fd: sys::EventFd,
    /// Set while a wake-up byte is outstanding.
    wake_sig: AtomicBool,
    registry: Mutex<Registry>,
    pub(crate) timers: Mutex<Timers>,
    shutdown: AtomicBool,
}

impl Netpoller {
    pub(crate) fn new() -> io::Result<Netpoller> {
        let epoll = sys::Epoll::new()?;
        let wake_fd = sys::EventFd::new()?;
        epoll.add_level(wake_fd.raw(), WAKE_TOKEN)?;
        Ok(Netpoller {
            epoll,
            wake_fd,
            wake_sig: AtomicBool::new(false),
            registry: Mutex::new(Registry {
                slots: Slab::new(),
                next_gen: 0,
            }),
            timers: Mutex::new(Timers::default()),
            shutdown: AtomicBool::new(false),
        })
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Wakes the netpoll thread; coalesced to one outstanding wake-up.
    pub(crate) fn wake(&self) {
        // AcqRel: pairs with the store(false) after the thread drains the
        // eventfd; whoever flips the flag writes the byte.
        if !self.wake_sig.swap(true, Ordering::AcqRel) {
            self.wake_fd.wake();
        }
    }

    pub(crate) fn register(&self, fd: RawFd) -> io::Result<(Arc<PdInner>, Registration)> {
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
        Ok((inner, Registration { token }))
    }

    pub(crate) fn deregister(
        &self,
        pd: &Arc<PdInner>,
        reg: Registration,
        fd: RawFd,
        wakers: &mut Vec<Waker>,
    ) {
        {
            let mut registry = self.registry.lock();
            let idx = (reg.token & 0xFFFF_FFFF) as usize;
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

    /// One turn of the netpoll thread: sleep until an event, a timer or a
    /// wake-up, then collect the wakers of everything that became ready.
    pub(crate) fn turn(&self, events: &mut Vec<sys::Event>, wakers: &mut Vec<Waker>) {
        let timeout = {
            let mut timers = self.timers.lock();
            let next = timers.next_deadline();
            timers.set_sleeping(Some(next));
            next.map(|d| d.saturating_duration_since(Instant::now()))
        };
        if events.capacity() < EVENTS {
            events.reserve(EVENTS);
        }
        let cap = events.capacity();
        // SAFETY: the kernel only writes, and `wait` returns how many entries
        // it wrote; we read no further than that. epoll_event is plain data.
        unsafe { events.set_len(cap) };
        let n = match self.epoll.wait(events, timeout) {
            Ok(n) => n,
            Err(e) => panic!("epoll_wait failed: {e}"),
        };
        events.truncate(n);
        self.timers.lock().set_sleeping(None);

        {
            let registry = self.registry.lock();
            for ev in events.iter() {
                let token = ev.u64;
                let bits = ev.events as libc::c_int;
                if token == WAKE_TOKEN {
                    self.wake_fd.drain();
                    self.wake_sig.store(false, Ordering::Release);
                    continue;
                }
                let idx = (token & 0xFFFF_FFFF) as usize;
                let Some(pd) = registry.slots.get(idx).filter(|pd| pd.token == token) else {
                    // A stale event for a descriptor closed since.
                    continue;
                };
                let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
                if err || bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) != 0 {
                    pd.read.notify(wakers);
                }
                if err || bits & libc::EPOLLOUT != 0 {
                    pd.write.notify(wakers);
                }
            }
        }

        let mut expired: Expired = Vec::new();
        self.timers
            .lock()
            .fire_expired(Instant::now(), wakers, &mut expired);
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
