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
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use super::heap::{Action, TimerKey, Timers};
use crate::loom::{Mutex, MutexGuard};

/// Wakes the thread that fires a driver's timers.
pub(crate) trait Unpark: Send + Sync {
    fn unpark(&self);
}

/// One runtime's timers.
pub(crate) struct TimeDriver {
    timers: Mutex<Timers>,
    unpark: Weak<dyn Unpark>,
}

impl TimeDriver {
    pub(crate) fn new(unpark: Weak<dyn Unpark>) -> TimeDriver {
        TimeDriver {
            timers: Mutex::new(Timers::default()),
            unpark,
        }
    }

    /// The heap, for the thread that fires it and for batch work.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Timers> {
        self.timers.lock()
    }

    /// The time as this runtime's timers see it.
    pub(crate) fn now(&self) -> Instant {
        Instant::now()
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

/// The driver of the runtime this thread is in, or the default runtime's.
///
/// # Panics
///
/// Panics outside any runtime in a process that never built one: there is
/// no default runtime to fall back on yet.
pub(crate) fn current() -> Arc<TimeDriver> {
    if let Some(driver) = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten() {
        return driver;
    }
    let default = DEFAULT.get().expect(
        "a gopark timer was polled outside any runtime before one was started: run it inside \
         `gopark::runtime::block_on`, a task, or a `Runtime`",
    );
    default()
}
