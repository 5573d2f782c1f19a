//! Which runtime the calling thread is in.
//!
//! Each layer keeps the thread-local of what it owns: this one the runtime
//! (for `spawn`, `Handle::current`, `PollDesc::new`), the scheduler which
//! worker a thread is, and the timers which runtime's heap a `Sleep` uses.
//! Entering a runtime here sets the timers' too, so the two never
//! disagree; no lower layer reaches up to this one.

use std::cell::RefCell;

use super::Handle;
use crate::time::driver;

thread_local! {
    /// The runtime entered by `block_on`, a worker, or a blocking thread.
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Restores the previous runtime when dropped.
pub(crate) struct EnterGuard {
    prev: Option<Handle>,
    /// Dropped after `prev` is restored: the timers' own guard.
    _time: driver::EnterGuard,
}

/// Makes `handle`'s runtime the calling thread's until the guard drops.
pub(crate) fn enter(handle: Handle) -> EnterGuard {
    let time = driver::enter(handle.shared.io.time.clone());
    let prev = CURRENT.with(|c| c.replace(Some(handle)));
    EnterGuard { prev, _time: time }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// Calls `f` with the current runtime's handle borrowed in place, if this
/// thread is in one: unlike [`with_current`], no reference count changes
/// hands, where a clone and its drop cost two locked instructions (for
/// `spawn`, a tenth of a local spawn). The thread-local stays borrowed
/// while `f` runs, so `f` must not enter a runtime: a runtime entered
/// meanwhile (by a destructor that `f` runs) panics.
#[inline]
pub(crate) fn with_current_borrowed<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    let mut f = Some(f);
    let done = CURRENT.try_with(|c| {
        let f = f.take().expect("called once");
        f(c.borrow().as_ref())
    });
    match done {
        Ok(r) => r,
        // The thread-local is gone (a thread's exit).
        Err(_) => f.take().expect("called once")(None),
    }
}

/// Calls `f` with the current runtime's handle, if this thread is in one.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    match CURRENT.try_with(|c| c.borrow().clone()) {
        Ok(h) => f(h.as_ref()),
        Err(_) => f(None),
    }
}
