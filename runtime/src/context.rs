//! Thread-local context: which runtime this thread is in, and whether it is
//! one of that runtime's workers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::scheduler::{Handle, Shared, WorkerCtx};

thread_local! {
    /// The runtime entered by `block_on`, a worker, or a blocking thread.
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
    /// Set on worker threads for their whole life.
    static WORKER: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
    /// Set on a netpoll thread while it hands a batch of wake-ups to its
    /// scheduler: the address of that scheduler, and whether any task of it
    /// was injected without waking a worker.
    static BATCH: Cell<(usize, bool)> = const { Cell::new((0, false)) };
}

/// Restores the previous runtime context when dropped.
pub(crate) struct EnterGuard {
    prev: Option<Handle>,
}

pub(crate) fn enter(handle: Handle) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(handle)));
    EnterGuard { prev }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// Calls `f` with the current runtime's handle, if this thread is in one.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    match CURRENT.try_with(|c| c.borrow().clone()) {
        Ok(h) => f(h.as_ref()),
        Err(_) => f(None),
    }
}

pub(crate) fn set_worker(cx: Option<Rc<WorkerCtx>>) {
    WORKER.with(|w| *w.borrow_mut() = cx);
}

/// Calls `f` with this thread's worker context if it is a worker of
/// `shared`; returns `None` otherwise.
#[inline]
pub(crate) fn with_worker_of<R>(shared: &Shared, f: impl FnOnce(&WorkerCtx) -> R) -> Option<R> {
    WORKER
        .try_with(|w| match &*w.borrow() {
            Some(cx) if std::ptr::eq(&*cx.shared, shared) => Some(f(cx)),
            _ => None,
        })
        .ok()
        .flatten()
}

/// Returns `true` on any runtime's worker thread.
pub(crate) fn is_worker() -> bool {
    WORKER.try_with(|w| w.borrow().is_some()).unwrap_or(false)
}

/// Starts batching wake-ups for `shared` on this thread.
pub(crate) fn begin_batch(shared: &Shared) {
    BATCH.with(|b| b.set((shared as *const Shared as usize, false)));
}

/// If this thread is batching for `shared`, records that a task was
/// injected and returns `true`: the caller skips waking a worker.
#[inline]
pub(crate) fn defer_notify(shared: &Shared) -> bool {
    BATCH
        .try_with(|b| {
            let (key, _) = b.get();
            if key == shared as *const Shared as usize {
                b.set((key, true));
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
}

/// Ends the batch; returns `true` if a worker should be woken.
pub(crate) fn end_batch() -> bool {
    BATCH.with(|b| b.replace((0, false)).1)
}
