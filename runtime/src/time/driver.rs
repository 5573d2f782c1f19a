//! A runtime's timers as the rest of the runtime reaches them, and which
//! runtime's timers the calling thread uses.
//!
//! The heap lives in a [`TimeDriver`]; the netpoll thread owns one and
//! fires it. Whoever adds a timer earlier than the one the netpoll thread
//! sleeps for wakes it through [`Unpark`], a trait the netpoller
//! implements, so this module names no netpoller.
//!
//! A [`Sleep`](super::Sleep) finds its driver when it is first polled:
//! the one the thread has entered (a worker, a blocking thread, a thread
//! inside `block_on`; the runtime layer calls [`enter`]), or else the
//! default runtime's, which the runtime layer provides through
//! [`set_default`] as soon as any runtime is built.

use std::cell::RefCell;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::heap::{Action, Expired, TimerKey, Timers};
use crate::loom::{AtomicBool, Mutex, MutexGuard, Ordering};

/// Wakes the thread that fires a driver's timers.
pub(crate) trait Unpark: Send + Sync {
    fn unpark(&self);
}

/// One runtime's timers, and the clock they read.
pub(crate) struct TimeDriver {
    timers: Mutex<Timers>,
    clock: Clock,
    unpark: Weak<dyn Unpark>,
    /// Names this driver in the calling thread's last reading of its
    /// clock (see [`TimeDriver::has_passed`]); never reused.
    id: u64,
}

thread_local! {
    /// The calling thread's last reading of a running clock: the id of
    /// its driver, and the time read.
    static LAST_READING: std::cell::Cell<Option<(u64, Instant)>> =
        const { std::cell::Cell::new(None) };
}

/// Hands out driver ids.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A runtime's clock: the real one, shifted by however far it was moved
/// while paused; or, while paused, a frozen instant that only
/// [`TimeDriver::advance_to`] moves.
struct Clock {
    paused: AtomicBool,
    /// While paused: now.
    frozen: Mutex<Instant>,
    /// While running: how far ahead of the real clock this one is, in
    /// nanoseconds (negative if it was paused and resumed without moving).
    offset: AtomicI64,
}

impl TimeDriver {
    pub(crate) fn new(unpark: Weak<dyn Unpark>) -> TimeDriver {
        TimeDriver {
            timers: Mutex::new(Timers::default()),
            clock: Clock {
                paused: AtomicBool::new(false),
                frozen: Mutex::new(Instant::now()),
                offset: AtomicI64::new(0),
            },
            unpark,
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The heap, for the thread that fires it and for batch work.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Timers> {
        self.timers.lock()
    }

    /// The time as this runtime's timers see it.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        // Acquire: pairs with `pause`/`resume`, so the frozen instant or
        // the offset they wrote is the one read.
        if self.clock.paused.load(Ordering::Acquire) {
            return *self.clock.frozen.lock();
        }
        // Relaxed: only ever written before `paused` is cleared.
        let offset = self.clock.offset.load(std::sync::atomic::Ordering::Relaxed);
        let now = shift(Instant::now(), offset);
        let _ = LAST_READING.try_with(|last| last.set(Some((self.id, now))));
        now
    }

    /// Whether `deadline` has come, as far as a cheap look can tell:
    /// `true` only if it has; `false` if it has not, or may have only
    /// just. A running clock is compared with this thread's last reading
    /// of it, if any, instead of being read again: this runtime's clock
    /// never goes back, so a deadline at or before that reading has
    /// passed, and one after it is left to the timer heap, where one that
    /// came due meanwhile fires at the netpoll thread's next look (which
    /// its insert asks for). A server that reads the clock to compute a
    /// deadline and then sleeps until it (hyper's header-read timeout,
    /// once per request) reads it once, not twice.
    #[inline]
    pub(crate) fn has_passed(&self, deadline: Instant) -> bool {
        if !self.clock.paused.load(Ordering::Acquire) {
            if let Ok(Some((id, last))) = LAST_READING.try_with(std::cell::Cell::get) {
                if id == self.id {
                    return deadline <= last;
                }
            }
        }
        self.now() >= deadline
    }

    /// `true` while the clock is paused.
    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        self.clock.paused.load(Ordering::Relaxed)
    }

    /// Stops the clock where it is. Idempotent.
    pub(crate) fn pause(&self) {
        let now = self.now();
        let mut frozen = self.clock.frozen.lock();
        if !self.clock.paused.load(Ordering::Relaxed) {
            *frozen = now;
            self.clock.paused.store(true, Ordering::Release);
        }
    }

