//! The netpoll thread's loop: sleep (blocking or standing by), harvest,
//! fire timers, deliver.

use std::io;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::mode::{Blocking, StandBy};
use super::{sys, Netpoller, PollHost, EVENTS, STANDBY_TICK_ALL, STANDBY_TICK_PARTIAL};
use crate::loom::Ordering;
use crate::time::heap::Expired;

/// Pause after an `epoll_wait` that failed, so a persistent error cannot
/// turn the loop into a spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

impl Netpoller {
    /// The netpoll thread's loop; returns at shutdown.
    pub(crate) fn run(&self, host: &dyn PollHost) {
        let mut events: Vec<sys::Event> = Vec::with_capacity(EVENTS);
        let mut wakers: Vec<Waker> = Vec::new();
        let mut errors = ErrorReport::default();
        // Set when events woke us although a worker was running: the
        // workers can look for themselves, so stand by.
        let mut busy = false;
        while !self.is_shutdown() {
            if busy {
                busy = self.stand_by(host, &mut events, &mut wakers, &mut errors);
            } else {
                let res = self.sleep_blocking(&mut events, &mut wakers);
                match res {
                    Ok(n) => busy = n > 0 && !wakers.is_empty() && host.active_workers() > 0,
                    Err(e) => errors.report(e),
                }
            }
            self.fire_timers(&mut wakers);
            if !wakers.is_empty() {
                host.deliver(&mut wakers);
            }
        }
    }

    /// Stands by for a tick, then looks at epoll itself if no worker did
    /// meanwhile. Returns whether to stand by again.
    fn stand_by(
        &self,
        host: &dyn PollHost,
        events: &mut Vec<sys::Event>,
        wakers: &mut Vec<Waker>,
        errors: &mut ErrorReport,
    ) -> bool {
        let long = host.active_workers() == host.num_workers();
        let tick = if long {
            STANDBY_TICK_ALL
        } else {
            STANDBY_TICK_PARTIAL
        };
        let since = self.now_nanos();
        let until = {
            let mut timers = self.time.lock();
            let mut until = Instant::now() + tick;
            if let Some(next) = timers.next_deadline() {
                until = until.min(next);
            }
            timers.set_sleeping(Some(Some(until)));
            until
        };
        let ended = self.mode.stand_by(|| host.active_workers(), until, long);
        self.time.lock().set_sleeping(None);
        if ended == StandBy::NoWorkers {
            return false;
        }
        // Relaxed: see `poll_now`; a stale value costs one look too many.
        if self.last_worker_poll.load(Ordering::Relaxed) < since {
            // No worker looked since we went to sleep: look for them.
            if let Err(e) = self.poll(events, Some(Duration::ZERO), wakers) {
                errors.report(e);
            }
        }
        host.active_workers() > 0
    }

    /// Blocks in `epoll_wait` until an event, the nearest timer, or a
    /// wake-up. Returns the number of events.
    fn sleep_blocking(
        &self,
        events: &mut Vec<sys::Event>,
        wakers: &mut Vec<Waker>,
    ) -> io::Result<usize> {
        let next = {
            let mut timers = self.time.lock();
            let next = timers.next_deadline();
            timers.set_sleeping(Some(next));
            next
        };
        let res = match self.mode.begin_blocking() {
            Blocking::Skip => Ok(0),
            Blocking::Sleep => {
                let timeout = next.map(|d| d.saturating_duration_since(Instant::now()));
                let res = self.poll(events, timeout, wakers);
                self.mode.end_blocking();
                res
            }
        };
        self.time.lock().set_sleeping(None);
        res
    }

    /// Fires every due timer, collecting wakers.
    fn fire_timers(&self, wakers: &mut Vec<Waker>) {
        let mut expired: Expired = Vec::new();
        {
            let mut timers = self.time.lock();
            let now = Instant::now();
            if timers.next_deadline().is_none_or(|d| d > now) {
                return;
            }
            timers.fire_expired(now, wakers, &mut expired);
        }
        for (target, tag) in expired {
            if let Some(target) = target.upgrade() {
                target.expire(tag, wakers);
            }
        }
    }
}

/// Reports `epoll_wait` failures on stderr without flooding it, and pauses
/// after each so the loop never spins on a persistent error.
#[derive(Default)]
struct ErrorReport {
    count: u64,
}

impl ErrorReport {
    fn report(&mut self, e: io::Error) {
        self.count += 1;
        if self.count.is_power_of_two() {
            eprintln!(
                "gopark: netpoll: epoll_wait failed ({e}); {} failure(s) so far, retrying",
                self.count
            );
        }
        std::thread::sleep(ERROR_PAUSE);
    }
}
