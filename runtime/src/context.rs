//! Thread-local context: which runtime this thread is in, and whether it is
//! one of that runtime's workers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::scheduler::{Handle, Shared, WorkerCtx};
use crate::task::Notified;

thread_local! {
    /// The runtime entered by `block_on`, a worker, or a blocking thread.
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
    /// Set on worker threads for their whole life.
    static WORKER: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
    /// Set on a netpoll thread while it hands a batch of wake-ups to its
    /// scheduler: the address of that scheduler, and the tasks of it woken
    /// so far, to be injected together.
    static BATCH_KEY: Cell<usize> = const { Cell::new(0) };
    static BATCH: RefCell<Vec<Notified>> = const { RefCell::new(Vec::new()) };
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
    BATCH_KEY.with(|k| k.set(shared as *const Shared as usize));
}

/// If this thread is batching for `shared`, keeps `task` for the batch;
/// otherwise gives it back.
#[inline]
pub(crate) fn batch_push(shared: &Shared, task: Notified) -> Result<(), Notified> {
    let batching = BATCH_KEY
        .try_with(|k| k.get() == shared as *const Shared as usize)
        .unwrap_or(false);
    if !batching {
        return Err(task);
    }
    match BATCH.try_with(|b| b.borrow_mut().push(task)) {
        Ok(()) => Ok(()),
        Err(_) => unreachable!("batching on a thread whose locals are gone"),
    }
}

/// Ends the batch and hands its tasks to `inject`.
pub(crate) fn end_batch(inject: impl FnOnce(&mut Vec<Notified>)) {
    BATCH_KEY.with(|k| k.set(0));
    BATCH.with(|b| inject(&mut b.borrow_mut()));
}