    /// Lets the clock run again from where it stands. Idempotent.
    pub(crate) fn resume(&self) {
        let frozen = self.clock.frozen.lock();
        if self.clock.paused.load(Ordering::Relaxed) {
            let real = Instant::now();
            let ahead = if *frozen >= real {
                frozen.duration_since(real).as_nanos() as i64
            } else {
                -(real.duration_since(*frozen).as_nanos() as i64)
            };
            self.clock
                .offset
                .store(ahead, std::sync::atomic::Ordering::Relaxed);
            self.clock.paused.store(false, Ordering::Release);
        }
        drop(frozen);
        // Timers that are due by the real clock fire now.
        if let Some(unpark) = self.unpark.upgrade() {
            unpark.unpark();
        }
    }

    /// Moves a paused clock forward to `to` (never back), then fires every
    /// timer due by then: sleeps' wakers go to `wakers`, deadlines are
    /// expired on the spot. A clock that runs is left alone.
    pub(crate) fn advance_to(&self, to: Instant, wakers: &mut Vec<Waker>) {
        {
            let mut frozen = self.clock.frozen.lock();
            if !self.clock.paused.load(Ordering::Relaxed) {
                return;
            }
            if to > *frozen {
                *frozen = to;
            }
        }
        self.fire(wakers);
    }

    /// Fires every timer due by [`now`](TimeDriver::now).
    pub(crate) fn fire(&self, wakers: &mut Vec<Waker>) {
        let mut expired: Expired = Vec::new();
        {
            let mut timers = self.timers.lock();
            // No timer, no reading of the clock.
            let Some(next) = timers.next_deadline() else {
                return;
            };
            let now = self.now();
            if next > now {
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

    /// Adds a timer, waking the firing thread if it must sleep less.
    /// Returns `None` once the runtime has shut down: nobody would fire it.
    pub(crate) fn insert(&self, deadline: Instant, action: Action) -> Option<TimerKey> {
        let (key, wake) = self.timers.lock().insert(deadline, action)?;
        if wake {
            if let Some(unpark) = self.unpark.upgrade() {
                unpark.unpark();
            }
        }
        Some(key)
    }

    /// Removes a timer, fired or not.
    pub(crate) fn remove(&self, key: TimerKey) {
        self.timers.lock().remove(key);
    }
}

#[cfg(test)]
impl TimeDriver {
    /// A paused driver that no thread fires: tests move its clock and fire
    /// its timers themselves.
    pub(crate) fn paused_alone() -> TimeDriver {
        struct Nobody;
        impl Unpark for Nobody {
            fn unpark(&self) {}
        }
        let driver = TimeDriver::new(Weak::<Nobody>::new());
        driver.pause();
        driver
    }
}

/// `at` moved by `nanos` (either way).
fn shift(at: Instant, nanos: i64) -> Instant {
    if nanos >= 0 {
        at + Duration::from_nanos(nanos as u64)
    } else {
        at.checked_sub(Duration::from_nanos(nanos.unsigned_abs()))
            .unwrap_or(at)
    }
}

thread_local! {
    /// The driver of the runtime this thread has entered.
    static CURRENT: RefCell<Option<Arc<TimeDriver>>> = const { RefCell::new(None) };
}

/// The default runtime's driver, started on first use.
static DEFAULT: OnceLock<fn() -> Arc<TimeDriver>> = OnceLock::new();

/// Restores the previous driver when dropped.
pub(crate) struct EnterGuard {
    prev: Option<Arc<TimeDriver>>,
}

/// Makes `driver` the calling thread's until the guard is dropped.
pub(crate) fn enter(driver: Arc<TimeDriver>) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(driver)));
    EnterGuard { prev }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// Tells this layer how to reach the default runtime's driver.
pub(crate) fn set_default(default: fn() -> Arc<TimeDriver>) {
    let _ = DEFAULT.set(default);
}

/// The driver of the runtime this thread has entered, if any.
pub(crate) fn try_current() -> Option<Arc<TimeDriver>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Calls `f` with the driver of the runtime this thread is in, if any,
/// without taking a reference to it. `f` must not enter or leave a
/// runtime.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&TimeDriver>) -> R) -> R {
    let mut f = Some(f);
    CURRENT
        .try_with(|c| (f.take().expect("called once"))(c.borrow().as_deref()))
        .unwrap_or_else(|_| (f.take().expect("called once"))(None))
}

/// The driver of the runtime this thread is in, or the default runtime's.
///
/// # Panics
///
/// Panics outside any runtime in a process that never built one: there is
/// no default runtime to fall back on yet.
pub(crate) fn current() -> Arc<TimeDriver> {
    if let Some(driver) = try_current() {
        return driver;
    }
    let default = DEFAULT.get().expect(
        "a gopark timer was polled outside any runtime before one was started: run it inside \
         `gopark::runtime::block_on`, a task, or a `Runtime`",
    );
    default()
}
